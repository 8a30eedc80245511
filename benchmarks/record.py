"""One cell's record: its training passes and evaluators timed in this process, and its
work counted against the machine's floor (benchmarks/floor.py).

Per cell: CF epochs (median after warm-up) -> samples/s; adversarial epochs (AdvInfoNCE);
the jit compile time of the training passes (``.lower().compile()``); one warm-up and
one timed pass of every evaluator of the split; peak RSS.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import NamedTuple

from advjax.augmentations.ncl import KMEANS_ITERS
from advjax.data import SplitData
from advjax.train import TrainConfig
from advjax.train.setup import RunSetup
from advjax.train.state import TrainState
from benchmarks import floor
from benchmarks.cells import BACKBONES
from experiments.timing import EpochTimes, time_epochs, timed

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
    (advjax/train/run_diagnostics.py, on its fixed sample), twice each at `state`."""

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
        sampled=cfg.backbone_spec.sample is not None,
        item_neighbors=cfg.ultragcn_neighbors if cfg.backbone == "ultragcn" else 0,
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
