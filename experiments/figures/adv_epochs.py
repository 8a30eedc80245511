"""adv_epochs (Fig. 3/5): AdvInfoNCE's validation and held-out test Recall@20 and
NDCG@20 over training at four adversarial budgets E_adv, with where adversarial
training stops.

  python -m experiments.analyze --figure=adv_epochs --dataset=coat --seeds=5

The budgets are the AdvInfoNCE flagfile's E, its quarter, half and double,
sorted({max(1, round(E / 4)), max(1, round(E / 2)), E, 2E}): the smaller two end
adversarial training well inside a run, the larger two show whether the run stops
before its budget is spent (on Coat, E = 20 with T_adv = 15 needs 300 epochs; early
stopping ends most runs first, so the E and 2E curves coincide up to the stop; budgets
above E are drawn dashed). The cell at E is exactly the strategies figure's AdvInfoNCE
cell (no e_adv override) and shares its runs; the others add ("e_adv", b). All log
their test curves.

CSV columns: kind, e_adv, split, metric, epoch, mean, se, seeds, value_epoch,
budget_spent.
  kind "curve": per budget, split ("valid" or the held-out test split), metric
    (recall@20, ndcg@20) and validation epoch, the mean and standard error over seeds
    (seeds: how many runs have the point); value_epoch = epoch; budget_spent empty.
  kind "adv_stop": per budget, split and metric, where adversarial training stops:
    epoch = the mean over seeds of each run's last adversarial epoch; mean, se = the
    curve's at value_epoch, the first validation epoch at or after it (the curve's
    last where none is); seeds = the runs with any adversarial epoch; budget_spent =
    how many of them ran all E_adv passes. The others ended training first: their
    last pass marks the end of the run, not of the budget. Drawn as a dotted line at
    epoch and a star on the curve at value_epoch (hollow unless every run spent E_adv).
"""

from __future__ import annotations

import math

from matplotlib.lines import Line2D

from advjax.analysis import adversarial_epochs
from experiments.figures.base import (
    COLOURS,
    Context,
    Figure,
    group_rows,
    heldout_split,
    metric_label,
    save_png,
)
from experiments.figures.curves_common import draw_band, mean_curve, new_grid, seed_records
from experiments.figures.strategies import LOG_TEST, strategy_cells
from experiments.run import read_flagfile
from experiments.tables import Cell

METRICS = ("recall@20", "ndcg@20")
# Budget colours in ascending order; the flagfile's own E keeps AdvInfoNCE's colour.
_OTHER_COLOURS = ("tab:orange", "tab:brown", "tab:pink", "tab:olive")


def budgets(e_adv: int) -> list[int]:
    """The flagfile's E_adv with its quarter and half (at least 1) and double, ascending."""
    return sorted({max(1, round(e_adv / 4)), max(1, round(e_adv / 2)), e_adv, 2 * e_adv})


def flagfile_e_adv(ctx: Context) -> int:
    return read_flagfile(strategy_cells(ctx)[3].flagfile).e_adv


def budget_cells(ctx: Context) -> list[tuple[int, Cell]]:
    """(E_adv, cell) per budget; at the flagfile's E, strategies' AdvInfoNCE cell."""
    base = strategy_cells(ctx)[3]
    flag_e = flagfile_e_adv(ctx)
    return [
        (e, base if e == flag_e else ctx.cell(base.method, "advinfonce", (*LOG_TEST, ("e_adv", e))))
        for e in budgets(flag_e)
    ]  # fmt: skip


def _cells(ctx: Context) -> list[Cell]:
    return [cell for _, cell in budget_cells(ctx)]


def adv_stop(records: list[list[dict]], e_adv: int) -> tuple[float, int, int] | None:
    """(mean last adversarial epoch, runs with one, runs that spent all e_adv passes)
    over the seeds' records; None when no run had an adversarial epoch."""
    passes = [adversarial_epochs(r) for r in records]
    passes = [p for p in passes if p]
    if not passes:
        return None
    last = sum(p[-1] for p in passes) / len(passes)
    return last, len(passes), sum(len(p) >= e_adv for p in passes)


def _row(kind, e_adv, split, metric, epoch, point, value_epoch, spent) -> dict:
    return {
        "kind": kind, "e_adv": e_adv, "split": split, "metric": metric, "epoch": epoch,
        "mean": point["mean"], "se": point["se"], "seeds": point["seeds"],
        "value_epoch": value_epoch, "budget_spent": spent,
    }  # fmt: skip


