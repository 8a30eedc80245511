"""n_neg (Table 13): test Recall@20 and NDCG@20 of InfoNCE and AdvInfoNCE with N = 64,
128 and 256 sampled negatives, mean ± SE over seeds, and paired t-tests per N.

  python -m experiments.analyze --figure=n_neg --dataset=coat --seeds=5

Each N is a cell of the method's flagfile with its test curves logged (as the
strategies figure's cells): the N the flagfile already has is exactly that figure's
cell (no n_neg override) and shares its runs; the other Ns add ("n_neg", N). The CSV
has one row per method, N and metric; n_neg_DATASET.md shows the table beside the PNG.
"""

from __future__ import annotations

import numpy as np
import scipy.stats

from advjax.errors import WorkdirError
from advjax.files import write_atomically
from experiments.figures.base import (
    COLOURS,
    METRIC_LABELS,
    Context,
    Figure,
    group_rows,
    new_figure,
    save_png,
)
from experiments.figures.strategies import LOG_TEST
from experiments.report import mean_std_text
from experiments.reproduce import finished_run
from experiments.run import read_flagfile
from experiments.tables import Cell

N_NEGS = (64, 128, 256)
METHODS = (("InfoNCE", "infonce"), ("AdvInfoNCE", "advinfonce"))
METRICS = ("recall@20", "ndcg@20")
BASELINE = "InfoNCE"


def n_neg_points(ctx: Context) -> list[tuple[str, int, Cell]]:
    """(method, N, cell) for every method and N of the figure.

    k_neg stays the flagfile's: K is the paper's own hyperparameter, a fixed weight
    standing in for the full negative set (64 for every dataset, also where N is 128:
    SPEC §3, the KuaiRec flagfile), not a copy of N that should follow it. Coat's and
    Yahoo's flagfiles only happen to have K = N = 64.
    """
    points = []
    for method, stem in METHODS:
        base = ctx.cell(method, stem, LOG_TEST)
        flag_n = read_flagfile(base.flagfile).n_neg
        for n in N_NEGS:
            overrides = LOG_TEST if n == flag_n else (*LOG_TEST, ("n_neg", n))
            points.append((method, n, ctx.cell(method, stem, overrides)))
    return points


def n_neg_cells(ctx: Context) -> list[Cell]:
    return [cell for _, _, cell in n_neg_points(ctx)]


def _test_split(results: dict) -> str:
    return "test_ood" if "test_ood" in results else "test"


def seed_values(ctx: Context, cell: Cell) -> tuple[str, dict[str, dict[int, float]]]:
    """(split, {metric: {seed: value}}) of the cell's finished runs at ctx.seeds, read
    from their results.json (experiments.reproduce.finished_run).

    Raises:
      WorkdirError: a seed has no finished run of the cell's configuration.
    """
    runs = {}
    for seed in ctx.seeds:
        results = finished_run(cell, seed, ctx.runs)
        if results is None:
            raise WorkdirError(
                f"{ctx.workdir(cell, seed)}: no finished run of {cell.name} seed {seed}"
            )
        runs[seed] = results
    split = _test_split(runs[ctx.seeds[0]])
    return split, {m: {s: float(r[split][m]) for s, r in runs.items()} for m in METRICS}


def summary_rows(points: list[tuple[str, int, str, dict[str, dict[int, float]]]]) -> list[dict]:
    """One row per (method, N, metric): mean, sample std, SE and seed count of the
    per-seed values, and for the non-baseline methods the p-value of a paired t-test
    against the baseline at the same N over the seeds both have (NaN under 2).

    Args:
      points: (method, N, split, {metric: {seed: value}}).
    """
    values = {(method, n): (split, by_metric) for method, n, split, by_metric in points}
    rows = []
    for (method, n), (split, by_metric) in values.items():
        for metric in METRICS:
            per_seed = by_metric[metric]
            x = np.array(list(per_seed.values()), np.float64)
            std = float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")
            p = float("nan")
            base = values.get((BASELINE, n))
            if method != BASELINE and base is not None:
                other = base[1][metric]
                common = sorted(set(per_seed) & set(other))
                if len(common) >= 2:
                    ours, theirs = [per_seed[s] for s in common], [other[s] for s in common]
                    p = float(scipy.stats.ttest_rel(ours, theirs).pvalue)
            rows.append({
                "method": method, "n_neg": n, "metric": metric, "mean": float(x.mean()),
                "std": std, "se": std / np.sqrt(len(x)), "seeds": len(x), "split": split,
                "p_vs_infonce": p,
            })  # fmt: skip
    return rows


