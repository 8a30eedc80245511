"""Reproduce a paper table over seeds: mean ± std per cell, the paper beside it, p-values.

  python -m experiments.reproduce --table=coat --seeds=5

Runs every cell of the table (experiments/tables.py) for seeds 1..--seeds, each in its
own workdir under --runs (checkpointed: a killed sweep continues where it stopped; a
finished run is only re-reported). Then writes results/TABLE.md and results/TABLE.json
(experiments/report.py: per cell the mean ± std over seeds of test Recall@20, NDCG@20
and HR@20, the paper's numbers, the improvement over InfoNCE of the same backbone, and
paired t-tests over seeds). A hand-written results/TABLE.notes.md (the findings behind
shortfalls) is appended under the table.

The seeds of a cell that this process trains run in one compiled program
(--batch_seeds, advjax/train/multirun.py; with the default --run_batching=map each result
is bit-identical to the seed trained alone), cell after cell; a killed sweep's runs
resume from their checkpoints either way.

Each run's validation lines are printed as it trains. --shard=I/N splits the runs
between N processes (one per GPU of a host): process I trains the runs whose index is
I modulo N and counts the others that have finished, so the shard that finishes last
writes the complete table (or run --report_only afterwards).

TABLE.json also keeps every tabulated run's results.json ("runs"). With --published,
those records count as finished runs where this machine has none, so a sweep can go on
from a clean clone, or on a GPU host that trains only the runs still missing; the
records of every other table under --results count too, for the cells tables share
(yahoo_baselines reuses yahoo_augmented's LightGCN runs); and a cell without any
such run keeps a published table's per-seed figures for its flagfile (runs trained
before tables kept their records: KuaiRec's on an H100, Yahoo!R3's MF rows). A cell
of a deterministic model (EASE) runs at seed 1 only: that run stands for every seed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time

from absl import flags

from advjax.errors import ConfigError, WorkdirError
from advjax.files import read_json_object
from advjax.metrics import SELECTION_METRIC
from advjax.provenance import git_commit
from advjax.train import TrainConfig, train_and_evaluate
from advjax.train.config import config_differences, format_differences
from advjax.train.multirun import train_runs
from advjax.train.sinks import ProgressLines, print_flushed
from experiments import cli
from experiments.report import kept_rows, row_key, summarize, table_split, write_table
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
    "from another machine), and in the other tables' JSON there for the cells they "
    "share, as finished where --runs has none, if their flags equal the cell's "
    "configuration: they are re-reported, not retrained.",
)
flags.DEFINE_bool(
    "batch_seeds",
    True,
    "Train the seeds of a cell this process trains in one compiled program; "
    "--nobatch_seeds trains them one after another, as separate programs.",
)
FLAGS = flags.FLAGS


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


def deterministic(cell: Cell) -> bool:
    """Whether the cell's model reads no seed (EASE: advjax/models/fitted.py), so that
    one run is all its seeds (report.py tests the other cells' seeds against it)."""
    spec = read_flagfile(cell.flagfile).fitted_spec
    return spec is not None and spec.deterministic


def sweep(
    cells: list[Cell], seeds: int, shard: tuple[int, int], once: frozenset[str] = frozenset()
) -> list[tuple[Cell, int, bool]]:
    """Every (cell, seed) of the table, seed by seed, with whether this shard trains it;
    the cells named in `once` (deterministic ones) at seed 1 only.

    Seed-major, so that a sweep stopped part way has whole seeds of every cell, which
    the paired tests can use, rather than all seeds of the first cells only.
    """
    index, count = shard
    pairs = [
        (cell, seed)
        for seed in range(1, seeds + 1)
        for cell in cells
        if seed == 1 or cell.name not in once
    ]
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
    program (advjax/train/multirun.py); {seed: results}. `logs`: {seed: its line logger}."""
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


def keep_published_rows(
    runs: list[tuple[Cell, int, bool]], kept: dict, published: dict, root: str
) -> list[tuple[Cell, int, bool]]:
    """The sweep with the cells that keep a published row (kept_rows: per-seed figures
    without run records) trained by no shard, unless some run of theirs is here or
    published (then the runs are the row, and the missing ones train as usual). `root`:
    --runs, where a cell's workdirs are."""
    own_runs = {name for name, _ in published} | {
        c.name for c, s, _ in runs if os.path.exists(os.path.join(root, c.name, f"seed{s}"))
    }
    keeps = {
        c.name
        for c, _, _ in runs
        if row_key(c.flagfile, dict(c.overrides)) in kept and c.name not in own_runs
    }
    for name in sorted(keeps):
        print(f"{name}: its published row is kept (no run records to resume from)", flush=True)
    return [(c, s, ours and c.name not in keeps) for c, s, ours in runs]


def every_published_run(results: str, table: str) -> dict[tuple[str, int], dict]:
    """published_runs of every TABLE.json under `results`, `table`'s own winning where
    two hold the same cell and seed (tables sharing a cell share its runs)."""
    published = {}
    own = f"{table}.json"
    others = sorted(n for n in os.listdir(results) if n.endswith(".json") and n != own)
    for name in others:
        other, problem = read_json_object(os.path.join(results, name))
        if not problem and isinstance(other.get("runs"), list) and "rows" in other:
            published.update(published_runs(os.path.join(results, name)))
    # The table's own records: an unreadable file is an error, not skipped.
    published.update(published_runs(os.path.join(results, own)))
    return published


def run_records(cells: list[Cell], per_seed: dict) -> list[dict]:
    """Every tabulated run as {"cell", "seed", "results"} (results.json plus epochs_s),
    in table order: what --published reads back."""
    return [
        {"cell": cell.name, "seed": seed, "results": per_seed[cell.name][seed]}
        for cell in cells
        for seed in sorted(per_seed.get(cell.name, {}))
    ]


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


def _table_cells(table: str) -> list[Cell]:
    """The cells of `table` (one of TABLES), each with its flagfile present and its
    name once."""
    cells = TABLES[table]
    for cell in cells:
        if not os.path.exists(cell.flagfile):
            raise ConfigError(f"{cell.flagfile}: no such flagfile (run from the repository root)")
    names = [cell.name for cell in cells]
    if len(set(names)) != len(names):
        raise ConfigError(f"table {table} lists a cell twice")
    return cells


def _sweep_runs(runs: list[tuple[Cell, int, bool]], published: dict) -> dict:
    """Trains this shard's unfinished runs (none with --report_only) and collects every
    finished one, printing each run's line as it comes: {cell name: {seed: results}}."""
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
        value = results[table_split(results)][SELECTION_METRIC]
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
    return per_seed


def _command_line() -> str:
    """The command the table records: the flags that decide what it holds."""
    command = f"python -m experiments.reproduce --table={FLAGS.table} --seeds={FLAGS.seeds}"
    if FLAGS.published:
        command += " --published"
    if FLAGS.report_only:
        command += " --report_only"
    elif FLAGS.shard != "0/1":
        command += f" --shard={FLAGS.shard}"
    return command


def main(argv: list[str]) -> None:
    del argv  # cli_base.parse_flags refuses stray arguments
    start = time.perf_counter()
    if FLAGS.table not in TABLES:
        raise ConfigError(f"--table must be one of {', '.join(TABLES)}; got {FLAGS.table!r}")
    if FLAGS.seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {FLAGS.seeds}")
    cells = _table_cells(FLAGS.table)
    once = frozenset(cell.name for cell in cells if deterministic(cell))
    runs = sweep(cells, FLAGS.seeds, parse_shard(FLAGS.shard), once)
    base = os.path.join(FLAGS.results, FLAGS.table)
    published = every_published_run(FLAGS.results, FLAGS.table) if FLAGS.published else {}
    kept = kept_rows(FLAGS.results, FLAGS.table) if FLAGS.published else {}
    if FLAGS.published:
        print(f"{FLAGS.results}/*.json: {len(published)} published runs", flush=True)
        runs = keep_published_rows(runs, kept, published, FLAGS.runs)
    per_seed = _sweep_runs(runs, published)
    if FLAGS.report_only and not per_seed:
        # A wrong --runs must not overwrite a published table with empty rows.
        where = f"{FLAGS.runs} or {base}.json" if FLAGS.published else FLAGS.runs
        raise ConfigError(f"{where}: no finished run of table {FLAGS.table}; nothing written")
    summary = summarize(FLAGS.table, cells, per_seed, kept)
    summary.update(
        runs_s=sum(r["epochs_s"] for runs in per_seed.values() for r in runs.values()),
        seeds_requested=FLAGS.seeds,
        commit=git_commit(short=True),
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        wall_s=time.perf_counter() - start,
        runs=run_records(cells, per_seed),
        command=_command_line(),
    )
    write_table(FLAGS.results, FLAGS.table, summary)
    print(f"wrote {base}.md and {base}.json")


if __name__ == "__main__":
    cli.run_main(main)
