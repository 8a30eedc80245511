"""strategies: the CSV's means and standard errors are the records', the PNG decodes."""

import numpy as np
import pytest

from experiments.analyze import draw
from experiments.figures import strategies
from experiments.figures.base import read_csv
from tests.figures.records import context, png_size, write_records


def _records(seed: int, offset: float, last_epoch: int) -> list[dict]:
    records = []
    for epoch in range(1, last_epoch + 1):
        record = {"epoch": epoch, "loss": 1.0 / epoch}
        if epoch % 5 == 0:
            value = offset + 0.01 * epoch + 0.001 * seed
            record.update({"test_ood/ndcg@20": value, "test_ood/recall@20": 2 * value})
        records.append(record)
    return records


def test_rows_are_mean_and_standard_error_over_seeds_and_the_png_decodes(tmp_path):
    ctx = context(tmp_path)
    cells = strategies.strategy_cells(ctx)
    for number, cell in enumerate(cells):
        for seed in ctx.seeds:
            # Seed 3 stops at epoch 15: epoch 20 keeps 2 of 3 seeds, none goes past it.
            write_records(ctx, cell, seed, _records(seed, 0.1 * number, 15 if seed == 3 else 20))
    stem = draw(strategies.FIGURE, ctx, str(tmp_path / "out"), "python -m experiments.analyze")
    rows = read_csv(stem + ".csv")
    assert {r["method"] for r in rows} == {c.method for c in cells}
    advinfonce = {(r["metric"], int(r["epoch"])): r for r in rows if r["method"] == "AdvInfoNCE"}
    assert sorted({e for _, e in advinfonce}) == [5, 10, 15, 20]
    at_10 = [0.3 + 0.1 + 0.001 * s for s in (1, 2, 3)]
    row = advinfonce["test_ood/ndcg@20", 10]
    assert float(row["mean"]) == pytest.approx(np.mean(at_10))
    assert float(row["se"]) == pytest.approx(np.std(at_10, ddof=1) / np.sqrt(3))
    assert int(row["seeds"]) == 3
    at_20 = [2 * (0.3 + 0.2 + 0.001 * s) for s in (1, 2)]
    row = advinfonce["test_ood/recall@20", 20]
    assert (float(row["mean"]), int(row["seeds"])) == (pytest.approx(np.mean(at_20)), 2)
    width, height = png_size(stem + ".png")
    assert (width, height) == (2 * 4.4 * 120, 3.6 * 120)


def test_a_missing_run_is_named_in_one_line(tmp_path):
    from advjax.errors import WorkdirError

    ctx = context(tmp_path, seeds=(1,))
    with pytest.raises(WorkdirError, match=r"seed1/metrics.jsonl: no such file"):
        strategies.FIGURE.rows(ctx)
