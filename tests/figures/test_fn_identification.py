"""fn_identification: AdvInfoNCE's false-negative identification rate (NaN where no
false negative was sampled) and both methods' test NDCG@20 are the synthetic records'
means and standard errors; InfoNCE gets no rate; the PNG decodes."""

import numpy as np
import pytest

from experiments.analyze import draw
from experiments.figures import fn_identification, strategies
from experiments.figures.base import read_csv
from tests.figures.records import context, expected_size, png_size, write_records


def _fn_rate(seed: int, epoch: int) -> float | None:
    # Seed 2 sampled no false negative at epoch 5: the diagnostics log null.
    return None if (seed, epoch) == (2, 5) else 0.4 + 0.01 * epoch + 0.02 * seed


def _ndcg(method: str, seed: int, epoch: int) -> float:
    return (0.05 if method == "AdvInfoNCE" else 0.0) + 0.01 * epoch + 0.001 * seed


def _records(method: str, seed: int, last_epoch: int) -> list[dict]:
    records = []
    for epoch in range(1, last_epoch + 1):
        record = {"epoch": epoch, "loss": 1.0 / epoch}
        if epoch % 5 == 0:
            record["test_ood/ndcg@20"] = _ndcg(method, seed, epoch)
            if method == "AdvInfoNCE":
                record["hardness/fn_rate"] = _fn_rate(seed, epoch)
        records.append(record)
    return records


def test_rows_are_the_rate_and_test_curves_and_the_png_decodes(tmp_path):
    ctx = context(tmp_path)
    cells = fn_identification.FIGURE.cells(ctx)
    assert cells == [strategies.strategy_cells(ctx)[i] for i in (0, 3)]
    for cell in cells:
        for seed in ctx.seeds:
            last_epoch = 15 if seed == 3 else 25
            write_records(ctx, cell, seed, _records(cell.method, seed, last_epoch))

    stem = draw(fn_identification.FIGURE, ctx, str(tmp_path / "out"), "python -m ...")
    rows = read_csv(stem + ".csv")
    assert list(rows[0]) == ["method", "metric", "epoch", "mean", "se", "seeds"]
    assert {(r["method"], r["metric"]) for r in rows} == {
        ("AdvInfoNCE", "hardness/fn_rate"),
        ("AdvInfoNCE", "test_ood/ndcg@20"),
        ("InfoNCE", "test_ood/ndcg@20"),
    }
    by_key = {(r["method"], r["metric"], int(r["epoch"])): r for r in rows}
    fn = "AdvInfoNCE", "hardness/fn_rate"
    at_5 = [_fn_rate(s, 5) for s in (1, 3)]
    row = by_key[(*fn, 5)]
    assert float(row["mean"]) == pytest.approx(np.mean(at_5))
    assert float(row["se"]) == pytest.approx(np.std(at_5, ddof=1) / np.sqrt(2))
    assert int(row["seeds"]) == 2
    at_10 = [_fn_rate(s, 10) for s in (1, 2, 3)]
    row = by_key[(*fn, 10)]
    assert float(row["mean"]) == pytest.approx(np.mean(at_10))
    assert float(row["se"]) == pytest.approx(np.std(at_10, ddof=1) / np.sqrt(3))
    assert sorted(e for m, k, e in by_key if (m, k) == fn) == [5, 10, 15, 20, 25]
    at_20 = [_ndcg("InfoNCE", s, 20) for s in (1, 2)]
    row = by_key["InfoNCE", "test_ood/ndcg@20", 20]
    assert (float(row["mean"]), int(row["seeds"])) == (pytest.approx(np.mean(at_20)), 2)
    assert float(row["se"]) == pytest.approx(np.std(at_20, ddof=1) / np.sqrt(2))
    assert png_size(stem + ".png") == expected_size(8.8, 3.8)
