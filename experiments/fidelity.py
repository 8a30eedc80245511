"""Coat fidelity study (issue 19): our AdvInfoNCE and InfoNCE against the paper's code.

  python -m experiments.fidelity                      # trains what is missing, then reports
  python -m experiments.fidelity --report_only        # tabulates finished runs only

Trains Coat LightGCN InfoNCE and AdvInfoNCE (their flagfiles, the paper's settings) at
seeds 1..--seeds under both negative modes (`--negatives=fresh|frozen`) with test curves
(`--log_test`), one resumable workdir per run under --runs, then writes
results/coat_fidelity.json (every run's per-validation curves, per-pass divergences and
diagnostics, beside the reference code's curves from ../shared/reference) and the
tables of results/coat_fidelity.md above its hand-written notes
(results/coat_fidelity.notes.md).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import re
import time

import numpy as np
import scipy.stats
from absl import flags

from advjax.files import write_atomically
from advjax.metrics import SELECTION_METRIC
from advjax.provenance import git_commit
from advjax.train.multirun import train_runs
from advjax.train.sinks import ProgressLines, print_flushed
from experiments import cli
from experiments.run import finished_results, read_flagfile


def define_flags() -> None:
    """The CLI's flags, defined only when run as a program (experiments.reproduce, imported
    beside this module in the tests, defines flags of the same names)."""
    flags.DEFINE_integer("seeds", 24, "Seeds 1..N per run kind.")
    flags.DEFINE_string("runs", "runs/fidelity", "Root of the per-run workdirs.")
    flags.DEFINE_string("results", "results", "Where coat_fidelity.md / .json go.")
    flags.DEFINE_list(
        "reference",
        ["../shared/reference", "results/reference_runs"],
        "Folders of the reference code's measured curves (coat_lgn_{infonce,advinfonce}"
        ".seedS.csv; results/reference_runs/SETUP.md says how seeds 1-3 were run).",
    )
    flags.DEFINE_bool("report_only", False, "Tabulate finished runs; train nothing.")
    flags.DEFINE_list(
        "kl_radii",
        ["0.01", "0.025"],
        "AdvInfoNCE runs with --kl_radius at these radii (fresh negatives) beside the paper's "
        "count-based budget.",
    )


FLAGS = flags.FLAGS

CELLS = {
    "infonce": "experiments/configs/coat_lightgcn_infonce.flags",
    "advinfonce": "experiments/configs/coat_lightgcn_advinfonce.flags",
}


def kinds(kl_radii: list[str]) -> dict[str, tuple[str, dict, tuple[str, ...]]]:
    """Run kind -> (cell, settings over its flagfile, negative modes it runs under)."""
    out = {cell: (cell, {}, NEGATIVES) for cell in CELLS}
    for eta in kl_radii:
        out[f"advinfonce-kl{eta}"] = ("advinfonce", {"kl_radius": float(eta)}, ("fresh",))
    return out


REFERENCE_FILE = re.compile(r"coat_lgn_(infonce|advinfonce)\.seed(\d+)\.csv$")
NEGATIVES = ("fresh", "frozen")
TEST = "test_ood"


def run_name(cell: str, negatives: str, seed: int) -> str:
    return f"{cell}-{negatives}-s{seed}"


def read_curves(workdir: str) -> dict:
    """A finished run's per-validation curves and per-pass divergences (metrics.jsonl)."""
    records = []
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    epochs = [r for r in records if "final" not in r]
    validations = [r for r in epochs if f"valid/{SELECTION_METRIC}" in r]
    keys = ("valid/recall@20", "valid/ndcg@20", f"{TEST}/recall@20", f"{TEST}/ndcg@20",
            "repr/align", "repr/uniform", "hardness/kl_u_p", "hardness/kl_p_u",
            "hardness/delta_std", "hardness/pop_corr", "hardness/fn_rate")  # fmt: skip
    return {
        "epoch": [r["epoch"] for r in validations],
        **{k: [r.get(k) for r in validations] for k in keys if any(k in r for r in validations)},
        "loss": [r["loss"] for r in epochs],
        # One value per adversarial pass: KL(U || P) before its update (its only batch).
        "adv_kl": [r["adv_kl"] for r in epochs if "adv_kl" in r],
        "adv_epoch": [r["epoch"] for r in epochs if "adv_kl" in r],
    }


