"""adv_epochs: the budgets are the flagfile's E, its quarter, half and double; at E
is the strategies figure's AdvInfoNCE cell, the CSV's curves and stop marks are the
synthetic records' (checked by hand), the PNG decodes."""

import os

import numpy as np
import pytest

from experiments.analyze import draw
from experiments.figures import adv_epochs, strategies
from experiments.figures.base import read_csv
from tests.figures.records import context, expected_size, png_size, write_records

FLAG_E = 4  # budgets 1, 2, 4, 8
LAST_EPOCH = {1: 25, 2: 25, 3: 15}  # seed 3 stops early


def _write_flagfile(ctx) -> None:
    path = os.path.join(ctx.configs, "tiny_lightgcn_advinfonce.flags")
    with open(path, "w") as f:
        f.write(f"--dataset=coat\n--loss=adv_infonce\n--e_adv={FLAG_E}\n")


def _adv_passes(seed: int, e_adv: int) -> list[int]:
    """Every 3 epochs from epoch 3 (seed 2: from 4) while the budget and run last."""
    start = 4 if seed == 2 else 3
    return [e for e in range(start, LAST_EPOCH[seed] + 1, 3)][:e_adv]


def _value(e_adv: int, seed: int, epoch: int, split: str, metric: str) -> float:
    value = 0.01 * e_adv + 0.01 * epoch + 0.001 * seed + (0.05 if split == "test_ood" else 0)
    return 2 * value if metric == "recall@20" else value


def _records(e_adv: int, seed: int) -> list[dict]:
    passes = _adv_passes(seed, e_adv)
    records = []
    for epoch in range(1, LAST_EPOCH[seed] + 1):
        record = {"epoch": epoch, "loss": 1.0 / epoch}
        if epoch in passes:
            record.update({"adv_loss": -1.0, "adv_kl": 0.1})
        if epoch % 5 == 0:
            record.update({
                f"{split}/{metric}": _value(e_adv, seed, epoch, split, metric)
                for split in ("valid", "test_ood") for metric in ("recall@20", "ndcg@20")
            })  # fmt: skip
        records.append(record)
    return records


def test_budgets_are_a_quarter_half_e_and_double():
    assert adv_epochs.budgets(20) == [5, 10, 20, 40]
    assert adv_epochs.budgets(13) == [3, 6, 13, 26]
    assert adv_epochs.budgets(3) == [1, 2, 3, 6]
    assert adv_epochs.budgets(1) == [1, 2]


def test_rows_are_the_records_curves_and_stops_and_the_png_decodes(tmp_path):
    ctx = context(tmp_path)
    _write_flagfile(ctx)
    cells = dict(adv_epochs.budget_cells(ctx))
    assert sorted(cells) == [1, 2, 4, 8]
    # The flagfile's E shares the strategies figure's run; the others override e_adv.
    assert cells[4] == strategies.strategy_cells(ctx)[3]
    assert dict(cells[2].overrides) == {"log_test": True, "e_adv": 2}
    assert len({c.name for c in cells.values()}) == 4
    for e_adv, cell in cells.items():
        for seed in ctx.seeds:
            write_records(ctx, cell, seed, _records(e_adv, seed))

    stem = draw(adv_epochs.FIGURE, ctx, str(tmp_path / "out"), "python -m experiments.analyze")
    rows = read_csv(stem + ".csv")
    assert list(rows[0]) == [
        "kind", "e_adv", "split", "metric", "epoch", "mean", "se", "seeds", "value_epoch",
        "budget_spent",
    ]  # fmt: skip
    curves = {
        (int(r["e_adv"]), r["split"], r["metric"], int(r["epoch"])): r
        for r in rows if r["kind"] == "curve"
    }  # fmt: skip
    assert sorted({e for *_, e in curves}) == [5, 10, 15, 20, 25]
    assert {(s, m) for _, s, m, _ in curves} == {
        (s, m) for s in ("valid", "test_ood") for m in ("recall@20", "ndcg@20")
    }
    at_10 = [_value(8, s, 10, "test_ood", "ndcg@20") for s in (1, 2, 3)]
    row = curves[8, "test_ood", "ndcg@20", 10]
    assert float(row["mean"]) == pytest.approx(np.mean(at_10))
    assert float(row["se"]) == pytest.approx(np.std(at_10, ddof=1) / np.sqrt(3))
    assert (int(row["seeds"]), row["budget_spent"]) == (3, "")
    at_25 = [_value(2, s, 25, "valid", "recall@20") for s in (1, 2)]
    row = curves[2, "valid", "recall@20", 25]
    assert (float(row["mean"]), int(row["seeds"])) == (pytest.approx(np.mean(at_25)), 2)

    stops = {(int(r["e_adv"]), r["split"], r["metric"]): r for r in rows if r["kind"] == "adv_stop"}
    assert len(stops) == 4 * 4
    # Last passes, seeds 1-3: E 1: 3, 4, 3; E 2: 6, 7, 6; E 4: 12, 13, 12; E 8: 24, 25, 15 (seed 3's
    # run ends after 5 passes: its budget is not spent).
    for e_adv, last, at, spent in (
        (1, 10 / 3, 5, 3),
        (2, 19 / 3, 10, 3),
        (4, 37 / 3, 15, 3),
        (8, 64 / 3, 25, 2),
    ):
        for split in ("valid", "test_ood"):
            row = stops[e_adv, split, "ndcg@20"]
            curve_row = curves[e_adv, split, "ndcg@20", at]
            assert float(row["epoch"]) == pytest.approx(last)
            assert int(row["value_epoch"]) == at
            assert (row["mean"], row["se"]) == (curve_row["mean"], curve_row["se"])
            assert (int(row["seeds"]), int(row["budget_spent"])) == (3, spent)
    assert png_size(stem + ".png") == expected_size(8.8, 7.0)
