"""Reproduce a paper table over seeds: mean ± std per cell, the paper beside it, p-values.

  python -m experiments.reproduce --table=coat --seeds=5

Runs every cell of the table (experiments/tables.py) for seeds 1..--seeds, each in its
own workdir under --runs (checkpointed: a killed sweep continues where it stopped; a
finished run is only re-reported). Then writes results/TABLE.md and results/TABLE.json:
per cell the mean ± std over seeds of test Recall@20, NDCG@20 and HR@20, the paper's
numbers, the improvement over InfoNCE of the same backbone, and paired t-tests over
seeds of AdvInfoNCE and each of its variants (-mlp, ...) against InfoNCE and against
the strongest rival, and of each rival against AdvInfoNCE. A hand-written
results/TABLE.notes.md (the findings behind shortfalls) is appended under the table.

The seeds of a cell that this process trains run in one compiled program
(--batch_seeds, advjax/train/batch.py; with the default --run_batching=map each result
is bit-identical to the seed trained alone), cell after cell; a killed sweep's runs
resume from their checkpoints either way.

Each run's validation lines are printed as it trains. --shard=I/N splits the runs
between N processes (one per GPU of a host): process I trains the runs whose index is
I modulo N and counts the others that have finished, so the shard that finishes last
writes the complete table (or run --report_only afterwards).

TABLE.json also keeps every tabulated run's results.json ("runs"). With --published,
those records count as finished runs where this machine has none, so a sweep can go on
from a clean clone, or on a GPU host that trains only the runs still missing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time

import numpy as np
import scipy.stats
from absl import flags

from advjax.errors import ConfigError, WorkdirError
from advjax.files import read_json_object, write_atomically
from advjax.metrics import SELECTION_METRIC
from advjax.provenance import git_commit
from advjax.train import TrainConfig, train_and_evaluate
from advjax.train.config import config_differences, format_differences
from advjax.train.loop import train_runs
from advjax.train.sinks import ProgressLines, print_flushed
from experiments import cli
from experiments.run import finished_results, read_flagfile
from experiments.tables import TABLES, Cell

flags.DEFINE_string("table", "", f"Table to reproduce: {', '.join(TABLES)}.")
flags.DEFINE_integer("seeds", 5, "Seeds 1..N per cell.")
flags.DEFINE_string("runs", "runs/reproduce", "Root of the per-run workdirs.")
flags.DEFINE_string("results", "results", "Where TABLE.md and TABLE.json go.")
flags.DEFINE_bool(
    "report_only",
    False,
    "Train nothing: tabulate the finished runs (e.g. copied from a GPU host); cells and "
    "seeds not yet run are shown as such. With no finished run at all it stops and "
    "writes nothing.",
)
flags.DEFINE_string(
    "shard",
    "0/1",
    "I/N: train only every N-th run, starting at run I (0-based); the others are "
    "tabulated if finished. Run N processes with I = 0..N-1 to share one sweep.",
)
flags.DEFINE_bool(
    "published",
    False,
    "Also count the runs recorded in --results/TABLE.json (an earlier sweep's, maybe "
    "from another machine) as finished where --runs has none, if their flags equal the "
    "cell's configuration: they are re-reported, not retrained.",
)
flags.DEFINE_bool(
    "batch_seeds",
    True,
    "Train the seeds of a cell this process trains in one compiled program; "
    "--nobatch_seeds trains them one after another, as separate programs.",
)
FLAGS = flags.FLAGS

METRICS = ("recall@20", "ndcg@20", "hit_ratio@20")


def _cell_run(cell: Cell, seed: int, runs: str) -> tuple[TrainConfig, str]:
    """The configuration and workdir of one cell at one seed."""
    cfg = dataclasses.replace(read_flagfile(cell.flagfile), **dict(cell.overrides), seed=seed)
    # Workdirs are named by cell, not table: tables sharing a cell share its runs.
    return cfg, os.path.join(runs, cell.name, f"seed{seed}")


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    index, _, count = text.partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError:
        raise ConfigError(f"--shard must be I/N, e.g. 0/2; got {text!r}") from None
    if not 0 <= index < count:
        raise ConfigError(f"--shard I/N needs 0 <= I < N; got {text!r}")
    return index, count


def sweep(cells: list[Cell], seeds: int, shard: tuple[int, int]) -> list[tuple[Cell, int, bool]]:
    """Every (cell, seed) of the table, seed by seed, with whether this shard trains it.

    Seed-major, so that a sweep stopped part way has whole seeds of every cell, which
    the paired tests can use, rather than all seeds of the first cells only.
    """
    index, count = shard
    pairs = [(cell, seed) for seed in range(1, seeds + 1) for cell in cells]
    return [(cell, seed, k % count == index) for k, (cell, seed) in enumerate(pairs)]


def training_order(
    runs: list[tuple[Cell, int, bool]], batch: bool
) -> list[tuple[Cell, list[int], bool]]:
    """The sweep's runs as groups handled together: (cell, seeds, whether this shard
    trains them). With `batch`, the seeds of a cell this shard trains form one group,
    placed at the cell's first run, and every other run is a group of its own;
    without, every run is its own group, in sweep order."""
    if not batch:
        return [(cell, [seed], ours) for cell, seed, ours in runs]
    groups: list[tuple[Cell, list[int], bool]] = []
    mine: dict[str, list[int]] = {}
    for cell, seed, ours in runs:
        if not ours:
            groups.append((cell, [seed], False))
        elif cell.name in mine:
            mine[cell.name].append(seed)
        else:
            mine[cell.name] = [seed]
            groups.append((cell, mine[cell.name], True))
    return groups


def run_cell(
    cell: Cell, seed: int, runs: str, log=lambda line: None, published: dict | None = None
) -> dict:
    """Trains (or re-reports) one cell at one seed; returns its results. `log` gets its
    validations, early stop and resumption as lines (advjax.train.sinks.ProgressLines)."""
    done = finished_run(cell, seed, runs, published, log)
    if done is not None:
        return done
    cfg, workdir = _cell_run(cell, seed, runs)
    results = train_and_evaluate(cfg, workdir, sinks=[ProgressLines(log, every_epoch=False)])
    return {**results, "epochs_s": epochs_seconds(workdir)}


def run_cell_seeds(
    cell: Cell,
    seeds: list[int],
    runs: str,
    logs: dict[int, object],
    published: dict | None = None,
    batching: str = "map",
) -> dict[int, dict]:
    """run_cell for several seeds of one cell, the unfinished ones trained in one
    program (advjax/train/batch.py); {seed: results}. `logs`: {seed: its line logger}."""
    done = {seed: finished_run(cell, seed, runs, published, logs[seed]) for seed in seeds}
    todo = [seed for seed in seeds if done[seed] is None]
    if len(todo) == 1:
        done[todo[0]] = run_cell(cell, todo[0], runs, logs[todo[0]], published)
    elif todo:
        cfgs, workdirs = zip(*(_cell_run(cell, seed, runs) for seed in todo), strict=True)
        sinks = [[ProgressLines(logs[seed], every_epoch=False)] for seed in todo]
        train_runs(list(cfgs), list(workdirs), sinks=sinks, batching=batching)
        for seed, workdir, cfg in zip(todo, workdirs, cfgs, strict=True):
            done[seed] = {**finished_results(workdir, cfg), "epochs_s": epochs_seconds(workdir)}
    return done


def finished_run(
    cell: Cell, seed: int, runs: str, published: dict | None = None, log=lambda line: None
) -> dict | None:
    """One cell's finished run at one seed: its workdir's, else its record in
    `published` ({(cell name, seed): results}) when that has the same configuration
    (`log` is told when it has another); None if neither."""
    cfg, workdir = _cell_run(cell, seed, runs)
    results = finished_results(workdir, cfg)
    if results is not None:
        return {**results, "epochs_s": epochs_seconds(workdir)}
    record = (published or {}).get((cell.name, seed))
    if record is None:
        return None
    differences = config_differences(record.get("flags", {}), cfg)
    if differences:
        log(
            f"{cell.name} seed {seed}: the published run has other settings "
            f"({format_differences(differences)}); not counted"
        )
        return None
    return record


def published_runs(path: str) -> dict[tuple[str, int], dict]:
    """{(cell name, seed): results} from the "runs" of a table's JSON (empty when the
    file is absent or was written before it kept its runs)."""
    if not os.path.exists(path):
        return {}
    table, problem = read_json_object(path)
    records = (table or {}).get("runs", [])
    if problem or not isinstance(records, list):
        raise WorkdirError(f"{path}: {problem or 'its runs are not a list'}")
    published = {}
    for number, record in enumerate(records):
        try:
            key, results = (record["cell"], int(record["seed"])), record["results"]
            if not isinstance(results, dict) or "epochs_s" not in results:
                raise TypeError
        except (KeyError, TypeError, ValueError):
            raise WorkdirError(f"{path}: run record {number} lacks cell, seed or results") from None
        published[key] = results
    return published


def run_records(cells: list[Cell], per_seed: dict) -> list[dict]:
    """Every tabulated run as {"cell", "seed", "results"} (results.json plus epochs_s),
    in table order: what --published reads back."""
    return [
        {"cell": cell.name, "seed": seed, "results": per_seed[cell.name][seed]}
        for cell in cells
        for seed in sorted(per_seed.get(cell.name, {}))
    ]


def trained_on(results: dict) -> str:
    """Where a run was trained: its results.json's device, jax version and, where
    recorded, LightGCN's propagation path ("NVIDIA H100 (jax 0.11.2, csr)")."""
    where = results.get("platform")
    if where is None:
        return "cpu (device not recorded)"
    path = f", {where['propagation']}" if where.get("propagation") else ""
    return f"{where['device']} (jax {where['jax']}{path})"


