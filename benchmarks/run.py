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

Per cell: CF epochs (median after warm-up) -> samples/s; adversarial epochs (AdvInfoNCE);
the jit compile time of the training passes (``.lower().compile()``); one warm-up and
one timed pass of every evaluator of the split; peak RSS.
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import json
import os
import pathlib
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
from absl import app, flags, logging

from advjax.augmentations.ncl import KMEANS_ITERS
from advjax.data import SplitData, load_dataset
from advjax.files import write_atomically
from advjax.provenance import git_commit, machine_info, package_versions
from advjax.train import TrainConfig
from advjax.train.setup import RunSetup
from advjax.train.state import TrainState
from benchmarks import floor
from experiments.timing import EpochTimes, time_epochs, timed

REPO = pathlib.Path(__file__).resolve().parents[1]
RECORD_PREFIX = "BENCH_RECORD "

# Keys of every record (adv_epoch_s is None for InfoNCE cells).
RECORD_KEYS = (
    "dataset",
    "backbone",
    "loss",
    "train_samples_per_s",
    "epoch_s",
    "adv_epoch_s",
    "eval_s",
    "eval_users_per_s",
    "compile_s",
    "peak_rss_mb",
    "floor_s",
    "floor_ratio",
    "flops_per_epoch",
    "bytes_per_epoch",
)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives under --data_root and the settings it is timed with."""

    directory: str
    batch_size: int
    n_neg: int
    tau: float
    timed_epochs: int
    note: str
    train_file: str | None = None


DATASETS = {
    "yahoo": DatasetSpec("yahoo.new", 1024, 64, 0.28, 3, "Yahoo!R3 settings of SPEC §3"),
    "kuairec": DatasetSpec(
        "kuairec2", 2048, 128, 2.0, 2, "KuaiRec settings of SPEC §3", "train_reconstructed"
    ),
    "gowalla": DatasetSpec(
        "gowalla", 2048, 128, 0.1, 2, "no paper cell; batch 2048, N 128, tau 0.1 by choice"
    ),
}
# Each backbone cell: its --backbone and its own settings (LightGCN: the paper's 2 layers).
BACKBONES = {"mf": {"backbone": "mf"}, "lightgcn": {"backbone": "lightgcn", "n_layers": 2}}
LOSSES = ("infonce", "adv_infonce")
# LightGCN + InfoNCE with each augmentation (--augment): Table 9's other rows.
AUGMENTED = ("infonce+sgl", "infonce+ncl", "infonce+xsimgcl")
QUICK_CELLS = ("yahoo/mf/adv_infonce", "yahoo/lightgcn/adv_infonce")
QUICK_MAX_BATCHES = 24
QUICK_TIMED_EPOCHS = 2


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


def all_cells() -> list[str]:
    plain = [f"{d}/{b}/{loss}" for d in DATASETS for b in BACKBONES for loss in LOSSES]
    return plain + [f"{d}/lightgcn/{loss}" for d in DATASETS for loss in AUGMENTED]


def select_cells(patterns: list[str], quick: bool) -> list[str]:
    """Cells matching any pattern; no pattern = all cells, or the quick ones."""
    if not patterns:
        return list(QUICK_CELLS) if quick else all_cells()
    cells = [c for c in all_cells() if any(fnmatch.fnmatchcase(c, p) for p in patterns)]
    if not cells:
        raise app.UsageError(f"--only={','.join(patterns)} matches no cell of {all_cells()}")
    return cells


def _terms_json(terms: dict[str, floor.Cost]) -> dict[str, list[float]]:
    return {name: [c.flops, c.stream_bytes, c.gather_bytes] for name, c in terms.items()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process' address space, MB.

    /proc/self/status VmHWM where present: getrusage's ru_maxrss survives exec on Linux
    (the kernel keeps the maximum over the exec'd image too), so a child spawned by a
    1 GB parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_cell(
    data: SplitData,
    *,
    dataset: str,
    backbone: str,
    loss: str,
    batch_size: int,
    n_neg: int,
    tau: float,
    warmup_epochs: int = 1,
    timed_epochs: int = 2,
    max_batches: int = 0,
    propagation: str = "auto",
    eval_batch_size: int = 1024,
    rates: dict | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Times one cell in this process and returns its record.

    Args:
      data: the loaded split.
      dataset, backbone, loss: the cell; backbone "mf" or "lightgcn" (2 layers); loss
        "infonce", "adv_infonce", or "infonce+AUG" with an augmentation (--augment).
      batch_size, n_neg, tau: training settings.
      warmup_epochs, timed_epochs, max_batches, rates, log: as bench_config's.
      propagation: TrainConfig.propagation.
      eval_batch_size: users per evaluation batch.

    Returns:
      bench_config's record.
    """
    base_loss, _, augment = loss.partition("+")
    cfg = TrainConfig(
        **BACKBONES[backbone],
        propagation=propagation,
        loss=base_loss,
        augment=augment or "none",
        ncl_start_epoch=0,  # NCL's terms and clusters in every timed epoch
        tau=tau,
        batch_size=batch_size,
        n_neg=n_neg,
        eval_batch_size=eval_batch_size,
    )
    return bench_config(
        data, cfg, dataset=dataset, backbone=backbone, loss=loss, warmup_epochs=warmup_epochs,
        timed_epochs=timed_epochs, max_batches=max_batches, rates=rates, log=log,
    )  # fmt: skip


