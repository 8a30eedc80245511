"""Seeds in one program (advjax/train/multirun.py) against the same seeds one after another.

  python -m benchmarks.batch                 # Coat (whole runs) and Yahoo!R3 (capped), 5 seeds
  python -m benchmarks.batch --quick         # Coat MF, 2 seeds, 20 epochs: a smoke test
  python -m benchmarks.batch --only='coat/*' --seeds=5 --json=/tmp/b.json

Per cell, each in a fresh subprocess (peak memory is per process; no compiled code is
shared), the whole of what a user waits for (data loading, setup, compilation, every
epoch, validation, the final evaluation):

  one        seed 1 alone                            (the cost of one run)
  sequential seeds 1..S, each its own program in turn (what a sweep did before)
  map        seeds 1..S in one program, lax.map      (bit-identical to each seed alone)
  vmap       seeds 1..S in one program, jax.vmap

and whether each batched seed's results (best epoch, every split's metrics) equal the
sequential seed's. Memory: peak RSS per mode, and the bytes of one run's TrainState (its
tables, both Adam states and the adversary's), which a batch holds S times. Wall-time
ratios come from one invocation on one machine; the issue's targets are 5 seeds in
<= 3x one seed on a CPU, <= 1.5x on a GPU.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import json
import os
import pathlib
import subprocess
import sys
import time

import jax
from absl import app, flags

from advjax.files import write_atomically
from advjax.provenance import git_commit, machine_info, package_versions
from advjax.train import TrainConfig, train_and_evaluate
from advjax.train.data import load_split
from advjax.train.multirun import train_runs
from advjax.train.setup import setup_run
from benchmarks.record import peak_rss_mb
from benchmarks.run import RECORD_PREFIX
from experiments.run import read_flagfile

REPO = pathlib.Path(__file__).resolve().parents[1]
MODES = ("one", "sequential", "map", "vmap")


@dataclasses.dataclass(frozen=True)
class Cell:
    """A flagfile and the epoch cap it is benchmarked with (0: whole runs)."""

    flagfile: str
    max_epochs: int = 0


CELLS = {
    "coat/lightgcn/adv_infonce": Cell("experiments/configs/coat_lightgcn_advinfonce.flags"),
    "coat/mf/infonce": Cell("experiments/configs/coat_mf_infonce.flags"),
    # Whole Yahoo!R3 runs take minutes per seed on a CPU: the cap keeps this a benchmark
    # of the epochs' throughput (early stopping still runs; no seed stops this early).
    "yahoo/mf/infonce": Cell("experiments/configs/yahoo_mf_infonce.flags", max_epochs=20),
    "yahoo/lightgcn/adv_infonce": Cell(
        "experiments/configs/yahoo_lightgcn_advinfonce.flags", max_epochs=20
    ),
}
QUICK = {"coat/mf/infonce": Cell("experiments/configs/coat_mf_infonce.flags", max_epochs=20)}


def define_flags() -> None:
    flags.DEFINE_list("only", [], "Cells to run (glob patterns over dataset/backbone/loss).")
    flags.DEFINE_integer("seeds", 5, "Seeds 1..S per batch.")
    flags.DEFINE_bool("quick", False, "Coat MF InfoNCE, 2 seeds, 20 epochs (CI smoke test).")
    flags.DEFINE_string("json", "", "Where the JSON record goes (default benchmarks/results/).")
    flags.DEFINE_string("child", "", "Internal: run one MODE of one cell (cell:mode).")


FLAGS = flags.FLAGS


def _configs(cell: Cell, seeds: int) -> list[TrainConfig]:
    cfg = read_flagfile(cell.flagfile)
    if cell.max_epochs:
        cfg = dataclasses.replace(cfg, max_epochs=cell.max_epochs)
    return [dataclasses.replace(cfg, seed=seed) for seed in range(1, seeds + 1)]


def _state_bytes(cfg: TrainConfig) -> int:
    """Bytes of one run's TrainState: what a batch holds once per run."""
    state = setup_run(cfg).state
    leaves = jax.tree_util.tree_leaves(state.replace(key=jax.random.key_data(state.key)))
    return int(sum(leaf.nbytes for leaf in leaves))


def run_child(name: str, mode: str, seeds: int, cell: Cell) -> None:
    """One mode of one cell, timed from data loading to the last report."""
    tick = time.perf_counter()
    cfgs = _configs(cell, seeds)
    data = load_split(cfgs[0])
    quiet = [[] for _ in cfgs]
    if mode == "one":
        results = [train_and_evaluate(cfgs[0], None, data=data, sinks=[])]
    elif mode == "sequential":
        results = [train_and_evaluate(cfg, None, data=data, sinks=[]) for cfg in cfgs]
    else:
        results = train_runs(cfgs, [None] * len(cfgs), data=data, sinks=quiet, batching=mode)
    wall = time.perf_counter() - tick
    keep = [
        {k: v for k, v in r.items() if k not in ("flags", "timing", "platform")} for r in results
    ]
    record = {
        "cell": name,
        "mode": mode,
        "wall_s": wall,
        "peak_rss_mb": peak_rss_mb(),
        "epochs": [r["timing"]["epochs"] for r in results],
        "results": keep,
    }
    if mode == "one":
        record["state_bytes_per_run"] = _state_bytes(cfgs[0])
    print(RECORD_PREFIX + json.dumps(record), flush=True)


