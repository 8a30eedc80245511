"""A reproduced table's statistics and files: from each cell's finished runs to
results/TABLE.md and results/TABLE.json.

Per cell the mean ± std over seeds of test Recall@20, NDCG@20 and HR@20, the paper's
numbers, the improvement over InfoNCE of the same backbone, and paired t-tests over
seeds of AdvInfoNCE and each of its variants (-mlp, ...) against InfoNCE and against
the strongest rival, of each rival against AdvInfoNCE, and of each baseline (EASE,
iALS: not a loss, so never "the strongest rival") against AdvInfoNCE and InfoNCE of
every backbone; a deterministic model's one run stands for every seed (its tests are
one-sample t-tests of the other cell's seeds against it); a popularity-shift split
also gets paper Table 2's layout. experiments.reproduce sweeps the runs and calls this;
nothing here trains or reads a workdir.
"""

from __future__ import annotations

import json
import os

import numpy as np
import scipy.stats

from advjax.files import write_atomically
from advjax.metrics import SELECTION_METRIC
from advjax.models.registry import FITTED
from experiments.tables import Cell

METRICS = ("recall@20", "ndcg@20", "hit_ratio@20")


def trained_on(results: dict) -> str:
    """Where a run was trained: its results.json's device, jax version and, where
    recorded, LightGCN's propagation path ("NVIDIA H100 (jax 0.11.2, csr)")."""
    where = results.get("platform")
    if where is None:
        return "cpu (device not recorded)"
    path = f", {where['propagation']}" if where.get("propagation") else ""
    return f"{where['device']} (jax {where['jax']}{path})"


def shift_splits(results: dict) -> list[str]:
    """A popularity-shift split's test sets (data_prep.popularity_shift: test_ood_1,
    test_ood_2, ... by growing shift), in that order; [] for any other split."""
    names = [k for k in results if k.startswith("test_ood_") and k[9:].isdigit()]
    return sorted(names, key=lambda k: int(k[9:]))


def table_split(results: dict) -> str:
    """The test set of the main table: test_ood, else a shift split's last (strongest
    shift) test_ood_K, else test."""
    if "test_ood" in results:
        return "test_ood"
    shifted = shift_splits(results)
    return shifted[-1] if shifted else "test"


def _split_stats(runs: dict, seeds: list[int], split: str) -> dict:
    """{'per_seed', 'mean', 'std'} of METRICS on `split` over `seeds` of {seed: results}."""
    values = {m: np.array([runs[s][split][m] for s in seeds]) for m in METRICS}
    return {"per_seed": {m: v.tolist() for m, v in values.items()}, **_mean_std(values)}


def _at_seeds(row: dict, metric: str, seeds: list[int]) -> list[float]:
    """A row's per-seed values of `metric` at the given seeds, in their order."""
    return [row["per_seed"][metric][row["seed_list"].index(s)] for s in seeds]


def _mean_std(values: dict[str, np.ndarray]) -> dict:
    """{'mean': {metric: mean}, 'std': {metric: sample std, 0 for one seed}}."""
    return {
        "mean": {m: float(v.mean()) for m, v in values.items()},
        "std": {m: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for m, v in values.items()},
    }


def summarize(table: str, cells: list[Cell], per_seed: dict, kept: dict | None = None) -> dict:
    """Means, stds, improvements and paired tests from {cell name: {seed: results}}.

    A cell with no finished run gets its row from `kept` ({(flagfile, overrides): a
    published table's row}, kept_rows) when there is one (marked "kept": runs trained
    before tables kept their records), else a row with seeds 0 and no figures; paired
    tests use the seeds both cells finished (at least 2).
    """
    kept = kept or {}
    rows = []
    for cell in cells:
        runs = per_seed.get(cell.name, {})
        old = kept.get(row_key(cell.flagfile, dict(cell.overrides)))
        if not runs and old and old.get("seed_list"):
            row = {**old, "method": cell.method, "role": cell.role, "kept": True}
            rows.append({k: v for k, v in row.items() if k != "tests"})
        else:
            rows.append(_cell_row(cell, runs))
    for backbone in {row["backbone"] for row in rows}:
        _compare([row for row in rows if row["backbone"] == backbone and row["seeds"]])
    _compare_baselines([row for row in rows if row["seeds"]])
    return {"table": table, "rows": rows}


def row_key(flagfile: str, overrides: dict) -> tuple[str, str]:
    """A table row's identity across tables: its flagfile and overrides (kept_rows)."""
    return flagfile, json.dumps(overrides, sort_keys=True)