def _rows(ctx: Context) -> list[dict]:
    return summary_rows(
        [(method, n, *seed_values(ctx, cell)) for method, n, cell in n_neg_points(ctx)]
    )


def _p_text(p: float) -> str:
    return "–" if p != p else f"{p:.3g}"


def markdown(rows: list[dict], ctx: Context) -> str:
    """Per N: each method's mean ± std per metric, and AdvInfoNCE's paired p-values."""
    by = {(r["method"], r["n_neg"], r["metric"]): r for r in rows}
    others = [m for m, _ in METHODS if m != BASELINE]
    header, align = ["N"], ["---:"]
    for metric in METRICS:
        label = METRIC_LABELS[metric]
        header += [f"{m} {label}" for m, _ in METHODS] + [f"p {o} vs {BASELINE} ({label})"
                                                           for o in others]  # fmt: skip
        align += ["---:"] * (len(METHODS) + len(others))
    lines = [
        f"# Number of negatives N: {ctx.dataset} {ctx.backbone} (paper Table 13)",
        "",
        f"Test ({rows[0]['split']}) metrics at the best validation epoch, mean ± std over "
        f"{rows[0]['seeds']} seeds ({', '.join(map(str, ctx.seeds))}); p: paired t-test "
        "over the seeds both methods have (scipy.stats.ttest_rel). K (k_neg) stays the "
        "flagfile's at every N.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(align) + "|",
    ]
    for n in sorted({r["n_neg"] for r in rows}):
        cells = [str(n)]
        for metric in METRICS:
            for method, _ in METHODS:
                r = by.get((method, n, metric))
                cells.append("–" if r is None else mean_std_text(r["mean"], r["std"]))
            for other in others:
                r = by.get((other, n, metric))
                cells.append("–" if r is None else _p_text(r["p_vs_infonce"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(rows: list[dict], ctx: Context, path: str) -> None:
    """One panel per metric: each method's mean against N (log2 axis), ±SE error bars;
    writes the markdown table beside the PNG."""
    write_atomically(path.removesuffix(".png") + ".md", markdown(rows, ctx))
    by_metric = group_rows(rows, "metric")
    fig, axes = new_figure(4.4 * len(by_metric), 3.6, ncols=len(by_metric))
    for ax, ((metric,), metric_rows) in zip(axes, by_metric.items(), strict=True):
        for (method,), points in group_rows(metric_rows, "method").items():
            ax.errorbar(
                [p["n_neg"] for p in points], [p["mean"] for p in points],
                yerr=[0.0 if p["se"] != p["se"] else p["se"] for p in points],
                label=method, color=COLOURS.get(method), marker="o", capsize=3, linewidth=1.5,
            )  # fmt: skip
        ns = sorted({r["n_neg"] for r in metric_rows})
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.set_xlabel("negatives per positive N")
        ax.set_ylabel(f"{metric_rows[0]['split']} {METRIC_LABELS[metric]}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{ctx.dataset} {ctx.backbone}: test metrics vs N (mean ± SE, {len(ctx.seeds)} seeds)",
        fontsize=10,
    )
    save_png(fig, path)


FIGURE = Figure(
    name="n_neg",
    title="Table 13: the number of sampled negatives N",
    paper=(
        "Table 13: test Recall@20 / NDCG@20 of InfoNCE and AdvInfoNCE with N = 64, 128 "
        "and 256 sampled negatives (its numbers are not in SPEC.md, so none are set "
        "beside ours)."
    ),
    cells=n_neg_cells,
    rows=_rows,
    plot=_plot,
)
