"""The paper's analysis figures as PNG + CSV (SPEC §7; issue 22).

  python -m experiments.analyze --figure=strategies --dataset=coat --seeds=5

Trains the runs a figure needs with experiments.reproduce's machinery (one workdir per
cell and seed under --runs; a finished run is reused, a killed one resumes), then
writes results/figures/NAME_DATASET.png, .csv (the plotted numbers, one row per point)
and .json (command, commit, seeds, the runs read and what the paper's version shows).
--figure=all draws every figure; --report_only trains nothing and draws from the runs
already there. Flagfiles: experiments/configs/<dataset>_<backbone>_<method>.flags.

Shares --seeds, --runs (default runs/analyze here), --batch_seeds and --report_only
with experiments.reproduce; --dataset names the flagfiles' dataset (coat, yahoo, ...).
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import flags

from advjax.errors import ConfigError, WorkdirError
from advjax.files import write_atomically
from advjax.provenance import git_commit
from advjax.train.sinks import print_flushed
from experiments import cli
from experiments.figures import FIGURES, Context, Figure
from experiments.figures.base import write_csv
from experiments.reproduce import finished_run, run_cell_seeds
from experiments.tables import Cell

FLAGS = flags.FLAGS


def define_flags() -> None:
    """analyze's own flags, defined only when it runs as a program: --out is also
    experiments.search's, and --runs' default here must not change reproduce's in a
    process that imports both (the tests)."""
    flags.DEFINE_string(
        "figure", "", f"Figure(s) to draw, comma-separated, or 'all': {', '.join(FIGURES)}."
    )
    flags.DEFINE_string("out", "results/figures", "Where NAME_DATASET.png/.csv/.json go.")
    flags.DEFINE_string("configs", "experiments/configs", "Directory of the flagfiles.")
    FLAGS.set_default("runs", "runs/analyze")
    # --backbone is experiments.run's (a TrainConfig flag): here, the figures' backbone.
    FLAGS.set_default("backbone", "lightgcn")


FIGURE_BACKBONES = ("lightgcn", "mf")


def selected_figures(text: str) -> list[Figure]:
    """--figure's figures, in the order given ('all': registry order)."""
    names = list(FIGURES) if text == "all" else [n for n in text.split(",") if n]
    if not names:
        raise ConfigError(f"--figure is required: all or one of {', '.join(FIGURES)}")
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ConfigError(
            f"--figure: unknown figure {unknown[0]!r}; choose from {', '.join(FIGURES)} or all"
        )
    return [FIGURES[n] for n in names]


def needed_cells(figures: list[Figure], ctx: Context) -> list[Cell]:
    """The cells of all figures, each once (figures share runs by cell name)."""
    cells: dict[str, Cell] = {}
    for figure in figures:
        for cell in figure.cells(ctx):
            if not os.path.exists(cell.flagfile):
                raise ConfigError(f"{cell.flagfile}: no such flagfile (figure {figure.name})")
            cells.setdefault(cell.name, cell)
    return list(cells.values())


def _seed_log(prefix: str):
    return lambda line: print_flushed(f"{prefix}: {line}")


def train_cells(cells: list[Cell], ctx: Context, *, report_only: bool, batching: str,
                batch: bool) -> None:  # fmt: skip
    """Trains every unfinished run of `cells` (or, with report_only, checks that each
    has finished), printing progress."""
    total = len(cells) * len(ctx.seeds)
    for number, cell in enumerate(cells):
        label = f"[{number + 1}/{len(cells)}] {cell.method} ({cell.name})"
        if report_only:
            missing = [s for s in ctx.seeds if finished_run(cell, s, ctx.runs) is None]
            if missing:
                raise WorkdirError(
                    f"{ctx.workdir(cell, missing[0])}: no finished run of {cell.method} "
                    f"seed {missing[0]} (--report_only trains nothing)"
                )
            continue
        logs = {s: _seed_log(f"{label} seed {s}") for s in ctx.seeds}
        tick = time.perf_counter()
        groups = [list(ctx.seeds)] if batch else [[s] for s in ctx.seeds]
        for seeds in groups:
            run_cell_seeds(cell, seeds, ctx.runs, logs, None, batching)
        print_flushed(f"{label}: {len(ctx.seeds)} seeds ready ({time.perf_counter() - tick:.0f} s)")
    print_flushed(f"{total} runs ready under {ctx.runs}")


def sidecar(figure: Figure, ctx: Context, rows: list[dict], command: str) -> dict:
    """What the figure's .json records beside its CSV and PNG."""
    return {
        "figure": figure.name,
        "title": figure.title,
        "dataset": ctx.dataset,
        "backbone": ctx.backbone,
        "seeds": list(ctx.seeds),
        "command": command,
        "commit": git_commit(short=True),
        "rows": len(rows),
        "paper": figure.paper,
        "cells": [
            {
                "method": c.method,
                "flagfile": c.flagfile,
                "overrides": dict(c.overrides),
                "workdirs": [ctx.workdir(c, s) for s in ctx.seeds],
            }
            for c in figure.cells(ctx)
        ],  # fmt: skip
    }


def draw(figure: Figure, ctx: Context, out: str, command: str) -> str:
    """Writes the figure's CSV, JSON and PNG under `out`; returns their path stem."""
    os.makedirs(out, exist_ok=True)
    stem = os.path.join(out, f"{figure.name}_{ctx.dataset}")
    rows = figure.rows(ctx)
    write_csv(stem + ".csv", rows)
    write_atomically(stem + ".json", json.dumps(sidecar(figure, ctx, rows, command), indent=2))
    figure.plot(rows, ctx, stem + ".png")
    return stem


def main(argv: list[str]) -> None:
    del argv  # cli_base.parse_flags refuses stray arguments
    figures = selected_figures(FLAGS.figure)
    if FLAGS.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {FLAGS.seeds}")
    if FLAGS.backbone not in FIGURE_BACKBONES:
        raise ConfigError(f"--backbone must be one of {FIGURE_BACKBONES}, got {FLAGS.backbone!r}")
    ctx = Context(FLAGS.dataset, FLAGS.backbone, tuple(range(1, FLAGS.seeds + 1)), FLAGS.runs,
                  FLAGS.configs)  # fmt: skip
    cells = needed_cells(figures, ctx)
    train_cells(cells, ctx, report_only=FLAGS.report_only, batching=FLAGS.run_batching,
                batch=FLAGS.batch_seeds)  # fmt: skip
    command = " ".join(["python -m experiments.analyze", *sys.argv[1:]])
    for figure in figures:
        stem = draw(figure, ctx, FLAGS.out, command)
        print_flushed(f"wrote {stem}.png, .csv, .json")


if __name__ == "__main__":
    define_flags()
    cli.run_main(main)