def bench_config(
    data: SplitData,
    cfg: TrainConfig,
    *,
    dataset: str,
    backbone: str,
    loss: str,
    warmup_epochs: int = 1,
    timed_epochs: int = 2,
    max_batches: int = 0,
    rates: dict | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Times the training passes and evaluators of any configuration in this process
    and returns its record.

    Args:
      data: the loaded split.
      cfg: the configuration timed; its batch size, N, tau, layers and loss are used.
      dataset, backbone, loss: the labels of the record.
      warmup_epochs: untimed epochs of each pass after compilation.
      timed_epochs: timed epochs of each pass; the medians are reported.
      max_batches: cap on batches per epoch (0 = whole epochs); FLOPs, bytes and
        the floor are counted for the epochs actually run.
      rates: measure_rates() output; when given, the floor is added.
      log: progress lines.

    Returns:
      A record with RECORD_KEYS and details (cost terms per step, batches, settings);
      floor_s and floor_ratio are None without rates.
    """
    times = time_epochs(
        data, cfg, label=f"{dataset}/{backbone}/{loss}", warmup_epochs=warmup_epochs,
        timed_epochs=timed_epochs, max_batches=max_batches, log=log,
    )  # fmt: skip
    evaluation = _time_evaluation(times.run, times.state)
    record = {
        "dataset": dataset,
        "backbone": backbone,
        "loss": loss,
        **_speed(cfg, times, evaluation),
        **_cf_cost(data, cfg, times),
        **_details(data, cfg, times, evaluation),
    }
    if cfg.trains_adversary:
        record.update(_adv_cost(data, cfg, times))
    if rates is not None:
        add_floor(record, rates)
    return record


class _EvalTimes(NamedTuple):
    """Seconds of one evaluation of every split and of the validation's diagnostics,
    each after a first call that compiled it."""

    eval_s: float
    eval_first_s: float
    eval_users: int
    evaluators: list[str]
    diag_s: float
    diag_first_s: float


def _time_evaluation(run: RunSetup, state: TrainState) -> _EvalTimes:
    """Times every evaluator of the split, then the diagnostics every validation adds
    (advjax/train/diagnose.py, on its fixed sample), twice each at `state`."""

    def evaluate_all():
        return run.evaluate(state.cf_params, list(run.evaluators))

    _, eval_first_s = timed(evaluate_all)
    _, eval_s = timed(evaluate_all)
    eval_users = sum(len(ev.users) for ev in run.evaluators.values())
    _, diag_first_s = timed(run.diagnostics, state)
    _, diag_s = timed(run.diagnostics, state)
    return _EvalTimes(eval_s, eval_first_s, eval_users, list(run.evaluators), diag_s, diag_first_s)


def _speed(cfg: TrainConfig, times: EpochTimes, evaluation: _EvalTimes) -> dict:
    """The record's speed and memory figures (the table's columns)."""
    return {
        "train_samples_per_s": times.n_batches * cfg.batch_size / times.epoch_s,
        "epoch_s": times.epoch_s,
        "adv_epoch_s": times.adv_epoch_s,
        "eval_s": evaluation.eval_s,
        "eval_users_per_s": evaluation.eval_users / evaluation.eval_s,
        "compile_s": times.compile_s,
        "peak_rss_mb": peak_rss_mb(),
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _step_sizes(data: SplitData, cfg: TrainConfig) -> dict:
    """The sizes every step's cost terms take (floor.cf_step_terms, adv_step_terms)."""
    return {
        "n_users": data.n_users,
        "n_items": data.n_items,
        "batch": cfg.batch_size,
        "n_neg": cfg.n_neg,
        "dim": cfg.emb_dim,
    }


def propagation_layers(cfg: TrainConfig) -> int:
    """The sparse products per propagation the floor counts: the backbone's depth (0
    for a backbone without layers)."""
    depth = cfg.backbone_spec.depth
    return depth(cfg) if depth is not None else 0


