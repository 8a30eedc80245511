"""Fitting one model that is not trained by SGD (EASE, iALS: advjax/models/fitted.py).

The fitted model's counterpart of loop.py, yielding the same events, so the sinks
(progress lines, metrics.jsonl, results.json), --seeds, search and reproduce treat
its runs as any other. What the SGD loop's notions become here:

  epoch          one sweep of the solver (iALS: the user half-step, then the item
                 half-step; EASE: its closed-form solve, the only one);
  --max_epochs   the most sweeps; --eval_every: sweeps between validations;
  --patience     validations without a better valid Recall@20 before stopping
                 (an iterative solver only; EASE fits once and reads none of the three);
  adversary, batches, negatives, the loss: none (TrainConfig refuses their settings);
                 nor SPEC §7's diagnostics (they read cosine-trained representations).
  --log_test     as for SGD runs: every test split at each validation, for curves.

Checkpoints: the best sweep's parameters go to the workdir's `best/` (what
`--test_only` evaluates); there are no state checkpoints, since a fit takes seconds to
minutes: a fit killed before its results.json starts again. Before anything is
allocated the fit's peak memory is printed, and a fit that cannot fit in the device's
available memory is refused in one line saying what it would need.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import jax

from advjax.data import SplitData
from advjax.errors import ConfigError, WorkdirError, check_finite
from advjax.evaluation import build_evaluators
from advjax.metrics import SELECTION_METRIC
from advjax.models.fitted import FitData, fit_data
from advjax.models.trained import TrainedModel
from advjax.train import events, streams
from advjax.train.checkpoints import RunCheckpoints
from advjax.train.config import TrainConfig
from advjax.train.data import load_split
from advjax.train.early_stopping import EarlyStopping
from advjax.train.track import results_record


def _size(n_bytes: float) -> str:
    """2.41 GiB, 13.6 MiB."""
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


def available_bytes(device: jax.Device) -> int | None:
    """Memory a fit may take on `device`: an accelerator's free bytes, the host's
    MemAvailable for a CPU; None where neither can be read."""
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return stats["bytes_limit"] - stats.get("bytes_in_use", 0)
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(cfg: TrainConfig, data: SplitData) -> str:
    """The fit's memory line, or a ConfigError when the device cannot hold it."""
    spec = cfg.fitted_spec
    needed = spec.bytes_needed(cfg, data.n_users, data.n_items, data.train.nnz)
    device = jax.devices()[0]
    available = available_bytes(device)
    have = f"{_size(available)} available" if available is not None else "unknown available"
    if available is not None and needed > available:
        raise ConfigError(
            f"{spec.label(cfg)} on {data.n_users:,} users x {data.n_items:,} items needs "
            f"{_size(needed)} of {device.platform} memory at its peak and "
            f"{have}: choose a device with more memory or a smaller catalogue"
        )
    return f"{spec.label(cfg)}: the fit holds about {_size(needed)} at its peak ({have})"


def trained(cfg: TrainConfig, params: dict, data: FitData) -> TrainedModel:
    """The fitted model at `params` as the evaluator ranks it."""
    spec = cfg.fitted_spec
    users, items = spec.represent(cfg, params, data)
    return TrainedModel(users, items, spec.scoring)


