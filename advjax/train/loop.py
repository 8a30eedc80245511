"""The training loop: epochs on the adversarial schedule, early stopping, checkpoints,
the final report; as a stream of events (advjax/train/events.py) that sinks consume."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Sequence

import jax

from advjax.data import SplitData
from advjax.errors import WorkdirError, check_finite
from advjax.metrics import SELECTION_METRIC
from advjax.provenance import package_versions
from advjax.train import events
from advjax.train.checkpoints import RunCheckpoints
from advjax.train.config import TrainConfig, config_dict
from advjax.train.early_stopping import EarlyStopping
from advjax.train.schedule import runs_adversarial_pass
from advjax.train.setup import RunSetup, setup_run
from advjax.train.sinks import ProgressLines, ResultsFile, ScalarSink, print_flushed


def _divergence(run: RunSetup, state) -> float:
    """The hardness divergence KL(U || P) at `state` on the diagnostics' fixed sample."""
    return run.diagnostics(state)["hardness/kl_u_p"]


def _floats(stats: dict) -> dict[str, float]:
    return {name: float(value) for name, value in stats.items()}


def results_record(
    run: RunSetup, best_epoch: int, epochs: int, metrics: dict, seconds: float
) -> dict:
    """What results.json holds: the best epoch, every evaluator's metrics there, the
    flags, what was loaded, timing and the platform."""
    cfg, data = run.cfg, run.data
    return {
        "best_epoch": best_epoch,
        **metrics,
        "flags": config_dict(cfg),
        # What was loaded: flags.dataset keeps its default when data_dir names the data.
        "data": {
            "name": data.name,
            "users": data.n_users,
            "items": data.n_items,
            "train_pairs": int(data.train.nnz),
        },
        "timing": {"total_s": seconds, "epochs": epochs},
        "platform": {
            "device": jax.devices()[0].device_kind,
            "jax": jax.__version__,
            # What "auto" resolved to on this platform (it follows benchmark records).
            "propagation": run.train_data.propagation if cfg.n_layers else None,
            "packages": package_versions(),
        },
    }


def train_events(
    cfg: TrainConfig,
    workdir: str | None = None,
    *,
    data: SplitData | None = None,
    restart: bool = False,
    max_to_keep: int = 3,
    test_only: bool = False,
) -> Iterator[events.Event]:
    """Trains per cfg with early stopping on valid Recall@20, yielding what happens.

    Args: as train_and_evaluate. The last event is a Report (Evaluated with
    test_only); its `results` is what results.json holds.
    """
    start = time.perf_counter()
    if test_only and not workdir:
        raise WorkdirError("--test_only needs the --workdir of a run")
    run = setup_run(cfg, data)
    state, fns = run.state, run.fns
    yield events.RunStarted(
        dataset=run.data.name,
        n_users=run.data.n_users,
        n_items=run.data.n_items,
        n_pairs=run.data.train.nnz,
        model=f"LightGCN-{cfg.n_layers}" if cfg.n_layers else "MF",
        loss=cfg.loss_label,
        n_batches=fns.n_batches,
    )

    notes: list[str] = []
    ckpt, best_params = None, None
    adversary_stopped = False  # --adv_stop=valid, after a validation without a new best
    stopping = EarlyStopping(patience=cfg.patience, eval_every=cfg.eval_every)
    if workdir:
        ckpt = RunCheckpoints(
            workdir, cfg, max_to_keep=max_to_keep, restart=restart, log=notes.append
        )
        restored = ckpt.restore_latest(state)
        yield from map(events.Note, notes)
        if restored is not None:
            state, record = restored
            stopping = stopping.restored(record)
            adversary_stopped = bool(record.get("adversary_stopped", False))
            best_params = ckpt.restore_best(jax.device_get(state.cf_params))
            yield events.Resumed(
                int(state.epoch), workdir, stopping.best_score, stopping.best_epoch
            )

    if test_only:
        if best_params is None:
            raise WorkdirError(f"{workdir}: no best checkpoint to evaluate (--test_only)")
        metrics = run.evaluate(best_params, list(run.evaluators))
        ckpt.close()
        yield events.Evaluated(stopping.best_epoch, workdir, metrics)
        return

    has_valid = "valid" in run.evaluators
    samples_per_epoch = fns.n_batches * cfg.batch_size
    for epoch in range(int(state.epoch) + 1, cfg.max_epochs + 1):
        if has_valid and stopping.stopped:
            break  # a resumed run that had already stopped early
        tick = time.perf_counter()
        if runs_adversarial_pass(
            cfg, epoch - 1, int(state.adv_epochs), stopped=adversary_stopped,
            divergence=functools.partial(_divergence, run, state),
        ):  # fmt: skip
            state, adv_stats = fns.adv_epoch(state, run.train_data)
            adv_stats = _floats(adv_stats)
            check_finite(adv_stats, f"in adversarial epoch before epoch {epoch}")
            yield events.AdversarialPass(epoch, int(state.adv_epochs), adv_stats)
        state, stats = fns.cf_epoch(state, run.train_data)
        stats = _floats(stats)
        check_finite(stats, f"in epoch {epoch} (steps up to {int(state.step)})")
        seconds = time.perf_counter() - tick
        yield events.EpochTrained(
            epoch, stats, seconds, samples_per_epoch / seconds, int(state.step)
        )
        if epoch % cfg.eval_every == 0 or epoch == cfg.max_epochs:
            # One propagation serves the validation, the test curves and the diagnostics.
            embedded = run.embed(state.cf_params)
            if has_valid:
                valid = run.evaluate(state.cf_params, ["valid"], embedded)["valid"]
                check_finite(valid, f"in validation after epoch {epoch}")
                stopping = stopping.update(epoch, valid[SELECTION_METRIC])
                improved = stopping.improved_at(epoch)
                yield events.Validation(epoch, valid, improved)
                if cfg.adv_stop == "valid" and not improved and not adversary_stopped:
                    adversary_stopped = cfg.trains_adversary
                    if adversary_stopped:
                        yield events.Note(
                            f"adversary stopped: the validation of epoch {epoch} did not "
                            f"beat the best (--adv_stop=valid; {int(state.adv_epochs)} passes)"
                        )
                if improved:
                    # Copied to host: the next epoch donates the state's device buffers.
                    best_params = jax.device_get(state.cf_params)
                    if ckpt:
                        ckpt.save_best(epoch, best_params)
                        yield events.CheckpointSaved(epoch, "best")
            if cfg.log_test:
                tests = [name for name in run.evaluators if name != "valid"]
                yield events.TestCurves(epoch, run.evaluate(state.cf_params, tests, embedded))
            yield events.Diagnostics(epoch, run.diagnostics(state, embedded))
            if ckpt:
                ckpt.save(state, {**stopping.record(), "adversary_stopped": adversary_stopped})
                yield events.CheckpointSaved(epoch, "state")
        yield events.EpochEnd(
            epoch,
            time.perf_counter() - tick,
            stopping.stop_epoch(epoch) if has_valid else None,
            cfg.max_epochs,
        )
        if has_valid and stopping.stopped:
            yield events.EarlyStopped(epoch, cfg.patience, SELECTION_METRIC)
            break

    epochs_run = int(state.epoch)
    best_epoch = stopping.best_epoch
    if best_params is None:  # no validation split: report the final model
        best_params, best_epoch = jax.device_get(state.cf_params), epochs_run
    metrics = run.evaluate(best_params, list(run.evaluators))
    for name, values in metrics.items():
        check_finite(values, f"in the final {name} evaluation")
    if ckpt:
        ckpt.close()
    seconds = time.perf_counter() - start
    results = results_record(run, best_epoch, epochs_run, metrics, seconds)
    yield events.Report(best_epoch, epochs_run, seconds, metrics, results)


