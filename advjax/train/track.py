"""Where one run stands on the host, and the events of each thing that happens to it.

A `Track` holds a run's setup, its workdir checkpoints, early stopping, best parameters
and the counters its state holds (kept here so the loop needs no device reads). The
functions below move it on and yield the run's events (advjax/train/events.py): opening
it (restoring the workdir's newest checkpoint), an adversarial pass and a CF epoch
done, the end of an epoch (validation, checkpoints, early stopping) and the final
report. The single-run loop (loop.py) and the stacked one (multirun.py) both drive runs
through them, so a run's events are the same either way.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax

from advjax.errors import check_finite
from advjax.metrics import SELECTION_METRIC
from advjax.provenance import package_versions
from advjax.train import events
from advjax.train.checkpoints import RunCheckpoints
from advjax.train.config import config_dict
from advjax.train.early_stopping import EarlyStopping
from advjax.train.schedule import runs_adversarial_pass
from advjax.train.setup import RunSetup


def floats(stats: dict) -> dict[str, float]:
    """An epoch's means as Python floats."""
    return {name: float(value) for name, value in stats.items()}


@dataclasses.dataclass
class Track:
    """Where one run stands (see the module docstring)."""

    run: RunSetup
    stopping: EarlyStopping
    ckpt: RunCheckpoints | None = None
    best_params: dict | None = None
    adversary_stopped: bool = False  # --adv_stop=valid, after a validation without a new best
    epoch: int = 0  # CF epochs done
    adv_epochs: int = 0
    steps: int = 0
    done: bool = False  # stopped early, or resumed after it had
    reported: bool = False

    @property
    def has_valid(self) -> bool:
        return "valid" in self.run.evaluators


def open_run(run: RunSetup, workdir: str | None, *, restart: bool, max_to_keep: int):
    """Announces a run and restores its workdir's newest checkpoint; yields events and
    returns (its Track, its state to train on, placed where the run trains)."""
    cfg = run.cfg
    yield events.RunStarted(
        dataset=run.data.name,
        n_users=run.data.n_users,
        n_items=run.data.n_items,
        n_pairs=run.data.train.nnz,
        model=cfg.backbone_spec.label(cfg),
        loss=cfg.loss_label,
        n_batches=run.fns.n_batches,
    )
    track = Track(run, EarlyStopping(patience=cfg.patience, eval_every=cfg.eval_every))
    state = run.state
    if workdir:
        notes: list[str] = []
        track.ckpt = RunCheckpoints(
            workdir, cfg, max_to_keep=max_to_keep, restart=restart, log=notes.append
        )
        restored = track.ckpt.restore_latest(state, run.restore_target(state))
        yield from map(events.Note, notes)
        if restored is not None:
            state, record = restored
            track.stopping = track.stopping.restored(record)
            track.adversary_stopped = bool(record.get("adversary_stopped", False))
            track.best_params = track.ckpt.restore_best(jax.device_get(run.state.cf_params))
            yield events.Resumed(
                int(state.epoch), workdir, track.stopping.best_score, track.stopping.best_epoch
            )
    track.epoch, track.adv_epochs, track.steps = (
        int(state.epoch), int(state.adv_epochs), int(state.step)
    )  # fmt: skip
    track.done = track.has_valid and track.stopping.stopped
    return track, run.place(state)


def _divergence(run: RunSetup, state) -> float:
    """The hardness divergence KL(U || P) at `state` on the diagnostics' fixed sample."""
    return run.diagnostics(state)["hardness/kl_u_p"]


def wants_adversarial_pass(track: Track, epoch: int, state: Callable[[], Any]) -> bool:
    """Whether an adversarial pass runs before CF epoch `epoch` (SPEC §3; the budgets
    beyond the paper ask for the divergence at the run's state, `state()`, only on a
    scheduled epoch)."""
    cfg = track.run.cfg
    divergence = (lambda: _divergence(track.run, state())) if cfg.kl_radius > 0 else None
    return runs_adversarial_pass(
        cfg, epoch - 1, track.adv_epochs, stopped=track.adversary_stopped, divergence=divergence
    )


def adversarial_pass_done(track: Track, epoch: int, stats: dict) -> Iterator[events.Event]:
    """The adversarial pass before CF epoch `epoch` finished with these epoch means."""
    track.adv_epochs += 1
    check_finite(stats, f"in adversarial epoch before epoch {epoch}")
    yield events.AdversarialPass(epoch, track.adv_epochs, stats)


def cf_epoch_done(
    track: Track, epoch: int, stats: dict, seconds: float, runs: int = 1
) -> Iterator[events.Event]:
    """CF epoch `epoch` finished with these means, its passes taking `seconds` (for
    `runs` runs trained by one program)."""
    n_batches = track.run.fns.n_batches
    track.epoch, track.steps = epoch, track.steps + n_batches
    check_finite(stats, f"in epoch {epoch} (steps up to {track.steps})")
    samples = n_batches * track.run.cfg.batch_size
    yield events.EpochTrained(epoch, stats, seconds, samples / seconds, track.steps, runs)


