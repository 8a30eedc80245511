"""case_study (Fig. 7): for two users, each sampled negative's hardness under
AdvInfoNCE beside its rank and cosine similarity under InfoNCE and under AdvInfoNCE.

  python -m experiments.analyze --figure=case_study --dataset=coat --seeds=5

Reads the InfoNCE and AdvInfoNCE runs (the strategies figure's cells, shared) at the
first seed, restored by advjax.train.finished (AdvInfoNCE's adversary as its last
adversarial pass left it, both CF models at their best validation). Two users are
drawn (NumPy seed CASE_SEED) among the users of AdvInfoNCE's diagnostics sample whose
negatives hold a false negative (a held-out test positive of the user); each is shown
at its first such sample row, with that row's N negatives. delta = log(N p) is
AdvInfoNCE's (delta < 0: the negative was made easier); rank is 1-based among all
items by cosine similarity, the user's training items left out. Both models are read
on the same (user, negative) pairs.

CSV columns: user, sample_row, pos, negative, false_negative (1/0), degree (the
negative's training degree), delta, p, cos_infonce, cos_advinfonce, rank_infonce,
rank_advinfonce: one row per (user, negative).
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from advjax.errors import WorkdirError
from advjax.losses import hardness_delta
from advjax.train.finished import (
    FinishedRun,
    item_cosines,
    item_ranks,
    load_finished_run,
    sample_hardness_logits,
)
from experiments.figures.base import COLOURS, Context, Figure, group_rows, new_figure, save_png
from experiments.figures.strategies import strategy_cells
from experiments.tables import Cell

N_CASES = 2
# The users drawn are a function of this seed and the sample only.
CASE_SEED = 7


def _cells(ctx: Context) -> list[Cell]:
    cells = strategy_cells(ctx)
    return [cells[0], cells[3]]


def case_rows_of(users: np.ndarray, false_negative: np.ndarray, *, n: int = N_CASES,
                 seed: int = CASE_SEED) -> list[int]:  # fmt: skip
    """Sample rows of up to n users drawn (np.random.default_rng(seed), without
    replacement, from the ascending users having a row with a false negative), each
    user's first such row, in the order drawn."""
    users, false_negative = np.asarray(users), np.asarray(false_negative, bool)
    has_fn = false_negative.any(axis=1)
    candidates = np.unique(users[has_fn])
    drawn = np.random.default_rng(seed).choice(
        candidates, size=min(n, candidates.size), replace=False
    )
    return [int(np.flatnonzero(has_fn & (users == user))[0]) for user in drawn]


def case_rows(infonce: FinishedRun, adv: FinishedRun, sample_rows: list[int]) -> list[dict]:
    """The CSV rows of the given rows of AdvInfoNCE's sample, both runs read on them."""
    sample = adv.run.sample
    users = np.asarray(sample.users)[sample_rows]
    negs = np.asarray(sample.negs)[sample_rows]
    logits = sample_hardness_logits(adv)[sample_rows]
    delta = np.asarray(hardness_delta(logits), np.float64)
    p = np.exp(delta) / negs.shape[1]
    runs = {"infonce": infonce, "advinfonce": adv}
    cos = {name: item_cosines(run, users, negs) for name, run in runs.items()}
    rank = {name: item_ranks(run, users, negs) for name, run in runs.items()}
    degree = np.bincount(adv.run.data.train.items, minlength=adv.run.data.n_items)
    false_negative = np.asarray(sample.false_negative)[sample_rows]
    pos = np.asarray(sample.pos)[sample_rows]
    rows = []
    for r, row in enumerate(sample_rows):
        for n, item in enumerate(negs[r].tolist()):
            rows.append({
                "user": int(users[r]), "sample_row": row, "pos": int(pos[r]), "negative": item,
                "false_negative": int(false_negative[r, n]), "degree": int(degree[item]),
                "delta": float(delta[r, n]), "p": float(p[r, n]),
                "cos_infonce": float(cos["infonce"][r, n]),
                "cos_advinfonce": float(cos["advinfonce"][r, n]),
                "rank_infonce": int(rank["infonce"][r, n]),
                "rank_advinfonce": int(rank["advinfonce"][r, n]),
            })  # fmt: skip
    return rows


