"""Synthetic run records for the figure tests: workdirs holding a metrics.jsonl (and,
for the figures that restore checkpoints, tiny trained runs), no real dataset."""

from __future__ import annotations

import json
import os

import matplotlib.image

from experiments.figures.base import DPI, Context
from experiments.tables import Cell


def context(tmp_path, seeds=(1, 2, 3)) -> Context:
    """A Context over tmp_path/runs, its flagfiles in tmp_path/configs."""
    os.makedirs(tmp_path / "configs", exist_ok=True)
    runs, configs = str(tmp_path / "runs"), str(tmp_path / "configs")
    return Context("tiny", "lightgcn", tuple(seeds), runs, configs)


def write_records(ctx: Context, cell: Cell, seed: int, records: list[dict]) -> None:
    """Writes `records` (per-epoch dicts with "epoch") as the run's metrics.jsonl."""
    workdir = ctx.workdir(cell, seed)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
        f.write(json.dumps({"epoch": records[-1]["epoch"], "final": True}) + "\n")


def png_size(path: str) -> tuple[int, int]:
    """(width, height) in pixels of a PNG, decoded."""
    image = matplotlib.image.imread(path)
    return image.shape[1], image.shape[0]


def expected_size(width_in: float, height_in: float) -> tuple[int, int]:
    return round(width_in * DPI), round(height_in * DPI)
