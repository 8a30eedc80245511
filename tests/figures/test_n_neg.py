"""n_neg: the cells share strategies' at the flagfile's N, the CSV's statistics and the
paired p-values are the synthetic results.json files' (checked by hand), the PNG decodes."""

import dataclasses
import json
import math
import os

import numpy as np
import pytest

from advjax.train.config import config_dict
from experiments.analyze import draw
from experiments.figures import n_neg, strategies
from experiments.figures.base import read_csv
from experiments.run import read_flagfile
from tests.figures.records import context, expected_size, png_size

FLAGS = {
    "infonce": ["--loss=infonce", "--n_neg=64"],
    "advinfonce": ["--loss=adv_infonce", "--n_neg=64", "--k_neg=64"],
}


def _write_flagfiles(ctx) -> None:
    for stem, flags in FLAGS.items():
        path = os.path.join(ctx.configs, f"tiny_lightgcn_{stem}.flags")
        with open(path, "w") as f:
            f.write("\n".join(["--dataset=coat", "--n_layers=2", *flags]) + "\n")


def _write_results(ctx, cell, seed: int, recall: float, ndcg: float) -> None:
    """A finished run as experiments.reproduce.finished_run reads it: results.json with
    the cell's configuration at this seed, and a metrics.jsonl."""
    cfg = dataclasses.replace(read_flagfile(cell.flagfile), **dict(cell.overrides), seed=seed)
    workdir = ctx.workdir(cell, seed)
    os.makedirs(workdir)
    test = {"recall@20": recall, "ndcg@20": ndcg}
    results = {"best_epoch": 10, "flags": config_dict(cfg), "test_id": test, "test_ood": test}
    with open(os.path.join(workdir, "results.json"), "w") as f:
        json.dump(results, f)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"epoch": 1, "epoch_s": 0.5}) + "\n")


def test_the_flagfiles_n_is_strategies_cell_and_k_stays(tmp_path):
    ctx = context(tmp_path)
    _write_flagfiles(ctx)
    points = {(m, n): cell for m, n, cell in n_neg.n_neg_points(ctx)}
    assert sorted(points) == [(m, n) for m in ("AdvInfoNCE", "InfoNCE") for n in (64, 128, 256)]
    shared = {c.method: c for c in strategies.strategy_cells(ctx)}
    assert points["InfoNCE", 64] == shared["InfoNCE"]
    assert points["AdvInfoNCE", 64] == shared["AdvInfoNCE"]
    assert points["AdvInfoNCE", 256].overrides == (("log_test", True), ("n_neg", 256))
    assert points["InfoNCE", 128].name == "tiny_lightgcn_infonce-log_test=True-n_neg=128"


def test_statistics_and_paired_tests_by_hand_and_the_png(tmp_path):
    ctx = context(tmp_path)
    _write_flagfiles(ctx)
    # Per N: InfoNCE's recall r_s, AdvInfoNCE's r_s + 0.01 s (differences 0.01, 0.02,
    # 0.03: mean 0.02, std 0.01, t = 2 sqrt 3 on 2 degrees of freedom); NDCG r_s / 2 and
    # r_s / 2 + 0.01 s (the same differences).
    base = {1: 0.20, 2: 0.22, 3: 0.18}
    shift = {64: 0.0, 128: 0.01, 256: 0.02}
    for method, n, cell in n_neg.n_neg_points(ctx):
        for seed in ctx.seeds:
            recall = base[seed] + shift[n]
            ndcg = recall / 2
            if method == "AdvInfoNCE":
                recall += 0.01 * seed
                ndcg = (base[seed] + shift[n]) / 2 + 0.01 * seed
            _write_results(ctx, cell, seed, recall, ndcg)

    stem = draw(n_neg.FIGURE, ctx, str(tmp_path / "out"), "python -m experiments.analyze")
    rows = read_csv(stem + ".csv")
    assert list(rows[0]) == ["method", "n_neg", "metric", "mean", "std", "se", "seeds",
                             "split", "p_vs_infonce"]  # fmt: skip
    by = {(r["method"], int(r["n_neg"]), r["metric"]): r for r in rows}
    assert len(by) == 12 == len(rows)

    # InfoNCE's recall at N = 128: 0.21, 0.23, 0.19.
    row = by["InfoNCE", 128, "recall@20"]
    assert float(row["mean"]) == pytest.approx(0.21)
    assert float(row["std"]) == pytest.approx(0.02)  # sqrt((0 + 0.02^2 + 0.02^2) / 2)
    assert float(row["se"]) == pytest.approx(0.02 / math.sqrt(3))
    assert (int(row["seeds"]), row["split"], row["p_vs_infonce"]) == (3, "test_ood", "")

    # Student's t on 2 degrees of freedom: P(|T| > t) = 1 - t / sqrt(2 + t^2).
    t = 0.02 / (0.01 / math.sqrt(3))
    p = 1 - t / math.sqrt(2 + t * t)
    assert p == pytest.approx(0.07418, abs=1e-5)
    for n in (64, 128, 256):
        adv = by["AdvInfoNCE", n, "recall@20"]
        # 0.21, 0.24, 0.21 plus the shift: deviations -0.01, 0.02, -0.01.
        assert float(adv["mean"]) == pytest.approx(0.22 + shift[n])
        assert float(adv["std"]) == pytest.approx(math.sqrt(0.0006 / 2))
        assert float(adv["p_vs_infonce"]) == pytest.approx(p, rel=1e-6)
        assert float(by["AdvInfoNCE", n, "ndcg@20"]["p_vs_infonce"]) == pytest.approx(p, rel=1e-6)

    text = open(stem + ".md").read()
    assert "| 128 | 0.2100 ± 0.0200 | 0.2300 ± 0.0173 | 0.0742 |" in text
    assert png_size(stem + ".png") == expected_size(2 * 4.4, 3.6)


def test_a_missing_run_is_named(tmp_path):
    from advjax.errors import WorkdirError

    ctx = context(tmp_path, seeds=(1,))
    _write_flagfiles(ctx)
    cell = n_neg.n_neg_points(ctx)[1][2]  # InfoNCE, N = 128
    with pytest.raises(WorkdirError, match=r"n_neg=128/seed1: no finished run"):
        n_neg.seed_values(ctx, cell)
    assert np.isnan(n_neg.summary_rows([("InfoNCE", 64, "test", {
        "recall@20": {1: 0.2}, "ndcg@20": {1: 0.1}})])[0]["std"])  # fmt: skip