def kept_rows(results: str, table: str) -> dict:
    """{(flagfile, overrides as sorted JSON): row} of the tables' JSON under `results`
    (summarize's `kept`), `table`'s own winning where two hold the same cell; a file
    that cannot be read as a table is passed over."""
    kept = {}
    own = f"{table}.json"
    names = sorted(n for n in os.listdir(results) if n.endswith(".json") and n != own)
    for name in [*names, *([own] if os.path.exists(os.path.join(results, own)) else [])]:
        with open(os.path.join(results, name)) as f:
            try:
                rows = json.load(f).get("rows", [])
            except (json.JSONDecodeError, AttributeError):
                continue
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and "flagfile" in row and row.get("seed_list"):
                kept[row_key(row["flagfile"], row.get("overrides", {}))] = row
    return kept


def _is_deterministic(results: dict) -> bool:
    """Whether a run's model reads no seed (EASE): its one run stands for every seed."""
    spec = FITTED.get(results.get("flags", {}).get("backbone", ""))
    return spec is not None and spec.deterministic


def _cell_row(cell: Cell, runs: dict) -> dict:
    """A cell's row: what it is, and its figures over the seeds of {seed: results}."""
    row = {
        "backbone": cell.backbone,
        "method": cell.method,
        "flagfile": cell.flagfile,
        "overrides": dict(cell.overrides),
        "role": cell.role,
        "paper": cell.paper,
        "seeds": len(runs),
    }
    if not runs:
        return row
    seeds = sorted(runs)
    split = table_split(runs[seeds[0]])
    row.update(
        split=split,
        seed_list=seeds,
        **_split_stats(runs, seeds, split),
        trained_on=sorted({trained_on(r) for r in runs.values()}),
        deterministic=all(_is_deterministic(r) for r in runs.values()),
    )
    # A split whose test_id differs from test_ood (yelp2018.new) also reports the
    # in-distribution test, to set the OOD figures against.
    if split == "test_ood" and any(_distinct_tests(r) for r in runs.values()):
        stats = _split_stats(runs, seeds, "test_id")
        row["id_mean"], row["id_std"] = stats["mean"], stats["std"]
    # A popularity-shift split (paper Table 2's layout): every test set, and the
    # validation NDCG the runs were selected on.
    shifted = shift_splits(runs[seeds[0]])
    if shifted:
        row["shift"] = {
            name: _split_stats(runs, seeds, name)
            for name in [*shifted, "test_id", "valid"]
            if all(name in runs[s] for s in seeds)
        }
    return row


def _compare(group: list[dict]) -> None:
    """Adds Imp.% over InfoNCE and the paired tests to the rows of one backbone that
    have runs: each rival against AdvInfoNCE; AdvInfoNCE and its variants against
    InfoNCE and the strongest rival (on every shift split too)."""
    base = next((r for r in group if r["role"] == "infonce"), None)
    for row in group:
        if base is not None:
            row["imp_over_infonce_pct"] = {
                m: 100 * (row["mean"][m] / base["mean"][m] - 1) for m in METRICS
            }
    rivals = [r for r in group if r["role"] == "rival"]
    strongest = max(rivals, key=lambda r: r["mean"][SELECTION_METRIC], default=None)
    ours = next((r for r in group if r["role"] == "ours"), None)
    for row in rivals:
        row["tests"] = _paired_tests(row, {"vs_ours": ours})
    for row in group:
        if row["role"] in ("ours", "variant"):
            against = {"vs_infonce": base, "vs_strongest_rival": strongest}
            row["tests"] = _paired_tests(row, against)
            for split in row.get("shift", {}):
                if split != "valid":
                    on_split = {k: _on_split(r, split) for k, r in against.items()}
                    row["shift"][split]["tests"] = _paired_tests(_on_split(row, split), on_split)


def _compare_baselines(rows: list[dict]) -> None:
    """Paired tests of each baseline row (a model outside the losses' comparison: EASE,
    iALS) against AdvInfoNCE ("ours") and InfoNCE of every backbone, on the table's
    split and on every shift split."""
    anchors = {
        f"vs_{r['backbone']}_{r['role']}": r for r in rows if r["role"] in ("ours", "infonce")
    }
    for row in (r for r in rows if r["role"] == "baseline"):
        row["tests"] = _paired_tests(row, anchors)
        for split in row.get("shift", {}):
            if split != "valid":
                on_split = {k: _on_split(r, split) for k, r in anchors.items()}
                row["shift"][split]["tests"] = _paired_tests(_on_split(row, split), on_split)


def _on_split(row: dict | None, split: str) -> dict | None:
    """`row` with its per-seed figures on shift split `split` (None: it has none)."""
    if row is None or split not in row.get("shift", {}):
        return None
    return {**row, "per_seed": row["shift"][split]["per_seed"]}


