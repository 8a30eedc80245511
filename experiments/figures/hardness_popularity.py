"""hardness_popularity (Fig. 2a/4a): how AdvInfoNCE's hardness p(j | u, i) spreads
over items of different popularity.

  python -m experiments.analyze --figure=hardness_popularity --dataset=coat --seeds=5

Per seed, the finished AdvInfoNCE run (the strategies figure's cell, shared) is
restored (advjax.train.finished: the adversary as its last adversarial pass left it,
the CF model at its best validation), p(j | u, i) = softmax of the hardness logits of
its fixed diagnostics sample's negatives, and the negatives are grouped by their
item's training degree into 10 groups of equal item count (advjax.analysis.
popularity_groups; group 0 the least popular). Per group: the mean p over the sample's
negatives in it, then the mean and standard error over seeds. Uniform weighting gives
every negative 1/N; a group above it holds negatives the adversary made harder.

CSV columns: group, degree_min, degree_max (the group's items' training degrees),
items, mean_p, se (NaN with one seed), seeds (seeds with a negative in the group),
negatives (the sample's negatives in the group, summed over seeds), uniform (1/N).
"""

from __future__ import annotations

import math

import numpy as np

from advjax.analysis import mean_by_group, popularity_groups
from advjax.data import SplitData
from advjax.train.finished import FinishedRun, load_finished_run, sample_hardness_logits
from experiments.figures.base import COLOURS, Context, Figure, new_figure, save_png
from experiments.figures.strategies import strategy_cells
from experiments.tables import Cell

N_GROUPS = 10


def _cells(ctx: Context) -> list[Cell]:
    return [strategy_cells(ctx)[3]]


def item_degrees(data: SplitData) -> np.ndarray:
    """int64 [I] training degree of every item."""
    return np.bincount(data.train.items, minlength=data.n_items).astype(np.int64)


def hardness_probabilities(finished: FinishedRun) -> np.ndarray:
    """float64 [S, N] p(j | u, i): softmax over each row of the sample's hardness logits."""
    logits = sample_hardness_logits(finished).astype(np.float64)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def seed_group_means(finished: FinishedRun, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean p float64 [G], negatives int64 [G]) of one run's sample per group; the
    mean is NaN for a group without a sampled negative."""
    p = hardness_probabilities(finished)
    return mean_by_group(p, np.asarray(finished.run.sample.negs), groups, N_GROUPS)


def popularity_rows(
    per_seed: list[tuple[np.ndarray, np.ndarray]], degrees: np.ndarray, groups: np.ndarray,
    n_neg: int,
) -> list[dict]:  # fmt: skip
    """The CSV rows from every seed's (mean, negatives) per group (seed_group_means)."""
    means = np.stack([mean for mean, _ in per_seed])  # [seeds, G]
    counts = np.stack([count for _, count in per_seed])
    rows = []
    for group in range(N_GROUPS):
        values = means[:, group][~np.isnan(means[:, group])]
        members = degrees[groups == group]
        se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
        rows.append({
            "group": group, "degree_min": int(members.min()), "degree_max": int(members.max()),
            "items": int(members.size),
            "mean_p": float(np.mean(values)) if len(values) else math.nan, "se": se,
            "seeds": int(len(values)), "negatives": int(counts[:, group].sum()),
            "uniform": 1.0 / n_neg,
        })  # fmt: skip
    return rows


def _rows(ctx: Context) -> list[dict]:
    (cell,) = _cells(ctx)
    per_seed, data, groups, degrees, n_neg = [], None, None, None, None
    for seed in ctx.seeds:
        finished = load_finished_run(ctx.workdir(cell, seed), data=data)
        if data is None:  # every seed of the cell trains on the same split
            data = finished.run.data
            degrees = item_degrees(data)
            groups = popularity_groups(degrees, N_GROUPS)
            n_neg = finished.run.cfg.n_neg
        per_seed.append(seed_group_means(finished, groups))
    return popularity_rows(per_seed, degrees, groups, n_neg)


def _plot(rows: list[dict], ctx: Context, path: str) -> None:
    fig, (ax,) = new_figure(6.4, 4.0)
    groups = [r["group"] for r in rows]
    mean = [r["mean_p"] for r in rows]
    se = [0.0 if math.isnan(r["se"]) else r["se"] for r in rows]
    seeds = max(r["seeds"] for r in rows)
    ax.bar(groups, mean, yerr=se, capsize=3, color=COLOURS["AdvInfoNCE"], alpha=0.8,
           error_kw={"linewidth": 1.0}, label=f"AdvInfoNCE (mean ± SE, {seeds} seeds)")  # fmt: skip
    uniform = rows[0]["uniform"]
    ax.axhline(uniform, color="0.25", linestyle="--", linewidth=1.2,
               label=f"uniform 1/N = 1/{round(1 / uniform)}")  # fmt: skip
    ax.set_xticks(groups)
    ax.set_xticklabels(
        [f"{r['group']}\n{r['degree_min']}-{r['degree_max']}" for r in rows], fontsize=7
    )
    ax.set_xlabel(
        "popularity group (0 = least popular, by training degree)\n"
        "tick: group, its items' training-degree range"
    )
    ax.set_ylabel("mean p(j | u, i)")
    ax.set_ylim(bottom=0.0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(
        f"{ctx.dataset} {ctx.backbone}: AdvInfoNCE's hardness by item popularity", fontsize=10
    )
    save_png(fig, path)


FIGURE = Figure(
    name="hardness_popularity",
    title="Fig. 2a/4a: AdvInfoNCE's hardness p(j | u, i) per item-popularity group",
    paper=(
        "Fig. 2a/4a: on Tencent and KuaiRec, AdvInfoNCE's learned p(j | u, i) is not flat "
        "over item popularity as InfoNCE's uniform 1/N is; as we read the figure it leans "
        "towards popular negatives, which the paper links to its robustness to popularity "
        "shift (SPEC §7 states the protocol, not the direction)."
    ),
    cells=_cells,
    rows=_rows,
    plot=_plot,
)