def fit_events(
    cfg: TrainConfig,
    workdir: str | None = None,
    *,
    data: SplitData | None = None,
    restart: bool = False,
    test_only: bool = False,
) -> Iterator[events.Event]:
    """Fits cfg's model (validating per --eval_every sweeps, early stopping on valid
    Recall@20), yielding what happens; the last event is a Report (Evaluated with
    test_only). Args as advjax.train.loop.train_events."""
    start = time.perf_counter()
    spec = cfg.fitted_spec
    if data is None:
        data = load_split(cfg)
    note = check_memory(cfg, data)
    matrix = fit_data(data.train, data.n_items)
    evaluators = build_evaluators(data, batch_size=cfg.eval_batch_size)
    ckpt = None
    if workdir:
        notes: list[str] = []
        ckpt = RunCheckpoints(workdir, cfg, restart=restart, log=notes.append)
        yield from map(events.Note, notes)
    if test_only:
        yield from _evaluate_best(cfg, workdir, ckpt, matrix, evaluators)
        return
    yield events.RunStarted(
        dataset=data.name, n_users=data.n_users, n_items=data.n_items,
        n_pairs=data.train.nnz, model=spec.label(cfg), loss="", n_batches=0,
    )  # fmt: skip
    yield events.Note(note)
    sweeps = cfg.max_epochs if spec.iterative else 1
    stopping = EarlyStopping(patience=cfg.patience, eval_every=cfg.eval_every)
    has_valid = "valid" in evaluators
    params = spec.init(cfg, streams.init_keys(cfg.seed)["cf_params"], matrix)
    best_model, epoch = None, 0
    for epoch in range(1, sweeps + 1):
        tick = time.perf_counter()
        params, stats = spec.sweep(cfg, params, matrix)
        stats = {name: float(value) for name, value in stats.items()}  # waits for the sweep
        seconds = time.perf_counter() - tick
        check_finite(stats, f"in sweep {epoch}")
        yield events.EpochTrained(epoch, stats, seconds, data.train.nnz / seconds, epoch)
        due = epoch % cfg.eval_every == 0 or epoch == sweeps
        model = trained(cfg, params, matrix) if due else None
        if has_valid and due:
            valid = evaluators["valid"].evaluate(model, cfg.ks)
            check_finite(valid, f"in validation after sweep {epoch}")
            stopping = stopping.update(epoch, valid[SELECTION_METRIC])
            improved = stopping.improved_at(epoch)
            yield events.Validation(epoch, valid, improved)
            if improved:
                best_model = model  # the report evaluates it again, on every split
                if ckpt:
                    ckpt.save_best(epoch, jax.device_get(params))
                    yield events.CheckpointSaved(epoch, "best")
        if cfg.log_test and due:
            tests = {n: ev.evaluate(model, cfg.ks) for n, ev in evaluators.items() if n != "valid"}
            yield events.TestCurves(epoch, tests)
        stop_epoch = stopping.stop_epoch(epoch) if has_valid and spec.iterative else None
        yield events.EpochEnd(epoch, time.perf_counter() - tick, stop_epoch, sweeps)
        if has_valid and spec.iterative and stopping.stopped:
            yield events.EarlyStopped(epoch, cfg.patience, SELECTION_METRIC)
            break
    best_epoch = stopping.best_epoch if best_model is not None else epoch
    if best_model is None:  # no validation split: the last sweep
        best_model = trained(cfg, params, matrix)
    metrics = {name: ev.evaluate(best_model, cfg.ks) for name, ev in evaluators.items()}
    for name, values in metrics.items():
        check_finite(values, f"in the final {name} evaluation")
    if ckpt:
        ckpt.close()
    seconds = time.perf_counter() - start
    results = results_record(cfg, data, best_epoch, epoch, metrics, seconds)
    yield events.Report(best_epoch, epoch, seconds, metrics, results)


def _evaluate_best(cfg, workdir, ckpt, matrix, evaluators) -> Iterator[events.Event]:
    """--test_only: every evaluator at the workdir's best parameters."""
    if ckpt is None:
        raise WorkdirError("--test_only needs the --workdir of a run")
    epoch, best = ckpt.best_epoch(), ckpt.restore_best(None)
    ckpt.close()
    if best is None:
        raise WorkdirError(f"{workdir}: no best checkpoint to evaluate (--test_only)")
    model = trained(cfg, best, matrix)
    metrics = {name: ev.evaluate(model, cfg.ks) for name, ev in evaluators.items()}
    yield events.Evaluated(epoch, os.fspath(workdir), metrics)
