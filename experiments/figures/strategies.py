"""strategies (Fig. 2b/4b): test NDCG@20 and Recall@20 over training for InfoNCE,
InfoNCE-Rand, AdvInfoNCE-Reverse and AdvInfoNCE, mean ± standard error over seeds."""

from __future__ import annotations

from experiments.figures.base import (
    COLOURS,
    Context,
    Figure,
    group_rows,
    heldout_split,
    metric_label,
    new_figure,
    save_png,
)
from experiments.figures.curves_common import draw_band, mean_curve, seed_records
from experiments.tables import Cell

METRICS = ("ndcg@20", "recall@20")
LOG_TEST = (("log_test", True),)


def strategy_cells(ctx: Context) -> list[Cell]:
    """The four hardness strategies, each with its test curves logged; the three
    AdvInfoNCE-like ones at the AdvInfoNCE flagfile's settings."""
    return [
        ctx.cell("InfoNCE", "infonce", LOG_TEST),
        ctx.cell("InfoNCE-Rand", "advinfonce", (("hardness_strategy", "random"), *LOG_TEST)),
        ctx.cell("AdvInfoNCE-Reverse", "advinfonce", (("hardness_strategy", "reverse"), *LOG_TEST)),
        ctx.cell("AdvInfoNCE", "advinfonce", LOG_TEST),
    ]


def curve_rows(ctx: Context, cells: list[Cell], metrics: tuple[str, ...]) -> list[dict]:
    """Per cell and held-out metric (its test_ood split where the run has one), one row
    per epoch: the mean and standard error over ctx.seeds (curves_common.mean_curve)."""
    rows = []
    for cell in cells:
        records = seed_records(ctx, cell)
        split = heldout_split(records[0])
        for metric in metrics:
            key = metric if "/" in metric else f"{split}/{metric}"
            rows += [{"method": cell.method, "metric": key, **p} for p in mean_curve(records, key)]
    return rows


def plot_curves(rows: list[dict], path: str, title: str) -> None:
    """One panel per metric: each method's mean over training with a ±SE band."""
    by_metric = group_rows(rows, "metric")
    fig, axes = new_figure(4.4 * len(by_metric), 3.6, ncols=len(by_metric))
    for ax, ((metric,), metric_rows) in zip(axes, by_metric.items(), strict=True):
        for (method,), points in group_rows(metric_rows, "method").items():
            draw_band(ax, points, COLOURS.get(method), method)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric_label(metric))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    save_png(fig, path)


def _rows(ctx: Context) -> list[dict]:
    return curve_rows(ctx, strategy_cells(ctx), METRICS)


def _plot(rows: list[dict], ctx: Context, path: str) -> None:
    plot_curves(
        rows, path,
        f"{ctx.dataset} {ctx.backbone}: held-out test over training "
        f"(mean ± SE, {len(ctx.seeds)} seeds)",
    )  # fmt: skip


FIGURE = Figure(
    name="strategies",
    title="Fig. 2b/4b: hardness strategies over training",
    paper=(
        "Fig. 2b/4b: on Tencent and KuaiRec, AdvInfoNCE's test NDCG@20 climbs above "
        "InfoNCE's once adversarial training starts, InfoNCE-Rand stays near InfoNCE, "
        "and AdvInfoNCE-Reverse (the adversary descending the loss) falls below it."
    ),
    cells=strategy_cells,
    rows=_rows,
    plot=_plot,
)