def _paired_tests(row: dict, against: dict[str, dict | None]) -> dict:
    """{label: {'against', 'seeds', 'recall@20': p, 'ndcg@20': p}}: paired t-tests of
    `row` against each other row over the seeds both finished (skipped under 2)."""
    tests = {}
    for label, other in against.items():
        if other is None or (row.get("deterministic") and other.get("deterministic")):
            continue
        common = sorted(set(row["seed_list"]) & set(other["seed_list"]))
        if row.get("deterministic"):  # one run for every seed: the other's seeds
            common = other["seed_list"]
        elif other.get("deterministic"):
            common = row["seed_list"]
        if len(common) < 2:
            continue
        tests[label] = {"against": other["method"], "seeds": len(common)}
        for m in ("recall@20", "ndcg@20"):
            pairs = [_values(r, m, common) for r in (row, other)]
            tests[label][m] = float(scipy.stats.ttest_rel(*pairs).pvalue)
    return tests


def _values(row: dict, metric: str, seeds: list[int]) -> list[float]:
    """A row's values of `metric` at `seeds`; a deterministic row's one value at each
    (its paired test is then a one-sample t-test of the other row's seeds against it)."""
    if row.get("deterministic"):
        return [row["per_seed"][metric][0]] * len(seeds)
    return _at_seeds(row, metric, seeds)


def _distinct_tests(results: dict) -> bool:
    """Whether a run's test_id and test_ood metrics differ beyond float rounding.

    Identical test files can still differ in the last digits on a GPU, whose
    reductions do not fix their order (KuaiRec on an H100: NDCG 1e-10 apart).
    """
    iid, ood = results.get("test_id"), results["test_ood"]
    return iid is not None and any(
        not np.isclose(iid[m], ood[m], rtol=1e-6, atol=0.0) for m in METRICS
    )


def _devices_text(rows: list[dict]) -> str:
    """'NVIDIA H200 (jax 0.11.2)' or, when cells differ, each device with its cells."""
    cells: dict[str, list[str]] = {}
    for row in rows:
        for device in row.get("trained_on", []):
            cells.setdefault(device, []).append(f"{row['backbone']} {row['method']}")
    if not cells:
        return "nothing yet (no finished run)"
    if len(cells) == 1:
        return next(iter(cells))
    return "; ".join(f"{device}: {', '.join(names)}" for device, names in cells.items())


def mean_std_text(mean: float, std: float) -> str:
    """Mean ± std as "0.2633 ± 0.0153": 4 decimals; more where the std is under 0.0005, so
    that it keeps 2 significant digits (yelp2018's OOD recall, 0.0095 ± 0.00003, would
    otherwise read ± 0.0000)."""
    decimals = 4
    if 0 < std < 5e-4:
        decimals = min(8, 1 - int(np.floor(np.log10(std))))
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _shift_markdown(rows: list[dict]) -> list[str]:
    """Paper Table 2's layout for popularity-shift rows: per metric, a column per test
    set (and validation NDCG), then the paired tests on each test set."""
    shifted = [row for row in rows if "shift" in row]
    if not shifted:
        return []
    splits = list(dict.fromkeys(s for row in shifted for s in row["shift"] if s != "valid"))
    lines = [
        "",
        f"The table above is {shifted[0]['split']}. Paper Table 2's layout, every test set "
        "of the same runs (test_ood_1..K: growing popularity shift, each K's gamma in "
        "the split's SPLIT.md; test_id: the training distribution):",
    ]
    for metric, label in zip(METRICS, ("Recall@20", "NDCG@20", "HR@20"), strict=True):
        valid = metric == "ndcg@20"
        header = [*splits, *(["valid"] if valid else [])]
        lines += [
            "",
            f"| backbone | method | seeds | {' | '.join(f'{s} {label}' for s in header)} |",
            "|---|---|---|" + "---|" * len(header),
        ]
        for row in shifted:
            stats = [row["shift"].get(s) for s in header]
            cols = [mean_std_text(x["mean"][metric], x["std"][metric]) if x else "" for x in stats]
            lines.append(
                f"| {row['backbone']} | {row['method']} | {row['seeds']} | {' | '.join(cols)} |"
            )
    tests = [
        (row, split, label, test)
        for row in shifted
        for split in splits
        for label, test in row["shift"].get(split, {}).get("tests", {}).items()
    ]
    if tests:
        lines += ["", "Paired t-tests on each test set (two-sided p-values):", ""]
        lines += [
            f"- {split}: {row['backbone']} {row['method']} {label.replace('_', ' ')} "
            f"({test['against']}, {test['seeds']} paired seeds): Recall@20 p = "
            f"{test['recall@20']:.3g}, NDCG@20 p = {test['ndcg@20']:.3g}"
            for row, split, label, test in tests
        ]
    return lines