def read_reference(path: str) -> dict:
    """The reference code's per-validation rows (its 0-based epochs made 1-based)."""
    with open(path) as f:
        rows = list(csv.DictReader(f))[:-1]  # the last row repeats the best epoch's metrics
    return {
        "epoch": [int(r["epoch"]) + 1 for r in rows],
        "kl_p_u": [float(r["kl"]) for r in rows],
        "adv_passes": [int(r["adv_passes"]) for r in rows],
        "valid/recall@20": [float(r["valid_recall@20"]) for r in rows],
        f"{TEST}/recall@20": [float(r["test_ood_recall@20"]) for r in rows],
        f"{TEST}/ndcg@20": [float(r["test_ood_ndcg@20"]) for r in rows],
    }


def read_references(folders: list[str]) -> dict[tuple[str, int], dict]:
    """{(cell, seed): curves} of every reference CSV in `folders`."""
    found = {}
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "coat_lgn_*.csv"))):
            match = REFERENCE_FILE.search(os.path.basename(path))
            if match:
                found[match[1], int(match[2])] = read_reference(path)
    return found


def reference_pass_kl(reference: dict) -> list[float]:
    """KL(P || U) after n = 0, 1, 2, ... adversarial updates: the value logged with pass
    n + 1 (computed in its forward, before its update)."""
    by_pass = {}
    for passes, kl in zip(reference["adv_passes"], reference["kl_p_u"], strict=True):
        if passes > 0:
            by_pass.setdefault(passes, kl)
    return [by_pass[n] for n in sorted(by_pass)]


def _stats(values: list[float]) -> dict:
    array = np.asarray(values, float)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0}


def summarize(runs: dict) -> dict:
    """Means over seeds of the stopping-point metrics, paired tests, per-pass KL."""
    summary = {}
    present = sorted({kind for kind, _, _ in runs}, key=lambda k: (k != "infonce", k))
    for negatives in NEGATIVES:
        rows = {}
        for cell in present:
            results = {
                s: r["results"] for (c, n, s), r in runs.items() if c == cell and n == negatives
            }
            if not results:
                continue
            seeds = sorted(results)
            rows[cell] = {
                "seeds": seeds,
                **{
                    m: _stats([results[s][TEST][m] for s in seeds])
                    for m in ("recall@20", "ndcg@20")
                },
                "best_epoch": [results[s]["best_epoch"] for s in seeds],
                "per_seed": {
                    m: [results[s][TEST][m] for s in seeds] for m in ("recall@20", "ndcg@20")
                },
            }
        for kind in [k for k in rows if k != "infonce"]:
            if "infonce" not in rows:
                break
            common = sorted(set(rows["infonce"]["seeds"]) & set(rows[kind]["seeds"]))
            if len(common) > 1:
                tests = {}
                for m in ("recall@20", "ndcg@20"):
                    adv = [runs[kind, negatives, s]["results"][TEST][m] for s in common]
                    base = [runs["infonce", negatives, s]["results"][TEST][m] for s in common]
                    tests[m] = {
                        "mean_difference": float(np.mean(np.subtract(adv, base))),
                        "p": float(scipy.stats.ttest_rel(adv, base).pvalue),
                    }
                rows[kind]["paired_minus_infonce"] = {"seeds": common, **tests}
        kl = [
            runs[k]["curves"]["adv_kl"] for k in runs if k[0] == "advinfonce" and k[1] == negatives
        ]
        if kl:
            depth = max(len(x) for x in kl)
            rows["adv_kl_by_pass"] = [
                _stats([x[n] for x in kl if len(x) > n]) | {"runs": sum(len(x) > n for x in kl)}
                for n in range(depth)
            ]
        summary[negatives] = rows
    return summary