def train_and_evaluate(
    cfg: TrainConfig,
    workdir: str | None = None,
    *,
    data: SplitData | None = None,
    log: Callable[[str], None] = print_flushed,
    sinks: Sequence[Callable] | None = None,
    restart: bool = False,
    max_to_keep: int = 3,
    test_only: bool = False,
) -> dict:
    """Trains per cfg with early stopping on valid Recall@20 and reports every evaluator.

    Args:
      cfg: run settings.
      workdir: where checkpoints, metrics.jsonl, TensorBoard events and results.json go
        (advjax/train/checkpoints.py); a workdir holding checkpoints of the same
        configuration is resumed from the newest. None writes nothing.
      data: a loaded split; None loads cfg.data_dir, or the embedded cfg.dataset.
      log: receives the progress lines (one per epoch, the final table).
      sinks: callables receiving every event (advjax/train/events.py) instead of the
        progress lines to `log`, e.g. [ProgressLines(log, every_epoch=False)] in a
        sweep. The workdir's sinks (scalars, results.json) are added either way.
      restart: discard checkpoints of another configuration instead of refusing them.
      max_to_keep: newest state checkpoints kept.
      test_only: evaluate the workdir's best checkpoint on every split; no training,
        nothing written.

    Returns:
      results.json's content: {"best_epoch": int, evaluator name -> {metric@k: value},
      "flags", "data", "timing", "platform"}; with test_only, the first two only.
    """
    announce = sinks is None  # "wrote results.json" belongs to the default progress lines
    shown = [ProgressLines(log)] if sinks is None else list(sinks)
    files = []
    if workdir and not test_only:
        files = [ScalarSink(workdir), ResultsFile(workdir, log if announce else None)]
    # The workdir's files take each event before anything shows it: a run killed on
    # seeing an epoch's line has that epoch in metrics.jsonl, as the resume expects.
    sinks = [*files, *shown]
    last = None
    for event in train_events(
        cfg, workdir, data=data, restart=restart, max_to_keep=max_to_keep, test_only=test_only
    ):
        for sink in sinks:
            sink(event)
        last = event
    for sink in sinks:
        sink.close()
    if isinstance(last, events.Evaluated):
        return {"best_epoch": last.best_epoch, **last.metrics}
    return last.results