def end_epoch(
    track: Track,
    state: Callable[[], Any],
    epoch: int,
    tick: float,
    start: float,
    runs_in_program: int = 1,
) -> Iterator[events.Event]:
    """What follows CF epoch `epoch` (begun at perf_counter `tick`, the run at `start`):
    its validation when one is due, EpochEnd, and on an early stop the report. `state()`
    gives the run's state, asked for only when something reads it."""
    cfg = track.run.cfg
    if epoch % cfg.eval_every == 0 or epoch == cfg.max_epochs:
        yield from validate(track, state(), epoch)
    stop_epoch = track.stopping.stop_epoch(epoch) if track.has_valid else None
    yield events.EpochEnd(epoch, time.perf_counter() - tick, stop_epoch, cfg.max_epochs)
    if track.has_valid and track.stopping.stopped:
        track.done = True
        yield events.EarlyStopped(epoch, cfg.patience, SELECTION_METRIC)
        yield from finish(track, state(), time.perf_counter() - start, runs_in_program)


def validate(track: Track, state, epoch: int) -> Iterator[events.Event]:
    """The validation after `epoch`: early stopping, the adversary's stop, the best
    parameters, test curves, diagnostics and the checkpoints."""
    run, cfg = track.run, track.run.cfg
    # One forward pass serves the validation, the test curves and the diagnostics.
    model = run.model(state.cf_params)
    if track.has_valid:
        valid = run.evaluate(state.cf_params, ["valid"], model)["valid"]
        check_finite(valid, f"in validation after epoch {epoch}")
        track.stopping = track.stopping.update(epoch, valid[SELECTION_METRIC])
        improved = track.stopping.improved_at(epoch)
        yield events.Validation(epoch, valid, improved)
        if cfg.adv_stop == "valid" and not improved and not track.adversary_stopped:
            track.adversary_stopped = cfg.trains_adversary
            if track.adversary_stopped:
                yield events.Note(
                    f"adversary stopped: the validation of epoch {epoch} did not "
                    f"beat the best (--adv_stop=valid; {track.adv_epochs} passes)"
                )
        if improved:
            # Copied to host: the next epoch donates the state's device buffers.
            track.best_params = run.host_params(state.cf_params)
            if track.ckpt:
                track.ckpt.save_best(epoch, track.best_params)
                yield events.CheckpointSaved(epoch, "best")
    if cfg.log_test:
        tests = [name for name in run.evaluators if name != "valid"]
        yield events.TestCurves(epoch, run.evaluate(state.cf_params, tests, model))
    yield events.Diagnostics(epoch, run.diagnostics(state, model))
    if track.ckpt:
        record = {**track.stopping.record(), "adversary_stopped": track.adversary_stopped}
        track.ckpt.save(state, record)
        yield events.CheckpointSaved(epoch, "state")


def finish(track: Track, state, seconds: float, runs_in_program: int = 1) -> Iterator[events.Event]:
    """The run's report: every evaluator at its best validation (at its last epoch
    without a valid split)."""
    run, best_epoch, best_params = track.run, track.stopping.best_epoch, track.best_params
    if best_params is None:  # no validation split: report the final model
        best_params, best_epoch = run.host_params(state.cf_params), track.epoch
    metrics = run.evaluate(best_params, list(run.evaluators))
    for name, values in metrics.items():
        check_finite(values, f"in the final {name} evaluation")
    if track.ckpt:
        track.ckpt.close()
    results = results_record(
        run.cfg, run.data, best_epoch, track.epoch, metrics, seconds, runs_in_program,
        propagation=run.train_data.propagation if run.cfg.backbone_spec.prepare_graph else None,
        mesh=run.placement.describe() if run.placement else None,
    )  # fmt: skip
    track.reported = True
    yield events.Report(best_epoch, track.epoch, seconds, metrics, results)


def results_record(
    cfg,
    data,
    best_epoch: int,
    epochs: int,
    metrics: dict,
    seconds: float,
    runs_in_program: int = 1,
    *,
    propagation: str | None = None,
    mesh: str | None = None,
) -> dict:
    """What results.json holds: the best epoch, every evaluator's metrics there, the
    flags, what was loaded (`data`, the SplitData), timing and the platform (the
    propagation path that ran, the mesh). `runs_in_program`: how many runs trained in
    the program this one did (advjax/train/multirun.py); their wall time is shared, so
    `timing` says so when there were several."""
    timing = {"total_s": seconds, "epochs": epochs}
    if runs_in_program > 1:
        timing["runs_in_program"] = runs_in_program
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
        "timing": timing,
        "platform": {
            "device": jax.devices()[0].device_kind,
            "jax": jax.__version__,
            # What "auto" resolved to on this platform (it follows benchmark records).
            "propagation": propagation,
            "packages": package_versions(),
            **({"mesh": mesh} if mesh else {}),
        },
    }