def _rows(ctx: Context) -> list[dict]:
    rows = []
    for e_adv, cell in budget_cells(ctx):
        records = seed_records(ctx, cell)
        splits = ("valid", heldout_split(records[0]))
        curves = {
            (split, metric): mean_curve(records, f"{split}/{metric}")
            for split in splits
            for metric in METRICS
        }
        for (split, metric), points in curves.items():
            rows += [
                _row("curve", e_adv, split, metric, p["epoch"], p, p["epoch"], math.nan)
                for p in points
            ]
        stop = adv_stop(records, e_adv)
        if stop is None:
            continue
        last, n_runs, spent = stop
        for (split, metric), points in curves.items():
            if not points:
                continue
            at = next((p for p in points if p["epoch"] >= last), points[-1])
            point = {**at, "seeds": n_runs}
            rows.append(_row("adv_stop", e_adv, split, metric, last, point, at["epoch"], spent))
    return rows


def _colours(e_advs: list[int], flag_e: int) -> dict[int, str]:
    others = iter(_OTHER_COLOURS * len(e_advs))
    return {e: COLOURS["AdvInfoNCE"] if e == flag_e else next(others) for e in e_advs}


def _style(e_adv: int, flag_e: int) -> str:
    """Budgets above the flagfile's dashed: a run that stops before spending E_adv
    trains the same as at E, and the dashes let the curve beneath show."""
    return "--" if e_adv > flag_e else "-"


def _by_rows(rows: list[list[Line2D]]) -> list[Line2D]:
    """Legend handles in the column-major order fig.legend fills, so that each list
    fills one row (blank entries pad the shorter ones)."""
    ncol = max(map(len, rows))
    padded = [row + [Line2D([], [], linestyle="none", label=" ")] * (ncol - len(row))
              for row in rows]  # fmt: skip
    return [row[k] for k in range(ncol) for row in padded]


def _plot(rows: list[dict], ctx: Context, path: str) -> None:
    flag_e = flagfile_e_adv(ctx)
    colours = _colours(sorted({r["e_adv"] for r in rows}), flag_e)
    splits = list(dict.fromkeys(r["split"] for r in rows))
    fig, axes = new_grid(8.8, 7.0, len(splits), len(METRICS))
    panels = group_rows(rows, "split", "metric", "kind", "e_adv")
    hollow = False
    for i, split in enumerate(splits):
        for j, metric in enumerate(METRICS):
            ax = axes[i][j]
            for e_adv, colour in colours.items():
                points = panels.get((split, metric, "curve", e_adv), [])
                if points:
                    draw_band(
                        ax, points, colour, f"E_adv = {e_adv}", linestyle=_style(e_adv, flag_e)
                    )
                for stop in panels.get((split, metric, "adv_stop", e_adv), []):
                    spent = stop["budget_spent"] == stop["seeds"]
                    hollow |= not spent
                    # The star sits on the curve (at value_epoch), the dotted line at
                    # the mean last adversarial epoch itself.
                    ax.axvline(stop["epoch"], color=colour, linestyle=":", linewidth=1.0)
                    ax.plot(
                        stop["value_epoch"], stop["mean"], marker="*", markersize=13,
                        color=colour, markerfacecolor=colour if spent else "white",
                        markeredgewidth=1.2, linestyle="none", zorder=3,
                    )  # fmt: skip
            role = "validation" if split == "valid" else "held-out test"
            ax.set_title(f"{split} ({role})", fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric_label(f"{split}/{metric}"))
            ax.grid(alpha=0.3)
    lines = [
        Line2D([], [], color=c, linewidth=1.5, linestyle=_style(e, flag_e),
               label=f"E_adv = {e}" + (" (flagfile)" if e == flag_e else ""))
        for e, c in colours.items()
    ]  # fmt: skip
    marks = [
        Line2D([], [], color="0.3", linestyle=":", linewidth=1.0,
               label="mean last adversarial epoch"),
        Line2D([], [], marker="*", markersize=11, color="0.3", linestyle="none",
               label="next validation (E_adv passes spent)"),
    ]  # fmt: skip
    if hollow:
        marks.append(
            Line2D([], [], marker="*", markersize=11, color="0.3", markerfacecolor="white",
                   linestyle="none", label="next validation (some runs ended first)")
        )  # fmt: skip
    fig.legend(handles=_by_rows([lines, marks]), loc="outside lower center",
               ncol=max(len(lines), len(marks)), fontsize=8)  # fmt: skip
    fig.suptitle(
        f"{ctx.dataset} {ctx.backbone} AdvInfoNCE: adversarial budget E_adv "
        f"(mean ± SE, {len(ctx.seeds)} seeds)",
        fontsize=10,
    )
    save_png(fig, path)


FIGURE = Figure(
    name="adv_epochs",
    title="Fig. 3/5: AdvInfoNCE over training at several adversarial budgets E_adv",
    paper=(
        "Fig. 3/5: AdvInfoNCE's in-distribution (validation) and out-of-distribution "
        "(test) curves over training for several numbers of adversarial epochs E_adv, "
        "which bounds the KL ball of the hardness (Eq. 9): up to a threshold more "
        "adversarial epochs help the OOD test, beyond it the OOD performance falls."
    ),
    cells=_cells,
    rows=_rows,
    plot=_plot,
)