def _rows(ctx: Context) -> list[dict]:
    infonce_cell, adv_cell = _cells(ctx)
    seed = ctx.seeds[0]
    adv = load_finished_run(ctx.workdir(adv_cell, seed))
    infonce = load_finished_run(ctx.workdir(infonce_cell, seed), data=adv.run.data)
    sample = adv.run.sample
    sample_rows = case_rows_of(sample.users, sample.false_negative)
    if not sample_rows:
        raise WorkdirError(
            f"{adv.workdir}: no negative of the diagnostics sample is a held-out test "
            "positive; the case study needs one"
        )
    return case_rows(infonce, adv, sample_rows)


STYLES = {  # method: (CSV suffix, marker)
    "InfoNCE": ("infonce", "o"),
    "AdvInfoNCE": ("advinfonce", "^"),
}


def _plot(rows: list[dict], ctx: Context, path: str) -> None:
    cases = group_rows(rows, "user")
    fig, axes = new_figure(5.0 * len(cases), 4.4, ncols=len(cases))
    for ax, ((user,), points) in zip(axes, cases.items(), strict=True):
        for method, (suffix, marker) in STYLES.items():
            colour = COLOURS[method]
            plain = [p for p in points if not p["false_negative"]]
            ax.scatter([p["delta"] for p in plain], [p[f"cos_{suffix}"] for p in plain],
                       marker=marker, s=22, color=colour, alpha=0.45, linewidths=0)  # fmt: skip
            fns = [p for p in points if p["false_negative"]]
            ax.scatter([p["delta"] for p in fns], [p[f"cos_{suffix}"] for p in fns],
                       marker=marker, s=80, color=colour, edgecolors="black", linewidths=1.2,
                       zorder=3)  # fmt: skip
        for p in (p for p in points if p["false_negative"]):
            ax.plot([p["delta"]] * 2, [p["cos_infonce"], p["cos_advinfonce"]], color="0.3",
                    linewidth=0.8, zorder=2)  # fmt: skip
            ax.annotate(f"rank {p['rank_infonce']} → {p['rank_advinfonce']}",
                        (p["delta"], max(p["cos_infonce"], p["cos_advinfonce"])),
                        xytext=(4, 6), textcoords="offset points", fontsize=7)  # fmt: skip
        ax.axvline(0.0, color="0.4", linestyle="--", linewidth=1.0)
        ax.margins(x=0.08, y=0.12)  # room for the rank labels
        n_fn = sum(p["false_negative"] for p in points)
        ax.set_title(
            f"user {user} (positive item {points[0]['pos']}): "
            f"{n_fn} of {len(points)} negatives false", fontsize=9
        )  # fmt: skip
        ax.set_xlabel("AdvInfoNCE's delta = log(N p(j | u, i))   (< 0: made easier)")
        ax.set_ylabel("cosine similarity of user and negative")
        ax.grid(alpha=0.3)
    handles = [
        *(Line2D([], [], marker=m, linestyle="", color=COLOURS[k], label=k)
          for k, (_, m) in STYLES.items()),
        Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="black",
               markersize=9, label="false negative (held-out test positive);\n"
               "rank InfoNCE → AdvInfoNCE among all items"),
        Line2D([], [], color="0.4", linestyle="--", label="delta = 0 (uniform weight)"),
    ]  # fmt: skip
    axes[0].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle(
        f"{ctx.dataset} {ctx.backbone}: sampled negatives of two users, seed {ctx.seeds[0]}",
        fontsize=10,
    )
    save_png(fig, path)


FIGURE = Figure(
    name="case_study",
    title="Fig. 7: case study of two users' sampled negatives",
    paper=(
        "Fig. 7: for users of Tencent, the false negatives among the sampled negatives "
        "(held-out test positives) get delta < 0 from AdvInfoNCE's adversary, i.e. are "
        "made easier, and AdvInfoNCE ranks them higher than InfoNCE does."
    ),
    cells=_cells,
    rows=_rows,
    plot=_plot,
)