def _spawn(name: str, mode: str) -> dict:
    args = [sys.executable, "-m", "benchmarks.batch", f"--child={name}:{mode}",
            f"--seeds={FLAGS.seeds}", "--quick" if FLAGS.quick else "--noquick"]  # fmt: skip
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RECORD_PREFIX):
            return json.loads(line[len(RECORD_PREFIX) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"cell": name, "mode": mode, "error": " / ".join(tail) or f"status {proc.returncode}"}


def compare(sequential: dict, batched: dict) -> dict:
    """How many batched seeds report exactly the sequential seed's results, and the
    largest metric difference among those that do not."""
    same, largest = 0, 0.0
    for a, b in zip(sequential["results"], batched["results"], strict=True):
        if a == b:
            same += 1
            continue
        for split, metrics in a.items():
            if isinstance(metrics, dict):
                for key, value in metrics.items():
                    largest = max(largest, abs(value - b[split][key]))
    return {"identical_seeds": same, "max_metric_diff": largest}


def summarize(name: str, records: dict[str, dict], seeds: int) -> dict:
    """The cell's ratios (each mode's wall time over one seed's) and exactness."""
    one = records["one"]["wall_s"]
    out = {"cell": name, "seeds": seeds, "state_mb_per_run": None}
    out["state_mb_per_run"] = records["one"].get("state_bytes_per_run", 0) / 2**20
    for mode in MODES:
        out[f"{mode}_s"] = records[mode]["wall_s"]
        out[f"{mode}_over_one"] = records[mode]["wall_s"] / one
        out[f"{mode}_rss_mb"] = records[mode]["peak_rss_mb"]
    for mode in ("map", "vmap"):
        out[f"{mode}_exact"] = compare(records["sequential"], records[mode])
    out["epochs"] = records["sequential"]["epochs"]
    return out


def table(rows: list[dict]) -> str:
    head = (
        "| cell | S | epochs per seed | one s | sequential | map | vmap | map = seq | "
        "vmap = seq | peak RSS one / map / vmap MB | state MB/run |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        s = r["seeds"]
        lines.append(
            f"| {r['cell']} | {s} | {','.join(map(str, r['epochs']))} | {r['one_s']:.1f} | "
            f"{r['sequential_s']:.1f} s ({r['sequential_over_one']:.2f}x) | "
            f"{r['map_s']:.1f} s ({r['map_over_one']:.2f}x) | "
            f"{r['vmap_s']:.1f} s ({r['vmap_over_one']:.2f}x) | "
            f"{r['map_exact']['identical_seeds']}/{s} | "
            f"{r['vmap_exact']['identical_seeds']}/{s}"
            + (f" (max diff {r['vmap_exact']['max_metric_diff']:.1e})"
               if r["vmap_exact"]["identical_seeds"] < s else "")
            + f" | {r['one_rss_mb']:.0f} / {r['map_rss_mb']:.0f} / {r['vmap_rss_mb']:.0f} | "
            f"{r['state_mb_per_run']:.2f} |"
        )  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    cells = QUICK if FLAGS.quick else CELLS
    seeds = 2 if FLAGS.quick else FLAGS.seeds
    if FLAGS.child:
        name, mode = FLAGS.child.rsplit(":", 1)
        run_child(name, mode, seeds, cells[name])
        return
    names = [n for n in cells if not FLAGS.only or any(fnmatch.fnmatch(n, p) for p in FLAGS.only)]
    if not names:
        raise app.UsageError(f"--only matches none of {', '.join(cells)}")
    rows, errors = [], []
    for name in names:
        records = {}
        for mode in MODES:
            record = _spawn(name, mode)
            if "error" in record:
                errors.append(record)
                print(f"{name} {mode}: FAILED: {record['error']}", flush=True)
                break
            records[mode] = record
            print(f"{name} {mode}: {record['wall_s']:.1f} s, epochs {record['epochs']}", flush=True)
        else:
            rows.append(summarize(name, records, seeds))
    print(table(rows), flush=True)
    path = pathlib.Path(FLAGS.json) if FLAGS.json else (
        REPO / "benchmarks" / "results"
        / f"{datetime.date.today().isoformat()}-{jax.default_backend()}-batch"
        f"{'-quick' if FLAGS.quick else ''}.json"
    )  # fmt: skip
    os.makedirs(path.parent, exist_ok=True)
    write_atomically(str(path), json.dumps({
        "command": "python -m benchmarks.batch " + " ".join(sys.argv[1:]),
        "commit": git_commit(short=True),
        "machine": machine_info(),
        "device": jax.devices()[0].device_kind,
        "packages": package_versions(),
        "cells": rows,
        "errors": errors,
    }, indent=1))  # fmt: skip
    print(f"wrote {path}", flush=True)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