def epochs_seconds(workdir: str) -> float:
    """The run's training time: its epochs' epoch_s in metrics.jsonl (the first
    invocation's, also when the run is only re-reported now); an epoch trained in one
    program with others (epoch_runs) counts its share."""
    total = 0.0
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                total += record.get("epoch_s", 0.0) / record.get("epoch_runs", 1)
            except (json.JSONDecodeError, AttributeError):
                raise WorkdirError(f"{path}:{number}: not a JSON object") from None
    return total


def shift_splits(results: dict) -> list[str]:
    """A popularity-shift split's test sets (data_prep.popularity_shift: test_ood_1,
    test_ood_2, ... by growing shift), in that order; [] for any other split."""
    names = [k for k in results if k.startswith("test_ood_") and k[9:].isdigit()]
    return sorted(names, key=lambda k: int(k[9:]))


def _test_split(results: dict) -> str:
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


def summarize(table: str, cells: list[Cell], per_seed: dict) -> dict:
    """Means, stds, improvements and paired tests from {cell name: {seed: results}}.

    A cell with no finished run gets a row with seeds 0 and no figures; paired tests
    use the seeds both cells finished (at least 2).
    """
    rows = []
    for cell in cells:
        runs = per_seed.get(cell.name, {})
        row = {
            "backbone": cell.backbone,
            "method": cell.method,
            "flagfile": cell.flagfile,
            "overrides": dict(cell.overrides),
            "role": cell.role,
            "paper": cell.paper,
            "seeds": len(runs),
        }
        rows.append(row)
        if not runs:
            continue
        seeds = sorted(runs)
        split = _test_split(runs[seeds[0]])
        values = {m: np.array([runs[s][split][m] for s in seeds]) for m in METRICS}
        row.update(
            split=split,
            seed_list=seeds,
            per_seed={m: v.tolist() for m, v in values.items()},
            **_mean_std(values),
            trained_on=sorted({trained_on(r) for r in runs.values()}),
        )
        # A split whose test_id differs from test_ood (yelp2018.new) also reports the
        # in-distribution test, to set the OOD figures against.
        if split == "test_ood" and any(_distinct_tests(r) for r in runs.values()):
            id_values = {m: np.array([runs[s]["test_id"][m] for s in seeds]) for m in METRICS}
            stats = _mean_std(id_values)
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
    for backbone in {row["backbone"] for row in rows}:
        group = [row for row in rows if row["backbone"] == backbone and row["seeds"]]
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
                        row["shift"][split]["tests"] = _paired_tests(
                            _on_split(row, split), on_split
                        )
    return {"table": table, "rows": rows}


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
        if other is None:
            continue
        common = sorted(set(row["seed_list"]) & set(other["seed_list"]))
        if len(common) < 2:
            continue
        tests[label] = {"against": other["method"], "seeds": len(common)}
        for m in ("recall@20", "ndcg@20"):
            pairs = [_at_seeds(r, m, common) for r in (row, other)]
            tests[label][m] = float(scipy.stats.ttest_rel(*pairs).pvalue)
    return tests


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
    for row in summary["rows"]:
        for label, test in row.get("tests", {}).items():
            lines.append(
                f"- {row['backbone']} {row['method']} {label.replace('_', ' ')} "
                f"({test['against']}, {test['seeds']} paired seeds): "
                f"Recall@20 p = {test['recall@20']:.3g}, "
                f"NDCG@20 p = {test['ndcg@20']:.3g}"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    del argv  # cli_base.parse_flags refuses stray arguments
    start = time.perf_counter()
    if FLAGS.table not in TABLES:
        raise ConfigError(f"--table must be one of {', '.join(TABLES)}; got {FLAGS.table!r}")
    if FLAGS.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {FLAGS.seeds}")
    cells = TABLES[FLAGS.table]
    for cell in cells:
        if not os.path.exists(cell.flagfile):
            raise ConfigError(f"{cell.flagfile}: no such flagfile (run from the repository root)")
    names = [cell.name for cell in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"table {FLAGS.table} lists a cell twice")
    runs = sweep(cells, FLAGS.seeds, parse_shard(FLAGS.shard))
    base = os.path.join(FLAGS.results, FLAGS.table)
    published = published_runs(base + ".json") if FLAGS.published else {}
    if FLAGS.published:
        print(f"{base}.json: {len(published)} published runs", flush=True)
    per_seed = {}
    total = len(runs)
    labels = {
        (cell.name, seed): f"[{index + 1}/{total}] {cell.backbone} {cell.method} seed {seed}"
        for index, (cell, seed, _) in enumerate(runs)
    }

    def progress(cell: Cell, seed: int):
        label = labels[cell.name, seed]
        return lambda line: print_flushed(f"{label}: {line}")

    def tabulate(cell: Cell, seed: int, results: dict | None, seconds: float) -> None:
        if results is None:
            return
        per_seed.setdefault(cell.name, {})[seed] = results
        value = results[_test_split(results)][SELECTION_METRIC]
        print_flushed(
            f"{labels[cell.name, seed]}: {SELECTION_METRIC} {value:.4f} ({seconds:.0f} s)"
        )

    for cell, seeds, ours in training_order(runs, FLAGS.batch_seeds):
        tick = time.perf_counter()
        if FLAGS.report_only or not ours:
            for seed in seeds:
                done = finished_run(cell, seed, FLAGS.runs, published, print_flushed)
                tabulate(cell, seed, done, time.perf_counter() - tick)
            continue
        logs = {seed: progress(cell, seed) for seed in seeds}
        done = run_cell_seeds(cell, seeds, FLAGS.runs, logs, published, FLAGS.run_batching)
        for seed in seeds:
            tabulate(cell, seed, done[seed], time.perf_counter() - tick)
    if FLAGS.report_only and not per_seed:
        # A wrong --runs must not overwrite a published table with empty rows.
        where = f"{FLAGS.runs} or {base}.json" if FLAGS.published else FLAGS.runs
        raise ConfigError(f"{where}: no finished run of table {FLAGS.table}; nothing written")
    summary = summarize(FLAGS.table, cells, per_seed)
    summary.update(
        runs_s=sum(r["epochs_s"] for runs in per_seed.values() for r in runs.values()),
        seeds_requested=FLAGS.seeds,
        commit=git_commit(short=True),
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        wall_s=time.perf_counter() - start,
        runs=run_records(cells, per_seed),
    )
    command = f"python -m experiments.reproduce --table={FLAGS.table} --seeds={FLAGS.seeds}"
    if FLAGS.published:
        command += " --published"
    if FLAGS.report_only:
        command += " --report_only"
    elif FLAGS.shard != "0/1":
        command += f" --shard={FLAGS.shard}"
    summary["command"] = command
    os.makedirs(FLAGS.results, exist_ok=True)
    write_atomically(base + ".json", json.dumps(summary, indent=1))
    text = to_markdown(summary, command)
    # Findings about the table (why a cell falls short) are written by hand beside it
    # and kept under the regenerated table.
    if os.path.exists(base + ".notes.md"):
        with open(base + ".notes.md") as f:
            text += "\n" + f.read()
    write_atomically(base + ".md", text)
    print(f"wrote {base}.md and {base}.json")


if __name__ == "__main__":
    cli.run_main(main)