def to_markdown(summary: dict, command: str) -> str:
    """The table as markdown: one row per cell, then the significance tests."""
    lines = [
        f"# {summary['table']}: test metrics over seeds",
        "",
        f"Command: `{command}`  ",
        f"Commit: {summary['commit']}; machine: {summary['machine']}; runs trained on "
        f"{_devices_text(summary['rows'])}; the runs' training "
        f"epochs took {summary['runs_s'] / 60:.1f} min in all (their metrics.jsonl; "
        f"{summary['wall_s'] / 60:.1f} min of wall time in the last invocation, where "
        "finished runs are re-reported, not retrained).  ",
        "Mean ± std over seeds (sample std); paper: one run per cell (SPEC.md §5, blank "
        "where SPEC.md does not state it). Imp.%: change of the mean Recall@20 over "
        "InfoNCE with the same backbone.",
        "",
        "| backbone | method | seeds | Recall@20 | NDCG@20 | HR@20 | paper R@20 / N@20 | Imp.% |",
        "|---|---|---|---|---|---|---|---|",
    ]
    wanted = summary.get("seeds_requested")
    for row in summary["rows"]:
        seeds = f"{row['seeds']} of {wanted}" if wanted and row["seeds"] < wanted else row["seeds"]
        if row.get("deterministic"):
            seeds = f"{row['seeds']} (deterministic)"
        elif row.get("kept"):
            seeds = f"{row['seeds']} (kept)"
        if row["seeds"]:
            cols = [mean_std_text(row["mean"][m], row["std"][m]) for m in METRICS]
        else:
            cols = ["not run", "", ""]
        paper = f"{row['paper'][0]:.4f} / {row['paper'][1]:.4f}" if row["paper"] else ""
        imp = row.get("imp_over_infonce_pct", {}).get("recall@20")
        imp_text = f"{imp:+.1f}" if imp is not None else ""
        lines.append(
            f"| {row['backbone']} | {row['method']} | {seeds} | "
            f"{' | '.join(cols)} | {paper} | {imp_text} |"
        )
    if any(row.get("kept") for row in summary["rows"]):
        lines += [
            "",
            "(kept): the row's per-seed figures are a published table's (results/*.json) "
            "for the same flagfile, from runs trained before tables kept their run "
            "records; they enter the paired tests seed by seed.",
        ]
    with_id = [row for row in summary["rows"] if "id_mean" in row]
    if with_id:
        lines += [
            "",
            "The table above is test_ood. The in-distribution test (test_id) of the same runs:",
            "",
            "| backbone | method | seeds | Recall@20 | NDCG@20 | HR@20 |",
            "|---|---|---|---|---|---|",
        ]
        for row in with_id:
            cols = [mean_std_text(row["id_mean"][m], row["id_std"][m]) for m in METRICS]
            lines.append(
                f"| {row['backbone']} | {row['method']} | {row['seeds']} | {' | '.join(cols)} |"
            )
    lines += _shift_markdown(summary["rows"])
    tests = [row for row in summary["rows"] if row.get("tests")]
    lines += [
        "",
        "Paired t-tests over seeds (two-sided p-values):"
        if tests
        else "Paired t-tests over seeds: none yet (they need 2 seeds of both cells).",
        "",
    ]
    if any(row.get("deterministic") and row.get("tests") for row in summary["rows"]):
        lines += [
            "A deterministic model's one run stands for every seed: its tests are "
            "one-sample t-tests of the other cell's seeds against its value.",
            "",
        ]
    for row in summary["rows"]:
        for label, test in row.get("tests", {}).items():
            lines.append(
                f"- {row['backbone']} {row['method']} {label.replace('_', ' ')} "
                f"({test['against']}, {test['seeds']} paired seeds): "
                f"Recall@20 p = {test['recall@20']:.3g}, "
                f"NDCG@20 p = {test['ndcg@20']:.3g}"
            )
    return "\n".join(lines) + "\n"


def write_table(results: str, table: str, summary: dict) -> None:
    """Writes results/TABLE.json (the summary) and results/TABLE.md (its markdown, and
    under it the hand-written TABLE.notes.md when there is one)."""
    base = os.path.join(results, table)
    os.makedirs(results, exist_ok=True)
    write_atomically(base + ".json", json.dumps(summary, indent=1))
    text = to_markdown(summary, summary["command"])
    # Findings about the table (why a cell falls short) are written by hand beside it
    # and kept under the regenerated table.
    if os.path.exists(base + ".notes.md"):
        with open(base + ".notes.md") as f:
            text += "\n" + f.read()
    write_atomically(base + ".md", text)
