"""Training and evaluation speed per cell, against the machine's floor.

  python -m benchmarks.run --quick                 # Yahoo!R3, MF and LightGCN x AdvInfoNCE
  python -m benchmarks.run                          # {yahoo, kuairec, gowalla} x {mf, lightgcn}
                                                    #   x {infonce, adv_infonce}
  python -m benchmarks.run --only=yahoo/lightgcn/adv_infonce --json=/tmp/b.json

The parent measures the machine's rates (GEMM, streaming and gather bandwidth), then
runs each cell in a fresh subprocess (``--child``): peak memory is per process, and a
cell must not inherit another's memory or compiled code. A child prints its record as
one ``BENCH_RECORD {json}`` line; the parent adds the floor (benchmarks/floor.py),
prints the arithmetic and a table, and writes the JSON record
(default benchmarks/results/<date>-<platform>[-quick].json).

This module is the CLI; the cells and their settings are benchmarks/cells.py, and what
a child times and counts for its cell is benchmarks/record.py.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

import jax
from absl import app, flags, logging

from advjax.data import load_dataset
from advjax.files import write_atomically
from advjax.provenance import git_commit, machine_info, package_versions
from benchmarks import floor
from benchmarks.cells import DATASETS, QUICK_MAX_BATCHES, QUICK_TIMED_EPOCHS, select_cells
from benchmarks.record import add_floor, bench_cell, print_arithmetic

REPO = pathlib.Path(__file__).resolve().parents[1]
RECORD_PREFIX = "BENCH_RECORD "


def define_flags() -> None:
    """Defines the CLI flags; only when run as a program.

    Importing this module (the tests do) thus never collides with flags of the same
    name defined elsewhere (experiments.run defines --propagation too).
    """
    flags.DEFINE_bool(
        "quick",
        False,
        "Smoke run: Yahoo!R3 MF and LightGCN x adv_infonce, "
        f"{QUICK_MAX_BATCHES} batches per epoch, {QUICK_TIMED_EPOCHS} timed epochs.",
    )
    flags.DEFINE_string(
        "json", "", "Output JSON; default benchmarks/results/<date>-<platform>.json."
    )
    flags.DEFINE_list("only", [], "Cells DATASET/BACKBONE/LOSS to run (shell wildcards allowed).")
    flags.DEFINE_string("data_root", str(REPO.parent / "shared" / "data"), "Where datasets live.")
    flags.DEFINE_string("propagation", "auto", "LightGCN propagation method (TrainConfig).")
    flags.DEFINE_integer("warmup_epochs", 1, "Untimed epochs (each pass) before timing.")
    flags.DEFINE_integer("timed_epochs", 0, "Timed epochs per pass; 0 = per dataset (2 or 3).")
    flags.DEFINE_integer("max_batches", 0, "Cap on batches per epoch; 0 = whole epochs.")
    flags.DEFINE_integer("eval_batch_size", 1024, "Users per evaluation batch.")
    flags.DEFINE_integer("rate_repeats", 5, "Repeats of each rate measurement (best kept).")
    flags.DEFINE_bool("child", False, "Internal: run the single --only cell, print its record.")


FLAGS = flags.FLAGS


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# (header, record key, width, format) of each table column after the cell name.
_TABLE_COLUMNS = (
    ("batches", "batches_per_epoch", 8, "d"),
    ("samples/s", "train_samples_per_s", 10, ".0f"),
    ("epoch s", "epoch_s", 9, ".3f"),
    ("adv s", "adv_epoch_s", 9, ".3f"),
    ("eval s", "eval_s", 8, ".3f"),
    ("diag s", "diagnostics_s", 8, ".3f"),
    ("users/s", "eval_users_per_s", 9, ".0f"),
    ("compile s", "compile_s", 9, ".2f"),
    ("RSS MB", "peak_rss_mb", 8, ".0f"),
    ("floor s", "floor_s", 9, ".4f"),
    ("x floor", "floor_ratio", 8, ".1f"),
)


def results_table(records: list[dict]) -> str:
    header = [f"{'cell':<34}"] + [f"{name:>{width}}" for name, _, width, _ in _TABLE_COLUMNS]
    lines = [" ".join(header)]
    for record in records:
        cell = f"{record['dataset']}/{record['backbone']}/{record['loss']}"
        if "error" in record:
            lines.append(f"{cell:<34} failed: {record['error']}")
            continue
        cells = [f"{cell:<34}"]
        for _, key, width, spec in _TABLE_COLUMNS:
            cells.append(f"{_fmt(record[key], spec):>{width}}")
        lines.append(" ".join(cells))
    return "\n".join(lines)


def _settings() -> tuple[int, int]:
    """(max_batches, timed_epochs override) after --quick defaults."""
    max_batches = FLAGS.max_batches or (QUICK_MAX_BATCHES if FLAGS.quick else 0)
    timed = FLAGS.timed_epochs or (QUICK_TIMED_EPOCHS if FLAGS.quick else 0)
    return max_batches, timed


def run_child(cell: str) -> None:
    dataset, backbone, loss = cell.split("/")
    spec = DATASETS[dataset]
    max_batches, timed = _settings()
    data = load_dataset(
        data_dir=os.path.join(FLAGS.data_root, spec.directory), train_file=spec.train_file
    )
    record = bench_cell(
        data,
        dataset=dataset,
        backbone=backbone,
        loss=loss,
        batch_size=spec.batch_size,
        n_neg=spec.n_neg,
        tau=spec.tau,
        warmup_epochs=FLAGS.warmup_epochs,
        timed_epochs=timed or spec.timed_epochs,
        max_batches=max_batches,
        propagation=FLAGS.propagation,
        eval_batch_size=FLAGS.eval_batch_size,
        log=lambda line: print(line, flush=True),
    )
    print(RECORD_PREFIX + json.dumps(record), flush=True)


def spawn_cell(cell: str) -> dict:
    """Runs one cell in a fresh interpreter; echoes its lines, returns its record."""
    args = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--child",
        f"--only={cell}",
        f"--data_root={FLAGS.data_root}",
        f"--propagation={FLAGS.propagation}",
        f"--warmup_epochs={FLAGS.warmup_epochs}",
        f"--timed_epochs={FLAGS.timed_epochs}",
        f"--max_batches={FLAGS.max_batches}",
        f"--eval_batch_size={FLAGS.eval_batch_size}",
        "--quick" if FLAGS.quick else "--noquick",
    ]
    dataset, backbone, loss = cell.split("/")
    record = {"dataset": dataset, "backbone": backbone, "loss": loss}
    found, status = spawn_record(args)
    if found is None:
        record["error"] = f"child exited with status {status}"
        return record
    return found


def spawn_record(args: list[str], *, env: dict | None = None) -> tuple[dict | None, int]:
    """Runs a benchmark child (`args`, from the repository root), echoing its lines
    indented; returns (the record it printed after RECORD_PREFIX, or None when it
    printed none or failed; its exit status)."""
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    found = None
    for line in proc.stdout:
        if line.startswith(RECORD_PREFIX):
            found = json.loads(line[len(RECORD_PREFIX) :])
        else:
            print("  | " + line.rstrip(), flush=True)
    status = proc.wait()
    return (found if status == 0 else None), status


def default_json_path() -> pathlib.Path:
    date = datetime.date.today().isoformat()
    suffix = "-quick" if FLAGS.quick else ""
    return REPO / "benchmarks" / "results" / f"{date}-{jax.default_backend()}{suffix}.json"


def main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)  # keep JAX's backend probing out of the tables
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cells = select_cells(FLAGS.only, FLAGS.quick)
    if FLAGS.child:
        if len(cells) != 1:
            raise app.UsageError(f"--child runs one cell; --only matches {cells}")
        run_child(cells[0])
        return

    start = time.perf_counter()
    machine = machine_info()
    print(
        f"JAX {jax.__version__}; platform {machine['platform']}; devices {machine['devices']}; "
        f"{machine['cpu']}, {machine['cores']} cores; load {machine['load_avg_1m_start']:.2f}",
        flush=True,
    )
    rates = floor.measure_rates(repeats=FLAGS.rate_repeats)
    print(
        "rates (best of repeats): "
        + ", ".join(f"{k} {v:.1f}" for k, v in rates["measured"].items())
    )
    print(
        f"floor uses: GEMM {rates['gemm_gflop_s']:.1f} GFLOP/s, stream "
        f"{rates['stream_gb_s']:.1f} GB/s, gather {rates['gather_gb_s']:.1f} GB/s",
        flush=True,
    )

    records = []
    for cell in cells:
        dataset = cell.split("/")[0]
        spec = DATASETS[dataset]
        if not os.path.isdir(os.path.join(FLAGS.data_root, spec.directory)):
            print(f"{cell}: skipped, {FLAGS.data_root}/{spec.directory} not present", flush=True)
            continue
        print(f"{cell} ({spec.note})", flush=True)
        record = spawn_cell(cell)
        if "error" not in record:
            add_floor(record, rates)
            print_arithmetic(record, rates)
        records.append(record)

    machine["load_avg_1m_end"] = os.getloadavg()[0]
    print()
    print(results_table(records))
    result = {
        "machine": machine,
        "versions": package_versions(),
        "commit": git_commit(),
        "settings": {
            "quick": FLAGS.quick,
            "propagation": FLAGS.propagation,
            "warmup_epochs": FLAGS.warmup_epochs,
            "max_batches": _settings()[0],
            "eval_batch_size": FLAGS.eval_batch_size,
        },
        "rates": rates,
        "records": records,
    }
    path = pathlib.Path(FLAGS.json) if FLAGS.json else default_json_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(str(path), json.dumps(result, indent=2))
    print(f"wrote {path} ({time.perf_counter() - start:.1f}s)")
    if any("error" in r for r in records):
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