def _cf_cost(data: SplitData, cfg: TrainConfig, times: EpochTimes) -> dict:
    """The CF epoch's counted work: each step's terms times the batches, plus what an
    epoch pays once; floor_s and floor_ratio wait for the rates (add_floor)."""
    cf_terms = floor.cf_step_terms(
        **_step_sizes(data, cfg),
        n_layers=propagation_layers(cfg),
        n_edges=times.n_edges,
        adversarial=cfg.trains_adversary,
        augment=cfg.augment,
        n_clusters=cfg.ncl_clusters,
    )
    once_terms = floor.epoch_terms(
        n_users=data.n_users,
        n_items=data.n_items,
        dim=cfg.emb_dim,
        augment=cfg.augment,
        n_clusters=cfg.ncl_clusters,
        kmeans_iters=KMEANS_ITERS,
    )
    cost = floor.total(cf_terms) * times.n_batches + floor.total(once_terms)
    return {
        "floor_s": None,
        "floor_ratio": None,
        "flops_per_epoch": cost.flops,
        "bytes_per_epoch": cost.bytes,
        "stream_bytes_per_epoch": cost.stream_bytes,
        "gather_bytes_per_epoch": cost.gather_bytes,
        "cf_step_terms": _terms_json(cf_terms),
        "cf_epoch_terms": _terms_json(once_terms),
    }


def _details(data: SplitData, cfg: TrainConfig, times: EpochTimes, evaluation: _EvalTimes) -> dict:
    """What the record's figures were measured on and with: every timing, the batches,
    the split's sizes and the settings."""
    return {
        "cf_epoch_times_s": times.cf_times,
        "adv_epoch_times_s": times.adv_times,
        "eval_compile_s": max(evaluation.eval_first_s - evaluation.eval_s, 0.0),
        "diagnostics_s": evaluation.diag_s,
        "diagnostics_compile_s": max(evaluation.diag_first_s - evaluation.diag_s, 0.0),
        "eval_users": evaluation.eval_users,
        "evaluators": evaluation.evaluators,
        "batches_per_epoch": times.n_batches,
        "full_batches_per_epoch": times.full_batches,
        "full_epoch_s_est": times.epoch_s * times.full_batches / times.n_batches,
        "batch_size": cfg.batch_size,
        "n_neg": cfg.n_neg,
        "tau": cfg.tau,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_edges": times.n_edges,
        "propagation": times.propagation,
        "warmup_epochs": times.warmup_epochs,
        "timed_epochs": times.timed_epochs,
    }


def _adv_cost(data: SplitData, cfg: TrainConfig, times: EpochTimes) -> dict:
    """The adversarial epoch's counted work (an adversary's configurations only)."""
    adv_terms = floor.adv_step_terms(**_step_sizes(data, cfg))
    # The adversarial pass propagates once, forward only, for the whole epoch.
    cost = floor.total(adv_terms) * times.n_batches + floor.propagation_cost(
        times.n_edges, data.n_users + data.n_items, cfg.emb_dim, propagation_layers(cfg), passes=1
    )
    return {
        "adv_step_terms": _terms_json(adv_terms),
        "adv_flops_per_epoch": cost.flops,
        "adv_stream_bytes_per_epoch": cost.stream_bytes,
        "adv_gather_bytes_per_epoch": cost.gather_bytes,
    }


def _epoch_cost(record: dict, prefix: str = "") -> floor.Cost:
    return floor.Cost(
        record[f"{prefix}flops_per_epoch"],
        record[f"{prefix}stream_bytes_per_epoch"],
        record[f"{prefix}gather_bytes_per_epoch"],
    )


def add_floor(record: dict, rates: dict) -> None:
    """Sets floor_s and floor_ratio (and adv_floor_s, adv_floor_ratio) from the rates."""
    record["floor_s"] = floor.floor_seconds(_epoch_cost(record), rates)
    record["floor_ratio"] = record["epoch_s"] / record["floor_s"]
    if record.get("adv_flops_per_epoch") is not None:
        record["adv_floor_s"] = floor.floor_seconds(_epoch_cost(record, "adv_"), rates)
        record["adv_floor_ratio"] = record["adv_epoch_s"] / record["adv_floor_s"]


def print_arithmetic(record: dict, rates: dict) -> None:
    """Per-step cost terms and the floor formula of a record."""
    cell = f"{record['dataset']}/{record['backbone']}/{record['loss']}"
    print(f"{cell}: per CF step (x {record['batches_per_epoch']} batches/epoch)")
    for prefix, key in (("    ", "cf_step_terms"), ("  once per epoch: ", "cf_epoch_terms")):
        for name, (flops, stream, gather) in record.get(key, {}).items():
            print(
                f"{prefix}{name:12s} {flops / 1e9:10.4f} GFLOP {stream / 1e6:10.2f} MB stream "
                f"{gather / 1e6:10.2f} MB gather"
            )
    print(f"  CF floor  = {floor.floor_formula(_epoch_cost(record), rates)}")
    print(f"  CF epoch  = {record['epoch_s']:.4f} s -> {record['floor_ratio']:.1f}x the floor")
    if record.get("adv_flops_per_epoch") is not None:
        print(
            f"  adv floor = {floor.floor_formula(_epoch_cost(record, 'adv_'), rates)}"
            " (incl. one forward propagation)"
        )
        print(
            f"  adv epoch = {record['adv_epoch_s']:.4f} s -> "
            f"{record['adv_floor_ratio']:.1f}x the floor"
        )


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
