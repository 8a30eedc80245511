"""align_uniform: every strategy's trajectory starts at the AdvInfoNCE runs' first
adversarial epoch (the earliest over seeds), its points are the synthetic records'
means and standard errors; no adversarial epoch is an error; the PNG decodes."""

import numpy as np
import pytest

from advjax.errors import WorkdirError
from experiments.analyze import draw
from experiments.figures import align_uniform, strategies
from experiments.figures.base import read_csv
from tests.figures.records import context, expected_size, png_size, write_records

# First adversarial epoch per strategy and seed: AdvInfoNCE's earliest is 8 (seed 2),
# so the validation at epoch 5 is cut for all; InfoNCE-Rand's 3 must not move the cut.
FIRST_PASS = {
    "InfoNCE": None,
    "InfoNCE-Rand": {1: 3, 2: 3, 3: 3},
    "AdvInfoNCE-Reverse": {1: 12, 2: 12, 3: 12},
    "AdvInfoNCE": {1: 12, 2: 8, 3: 14},
}


def _uniform(number: int, seed: int, epoch: int) -> float:
    return -2.0 - 0.1 * number - 0.02 * epoch + 0.01 * seed


def _align(number: int, seed: int, epoch: int) -> float:
    return 1.0 + 0.1 * number - 0.01 * epoch + 0.003 * seed**2


def _records(method: str, number: int, seed: int, last_epoch: int, first_pass) -> list[dict]:
    records = []
    for epoch in range(1, last_epoch + 1):
        record = {"epoch": epoch, "loss": 1.0 / epoch}
        if first_pass is not None and epoch >= first_pass and (epoch - first_pass) % 4 == 0:
            record.update({"adv_loss": -1.0, "adv_kl": 0.1})
        if epoch % 5 == 0:
            record["repr/uniform"] = _uniform(number, seed, epoch)
            record["repr/align"] = _align(number, seed, epoch)
        records.append(record)
    return records


def _write(ctx, first_pass=FIRST_PASS) -> list:
    cells = strategies.strategy_cells(ctx)
    for number, cell in enumerate(cells):
        for seed in ctx.seeds:
            firsts = first_pass[cell.method]
            last_epoch = 15 if seed == 3 else 25
            records = _records(cell.method, number, seed, last_epoch, firsts and firsts[seed])
            write_records(ctx, cell, seed, records)
    return cells


def test_trajectories_start_after_the_warm_up_and_the_png_decodes(tmp_path):
    ctx = context(tmp_path)
    cells = _write(ctx)
    assert align_uniform.first_adversarial_epoch(ctx) == 8

    stem = draw(align_uniform.FIGURE, ctx, str(tmp_path / "out"), "python -m ...")
    rows = read_csv(stem + ".csv")
    assert list(rows[0]) == [
        "strategy", "epoch", "uniform_mean", "uniform_se", "align_mean", "align_se", "seeds",
    ]  # fmt: skip
    for cell in cells:
        epochs = [int(r["epoch"]) for r in rows if r["strategy"] == cell.method]
        assert epochs == [10, 15, 20, 25], cell.method
    by_key = {(r["strategy"], int(r["epoch"])): r for r in rows}
    number = 2  # AdvInfoNCE-Reverse
    row = by_key["AdvInfoNCE-Reverse", 10]
    uniform = [_uniform(number, s, 10) for s in (1, 2, 3)]
    align = [_align(number, s, 10) for s in (1, 2, 3)]
    assert float(row["uniform_mean"]) == pytest.approx(np.mean(uniform))
    assert float(row["uniform_se"]) == pytest.approx(np.std(uniform, ddof=1) / np.sqrt(3))
    assert float(row["align_mean"]) == pytest.approx(np.mean(align))
    assert float(row["align_se"]) == pytest.approx(np.std(align, ddof=1) / np.sqrt(3))
    assert int(row["seeds"]) == 3
    row = by_key["InfoNCE", 25]  # seed 3 stopped at 15
    align = [_align(0, s, 25) for s in (1, 2)]
    assert (float(row["align_mean"]), int(row["seeds"])) == (pytest.approx(np.mean(align)), 2)
    assert float(row["align_se"]) == pytest.approx(np.std(align, ddof=1) / np.sqrt(2))
    assert png_size(stem + ".png") == expected_size(6.4, 5.0)


def test_advinfonce_runs_without_an_adversarial_epoch_are_an_error(tmp_path):
    ctx = context(tmp_path)
    _write(ctx, {**FIRST_PASS, "AdvInfoNCE": None})
    with pytest.raises(WorkdirError, match="no adversarial epoch in any AdvInfoNCE run"):
        align_uniform.FIGURE.rows(ctx)
