"""What every figure of experiments.analyze shares: its description (Figure), where
its runs live (Context), and how its CSV, sidecar JSON and PNG are written.

A figure names the cells it needs (experiments.tables.Cell; trained by analyze through
experiments.reproduce's resumable machinery), turns their finished runs into rows (the
CSV: one row per plotted point) and plots those rows, and nothing else: the PNG shows
exactly the CSV's numbers.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Callable
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend is chosen first

from advjax.errors import WorkdirError  # noqa: E402
from advjax.files import write_atomically  # noqa: E402
from advjax.logs import read_metrics  # noqa: E402
from experiments.tables import Cell  # noqa: E402

# Every PNG is drawn at this resolution; a figure's size is given in inches.
DPI = 120
# Line colours per method, the same in every figure (matplotlib's colour-blind-safe
# "tab10" order).
COLOURS = {
    "InfoNCE": "tab:blue",
    "InfoNCE-Rand": "tab:green",
    "AdvInfoNCE-Reverse": "tab:purple",
    "AdvInfoNCE": "tab:red",
}
METRIC_LABELS = {"ndcg@20": "NDCG@20", "recall@20": "Recall@20", "hit_ratio@20": "HR@20"}


def metric_label(key: str) -> str:
    """'test_ood/ndcg@20' -> 'test_ood NDCG@20' (axis labels)."""
    split, _, metric = key.rpartition("/")
    return f"{split} {METRIC_LABELS.get(metric, metric)}".strip()


@dataclasses.dataclass(frozen=True)
class Context:
    """Where a figure's runs are and which ones it reads.

    Attributes:
      dataset: the flagfiles' dataset stem ("coat", "yahoo").
      backbone: "lightgcn" or "mf".
      seeds: the seeds of every cell.
      runs: root of the run workdirs (<runs>/<cell name>/seed<S>, as reproduce has them).
      configs: the flagfiles' directory.
    """

    dataset: str
    backbone: str
    seeds: tuple[int, ...]
    runs: str
    configs: str = "experiments/configs"

    def cell(self, method: str, stem: str, overrides: tuple = ()) -> Cell:
        """The cell of `method` from the flagfile <dataset>_<backbone>_<stem>.flags."""
        path = os.path.join(self.configs, f"{self.dataset}_{self.backbone}_{stem}.flags")
        return Cell(self.backbone, method, path, None, "rival", tuple(overrides))

    def workdir(self, cell: Cell, seed: int) -> str:
        return os.path.join(self.runs, cell.name, f"seed{seed}")

    def records(self, cell: Cell, seed: int) -> list[dict]:
        """The per-epoch records of one finished run (advjax.logs.read_metrics)."""
        return read_metrics(self.workdir(cell, seed))


class Figure(NamedTuple):
    """One analysis figure.

    Attributes:
      name: its --figure name and file stem.
      title: one line naming the paper's figure or table it follows.
      paper: what the paper's version shows (written into the sidecar JSON).
      cells: the cells whose runs it reads ([] for a figure that measures instead).
      rows: the CSV rows from the finished runs, one per plotted point.
      plot: draws the rows into a PNG at the given path.
    """

    name: str
    title: str
    paper: str
    cells: Callable[[Context], list[Cell]]
    rows: Callable[[Context], list[dict]]
    plot: Callable[[list[dict], Context, str], None]


def csv_text(rows: list[dict]) -> str:
    """The rows as CSV, columns in the first row's order; floats with 6 significant
    digits' worth of precision kept (repr), NaN written empty."""
    if not rows:
        raise ValueError("a figure needs at least one row")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        )
    return out.getvalue()


def read_csv(path: str) -> list[dict]:
    """A figure's CSV back as rows of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def new_figure(width: float, height: float, ncols: int = 1):
    """(figure, axes list) at DPI; a constrained layout keeps labels from overlapping."""
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, list(axes) if ncols > 1 else [axes]


def save_png(fig, path: str) -> None:
    """Writes the figure as PNG (atomically: a temporary file renamed) and closes it."""
    tmp = f"{path}.tmp.png"
    try:
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, path)
    except OSError as err:
        raise WorkdirError(f"{path}: cannot write the figure ({err.strerror})") from None
    finally:
        plt.close(fig)


def write_csv(path: str, rows: list[dict]) -> None:
    write_atomically(path, csv_text(rows))


def group_rows(rows: list[dict], *keys: str) -> dict[tuple, list[dict]]:
    """Rows grouped by the values of `keys`, groups and rows in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    return groups


def heldout_split(records: list[dict]) -> str:
    """The split the test curves are logged for: test_ood where the run has one."""
    keys = {k for r in records for k in r}
    return "test_ood" if any(k.startswith("test_ood/") for k in keys) else "test"
