"""fn_identification (Fig. 6): how often AdvInfoNCE's adversary makes false negatives
easier, over training, beside the held-out test NDCG@20 of InfoNCE and AdvInfoNCE.

  python -m experiments.analyze --figure=fn_identification --dataset=coat --seeds=5

The false-negative identification rate ("hardness/fn_rate", SPEC §7) is, on the run's
fixed diagnostic sample, the share of sampled negatives that are held-out test
positives of their user with delta < 0. InfoNCE weights every negative alike
(delta = 0), so its rate is 0 by definition: it has no curve, only a legend note.
The cells are the strategies figure's InfoNCE and AdvInfoNCE (shared runs).

CSV columns: method, metric ("hardness/fn_rate", or "<held-out split>/ndcg@20"), epoch,
mean, se, seeds (as the strategies figure's): one row per validation epoch.
"""

from __future__ import annotations

from experiments.figures.base import (
    COLOURS,
    Context,
    Figure,
    group_rows,
    metric_label,
    new_figure,
    save_png,
)
from experiments.figures.curves_common import draw_band
from experiments.figures.strategies import curve_rows, strategy_cells
from experiments.tables import Cell

FN_RATE = "hardness/fn_rate"


def _cells(ctx: Context) -> list[Cell]:
    cells = strategy_cells(ctx)
    return [cells[0], cells[3]]


def _rows(ctx: Context) -> list[dict]:
    infonce, advinfonce = _cells(ctx)
    return [
        *curve_rows(ctx, [advinfonce], (FN_RATE,)),
        *curve_rows(ctx, [infonce, advinfonce], ("ndcg@20",)),
    ]


def _plot(rows: list[dict], ctx: Context, path: str) -> None:
    fig, (fn_ax, test_ax) = new_figure(8.8, 3.8, ncols=2)
    by_metric = group_rows(rows, "metric", "method")
    for (metric, method), points in by_metric.items():
        ax = fn_ax if metric == FN_RATE else test_ax
        draw_band(ax, points, COLOURS.get(method), method)
        if metric != FN_RATE:
            ax.set_ylabel(metric_label(metric))
    fn_ax.axhline(0.5, color="0.4", linestyle="--", linewidth=1.0,
                  label="chance: delta sign random")  # fmt: skip
    # InfoNCE's delta is 0 for every negative: no false negative is ever made easier.
    fn_ax.plot([], [], " ", label="InfoNCE: 0 by definition (delta = 0)")
    if not any(metric == FN_RATE for metric, _ in by_metric):
        fn_ax.text(0.5, 0.75, "no held-out positive among the sampled negatives",
                   ha="center", fontsize=8, transform=fn_ax.transAxes)  # fmt: skip
    fn_ax.set_ylim(0.0, 1.0)
    fn_ax.set_ylabel("false-negative identification rate")
    fn_ax.set_title("false negatives with delta < 0", fontsize=9)
    test_ax.set_title("held-out test", fontsize=9)
    for ax in (fn_ax, test_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"{ctx.dataset} {ctx.backbone}: false-negative identification "
        f"(mean ± SE, {len(ctx.seeds)} seeds)",
        fontsize=10,
    )
    save_png(fig, path)


FIGURE = Figure(
    name="fn_identification",
    title="Fig. 6: false-negative identification rate over training",
    paper=(
        "Fig. 6: among the sampled negatives that are held-out test positives (false "
        "negatives), the share AdvInfoNCE's adversary makes easier (delta < 0) over "
        "training: about 70 % on Tencent at the end, well above the 50 % a random delta "
        "sign gives. InfoNCE's rate is 0 by definition (delta = 0 for every negative), "
        "so it has no curve; the second panel shows both methods' test NDCG@20."
    ),
    cells=_cells,
    rows=_rows,
    plot=_plot,
)