def _mean_curve(curves: list[dict], key: str, epoch: int) -> tuple[float, int] | None:
    values = [c[key][c["epoch"].index(epoch)] for c in curves if epoch in c["epoch"]]
    return (float(np.mean(values)), len(values)) if values else None


def _curves_table(runs: dict, references: dict) -> str:
    """Mean valid and test Recall@20 by epoch: ours (fresh) and the reference's seeds."""
    groups = []
    for kind in ("infonce", "advinfonce"):
        ours = [r["curves"] for (k, n, _), r in runs.items() if k == kind and n == "fresh"]
        theirs = [c for (cell, seed), c in references.items() if cell == kind and seed < 100]
        groups += [(f"{kind}, ours", ours), (f"{kind}, reference", theirs)]
    groups = [(name, curves) for name, curves in groups if curves]
    lines = [
        "| epoch | " + " | ".join(f"{name} valid / test" for name, _ in groups) + " |",
        "|---|" + "---|" * len(groups),
    ]
    for epoch in range(15, 406, 15):
        cells = []
        for _, curves in groups:
            valid = _mean_curve(curves, "valid/recall@20", epoch)
            test = _mean_curve(curves, f"{TEST}/recall@20", epoch)
            cells.append(f"{valid[0]:.4f} / {test[0]:.4f} ({test[1]})" if valid and test else "-")
        lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _table(summary: dict, reference_kl: dict[int, list[float]]) -> str:
    lines = [
        "| run | negatives | test R@20 / N@20 | best epochs | − InfoNCE, paired (p) |",
        "|---|---|---|---|---|",
    ]
    for negatives, rows in summary.items():
        for kind, row in rows.items():
            if kind == "adv_kl_by_pass":
                continue
            r, n = row["recall@20"], row["ndcg@20"]
            paired = row.get("paired_minus_infonce")
            diff = "-"
            if paired:
                recall, ndcg = paired["recall@20"], paired["ndcg@20"]
                diff = (
                    f"R {recall['mean_difference']:+.4f} ({recall['p']:.2g}), "
                    f"N {ndcg['mean_difference']:+.4f} ({ndcg['p']:.2g})"
                )
            lines.append(
                f"| {kind} | {negatives} | {r['mean']:.4f} ± {r['std']:.4f} / "
                f"{n['mean']:.4f} ± {n['std']:.4f} | "
                f"{', '.join(map(str, row['best_epoch']))} | {diff} |"
            )
    lines += [
        "",
        "Mean hardness divergence before adversarial pass n (after n − 1 updates), ours "
        "KL(U‖P) over the seeds (runs), against the reference code's KL(P‖U) after n − 1 "
        "updates, over its seeds other than 101, and at its default seed 101:",
        "",
        "| pass n | "
        + " | ".join(f"ours, {n} negatives" for n in summary)
        + " | reference, seeds "
        + ", ".join(str(s) for s in sorted(reference_kl) if s < 100)
        + " | reference, seed 101 |",
        "|---|" + "---|" * (len(summary) + 2),
    ]
    others = [kl for seed, kl in sorted(reference_kl.items()) if seed < 100]
    depth = max(len(rows.get("adv_kl_by_pass", [])) for rows in summary.values())
    for n in range(depth):
        cells = []
        for rows in summary.values():
            by_pass = rows.get("adv_kl_by_pass", [])
            cells.append(
                f"{by_pass[n]['mean']:.4f} ± {by_pass[n]['std']:.4f} ({by_pass[n]['runs']})"
                if n < len(by_pass) else "-"
            )  # fmt: skip
        at_pass = [kl[n] for kl in others if len(kl) > n]
        ref = "-"
        if len(at_pass) > 1:
            ref = f"{np.mean(at_pass):.4f} ± {np.std(at_pass, ddof=1):.4f} ({len(at_pass)})"
        seed101 = reference_kl.get(101, [])
        ref101 = f"{seed101[n]:.4f}" if n < len(seed101) else "-"
        lines.append(f"| {n + 1} | " + " | ".join(cells) + f" | {ref} | {ref101} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    tick = time.perf_counter()
    runs = {}
    seeds = range(1, FLAGS.seeds + 1)
    for kind, (cell, settings, modes) in kinds(FLAGS.kl_radii).items():
        for negatives in modes:
            names = {seed: run_name(kind, negatives, seed) for seed in seeds}
            workdirs = {seed: os.path.join(FLAGS.runs, names[seed]) for seed in seeds}
            cfgs = {
                seed: dataclasses.replace(
                    read_flagfile(CELLS[cell]),
                    seed=seed,
                    negatives=negatives,
                    log_test=True,
                    **settings,
                )  # fmt: skip
                for seed in seeds
            }
            todo = [s for s in seeds if finished_results(workdirs[s], cfgs[s]) is None]
            if todo and not FLAGS.report_only:
                # The seeds of a kind in one program, each bit-identical to it alone.
                sinks = [
                    [ProgressLines(print_flushed, prefix=f"{names[s]}: ", every_epoch=False)]
                    for s in todo
                ]
                train_runs(
                    [cfgs[s] for s in todo], [workdirs[s] for s in todo], sinks=sinks,
                    batching=FLAGS.run_batching,
                )  # fmt: skip
            for seed in seeds:
                results = finished_results(workdirs[seed], cfgs[seed])
                if results is None:
                    continue
                curves = read_curves(workdirs[seed])
                runs[kind, negatives, seed] = {"results": results, "curves": curves}
                recall = results[TEST]["recall@20"]
                print_flushed(f"{names[seed]}: {TEST} recall@20 {recall:.4f}")
    references = read_references(FLAGS.reference)
    reference_kl = {
        seed: reference_pass_kl(curves)
        for (cell, seed), curves in references.items()
        if cell == "advinfonce"
    }
    summary = summarize(runs)
    record = {
        "command": f"python -m experiments.fidelity --seeds={FLAGS.seeds}",
        "commit": git_commit(short=True),
        "wall_s": time.perf_counter() - tick,
        "summary": summary,
        "reference": [
            {
                "cell": cell,
                "seed": seed,
                "curves": curves,
                "kl_p_u_after_updates": (reference_kl.get(seed) if cell == "advinfonce" else None),
            }
            for (cell, seed), curves in sorted(references.items())
        ],
        "runs": [
            {"kind": c, "negatives": n, "seed": s, **value}
            for (c, n, s), value in sorted(runs.items())
        ],
    }
    base = os.path.join(FLAGS.results, "coat_fidelity")
    write_atomically(base + ".json", json.dumps(record, separators=(",", ":")))
    text = (
        "# Coat fidelity: our AdvInfoNCE and InfoNCE against the paper's code\n\n"
        f"Generated by `{record['command']}` at commit {record['commit']} "
        f"(Coat LightGCN, the paper's settings, seeds 1-{FLAGS.seeds}, test_ood at the "
        "best validation; curves in coat_fidelity.json).\n\n"
        + _table(summary, reference_kl)
        + "\n\nMean validation and test Recall@20 at each epoch, ours (fresh negatives) and "
        "the reference code's at seeds 1-5 (runs that have stopped drop out of the mean; "
        "the count in brackets):\n\n" + _curves_table(runs, references) + "\n"
    )
    notes = base + ".notes.md"
    if os.path.exists(notes):
        with open(notes) as f:
            text += "\n" + f.read()
    write_atomically(base + ".md", text)
    print_flushed(f"wrote {base}.md and {base}.json")


if __name__ == "__main__":
    define_flags()
    cli.run_main(main)
