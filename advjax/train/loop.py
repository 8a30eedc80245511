"""The training loop: epochs on the adversarial schedule, early stopping, checkpoints,
the final report; as a stream of events (advjax/train/events.py) that sinks consume."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp

from advjax import distributed
from advjax.data import SplitData
from advjax.errors import ConfigError, WorkdirError, check_finite
from advjax.metrics import SELECTION_METRIC
from advjax.provenance import package_versions
from advjax.train import events
from advjax.train.batch import (
    check_batchable,
    make_batched_epochs,
    run_slice,
    stack,
    traced_values,
)
from advjax.train.checkpoints import RunCheckpoints
from advjax.train.config import TrainConfig, config_dict
from advjax.train.early_stopping import EarlyStopping
from advjax.train.schedule import runs_adversarial_pass
from advjax.train.setup import RunSetup, setup_run, setup_runs
from advjax.train.sinks import ProgressLines, ResultsFile, ScalarSink, print_flushed


def _divergence(run: RunSetup, state) -> float:
    """The hardness divergence KL(U || P) at `state` on the diagnostics' fixed sample."""
    return run.diagnostics(state)["hardness/kl_u_p"]


def _floats(stats: dict) -> dict[str, float]:
    return {name: float(value) for name, value in stats.items()}


def results_record(
    run: RunSetup,
    best_epoch: int,
    epochs: int,
    metrics: dict,
    seconds: float,
    runs_in_program: int = 1,
) -> dict:
    """What results.json holds: the best epoch, every evaluator's metrics there, the
    flags, what was loaded, timing and the platform. `runs_in_program`: how many runs
    trained in the program this one did (advjax/train/batch.py); their wall time is
    shared, so `timing` says so when there were several."""
    timing = {"total_s": seconds, "epochs": epochs}
    if runs_in_program > 1:
        timing["runs_in_program"] = runs_in_program
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
        "timing": timing,
        "platform": {
            "device": jax.devices()[0].device_kind,
            "jax": jax.__version__,
            # What "auto" resolved to on this platform (it follows benchmark records).
            "propagation": (
                run.train_data.propagation if cfg.backbone_spec.prepare_graph else None
            ),
            "packages": package_versions(),
            **({"mesh": run.placement.describe()} if run.placement else {}),
        },
    }


@dataclasses.dataclass
class _Track:
    """Where one run stands, on the host: its setup, workdir checkpoints, early stopping
    and the counters its state holds (kept here so the loop needs no device reads)."""

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


def _tagged(index: int, stream: Iterator) -> Iterator[tuple[int, events.Event]]:
    """(index, event) for each event of a generator; returns the generator's value."""
    while True:
        try:
            event = next(stream)
        except StopIteration as stop:
            return stop.value
        yield index, event


def _open(run: RunSetup, workdir: str | None, *, restart: bool, max_to_keep: int):
    """Announces a run and restores its workdir's newest checkpoint; yields events and
    returns (its _Track, its state to train on)."""
    cfg, fns = run.cfg, run.fns
    yield events.RunStarted(
        dataset=run.data.name,
        n_users=run.data.n_users,
        n_items=run.data.n_items,
        n_pairs=run.data.train.nnz,
        model=cfg.backbone_spec.label(cfg),
        loss=cfg.loss_label,
        n_batches=fns.n_batches,
    )
    track = _Track(run, EarlyStopping(patience=cfg.patience, eval_every=cfg.eval_every))
    state = run.state
    if workdir:
        notes: list[str] = []
        track.ckpt = RunCheckpoints(
            workdir, cfg, max_to_keep=max_to_keep, restart=restart, log=notes.append
        )
        target = run.placement.abstract_state(state) if run.placement else None
        restored = track.ckpt.restore_latest(state, target)
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
    track.done = "valid" in run.evaluators and track.stopping.stopped
    return track, state


def _validate(track: _Track, state, epoch: int) -> Iterator[events.Event]:
    """The validation after `epoch`: early stopping, the adversary's stop, the best
    parameters, test curves, diagnostics and the checkpoints."""
    run, cfg = track.run, track.run.cfg
    # One propagation serves the validation, the test curves and the diagnostics.
    model = run.model(state.cf_params)
    if "valid" in run.evaluators:
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


def _finish(track: _Track, state, seconds: float, runs_in_program: int) -> Iterator[events.Event]:
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
    results = results_record(run, best_epoch, track.epoch, metrics, seconds, runs_in_program)
    track.reported = True
    yield events.Report(best_epoch, track.epoch, seconds, metrics, results)


class _OneRun:
    """A single run's state and its jitted epochs; on a mesh (run.placement) the state
    is laid out there (advjax/sharding.py), and RunSetup reads it as it is."""

    def __init__(self, run: RunSetup, state):
        self.fns, self.data = run.fns, run.train_data
        self.state = state if run.placement is None else run.placement.place_state(state)

    def state_of(self, index: int):
        return self.state

    def adv_epoch(self, wanted: list[bool]) -> list[dict]:
        self.state, stats = self.fns.adv_epoch(self.state, self.data)
        return [_floats(stats)]

    def cf_epoch(self, active: list[bool]) -> list[dict]:
        self.state, stats = self.fns.cf_epoch(self.state, self.data)
        return [_floats(stats)]


class _StackedRuns:
    """Runs stacked on a leading axis, trained by one program (advjax/train/batch.py)."""

    def __init__(self, runs: list[RunSetup], states: list, batching: str, traced: tuple):
        self.settings = traced_values([run.cfg for run in runs], traced)
        self.epochs = make_batched_epochs(runs[0].fns, batching)
        self.data, self.state = runs[0].train_data, stack(states)

    def state_of(self, index: int):
        return run_slice(self.state, index)

    def _epoch(self, epoch, mask: list[bool]) -> list[dict | None]:
        self.state, stats = epoch(self.state, self.data, jnp.asarray(mask), self.settings)
        stats = jax.device_get(stats)
        return [
            {name: float(values[i]) for name, values in stats.items()} if on else None
            for i, on in enumerate(mask)
        ]

    def adv_epoch(self, wanted: list[bool]) -> list[dict | None]:
        return self._epoch(self.epochs.adv_epoch, wanted)

    def cf_epoch(self, active: list[bool]) -> list[dict | None]:
        return self._epoch(self.epochs.cf_epoch, active)


def train_runs_events(
    cfgs: Sequence[TrainConfig],
    workdirs: Sequence[str | None],
    *,
    data: SplitData | None = None,
    restart: bool = False,
    max_to_keep: int = 3,
    batching: str | None = None,
    mesh: str = "",
) -> Iterator[tuple[int, events.Event]]:
    """Trains runs with early stopping on valid Recall@20, yielding (run index, event).

    Args:
      cfgs: the runs' settings; more than one train in one program and may differ
        only in what it can vary (advjax/train/batch.py, check_batchable).
      workdirs: each run's workdir (or None), as train_and_evaluate's.
      data, restart, max_to_keep: as train_and_evaluate.
      batching: how one program trains several runs: "map" or "vmap"; None for a
        single run on its own.
      mesh: a single run's device mesh (setup_run; advjax/sharding.py); "" one device.

    Each run's events come in the order train_events gives them; runs interleave by
    epoch. A run's Report follows its early stop, while the others go on.
    """
    start = time.perf_counter()
    if len(cfgs) != len(workdirs):
        raise ValueError(f"{len(cfgs)} configurations but {len(workdirs)} workdirs")
    if batching is None and len(cfgs) != 1:
        raise ValueError("several runs need batching='map' or 'vmap'")
    traced = ()
    if len(cfgs) > 1:
        if mesh.strip():
            raise ConfigError("--mesh trains one run at a time; drop --seeds or --mesh")
        traced = check_batchable(cfgs)  # before anything is loaded or compiled
        runs = setup_runs(list(cfgs), data)
    else:
        runs = [setup_run(cfgs[0], data, mesh=mesh)]
    tracks, states = [], []
    for index, (run, workdir) in enumerate(zip(runs, workdirs, strict=True)):
        track, state = yield from _tagged(
            index, _open(run, workdir, restart=restart, max_to_keep=max_to_keep)
        )
        tracks.append(track)
        states.append(state)
    if batching is None:
        runner = _OneRun(runs[0], states[0])
    else:
        runner = _StackedRuns(runs, states, batching, traced)
    del states  # the runner owns (and donates) them now

    cfg, n_runs = runs[0].cfg, len(runs)
    has_valid = "valid" in runs[0].evaluators
    n_batches = runs[0].fns.n_batches
    samples_per_epoch = n_batches * cfg.batch_size
    for epoch in range(min(t.epoch for t in tracks) + 1, cfg.max_epochs + 1):
        if all(t.done for t in tracks):
            break
        live = [not t.done and t.epoch == epoch - 1 for t in tracks]
        if not any(live):
            continue  # resumed runs behind the others catch up first
        tick = time.perf_counter()
        wanted = [
            on and runs_adversarial_pass(
                t.run.cfg, epoch - 1, t.adv_epochs, stopped=t.adversary_stopped,
                divergence=functools.partial(_divergence, t.run, runner.state_of(i))
                if t.run.cfg.kl_radius > 0 else None,
            )
            for i, (on, t) in enumerate(zip(live, tracks, strict=True))
        ]  # fmt: skip
        if any(wanted):
            adv_stats = runner.adv_epoch(wanted)
            for i in (i for i, on in enumerate(wanted) if on):
                tracks[i].adv_epochs += 1
                check_finite(adv_stats[i], f"in adversarial epoch before epoch {epoch}")
                yield i, events.AdversarialPass(epoch, tracks[i].adv_epochs, adv_stats[i])
        stats = runner.cf_epoch(live)
        seconds = time.perf_counter() - tick
        for i in (i for i, on in enumerate(live) if on):
            t = tracks[i]
            t.epoch, t.steps = epoch, t.steps + n_batches
            check_finite(stats[i], f"in epoch {epoch} (steps up to {t.steps})")
            trained = events.EpochTrained(
                epoch, stats[i], seconds, samples_per_epoch / seconds, t.steps, sum(live)
            )
            yield i, trained
        for i in (i for i, on in enumerate(live) if on):
            t = tracks[i]
            if epoch % cfg.eval_every == 0 or epoch == cfg.max_epochs:
                yield from _tagged(i, _validate(t, runner.state_of(i), epoch))
            yield (
                i,
                events.EpochEnd(
                    epoch,
                    time.perf_counter() - tick,
                    t.stopping.stop_epoch(epoch) if has_valid else None,
                    cfg.max_epochs,
                ),
            )
            if has_valid and t.stopping.stopped:
                t.done = True
                yield i, events.EarlyStopped(epoch, t.run.cfg.patience, SELECTION_METRIC)
                yield from _tagged(
                    i,
                    _finish(t, runner.state_of(i), time.perf_counter() - start, n_runs),
                )
    for i, t in enumerate(tracks):
        if not t.reported:
            yield from _tagged(
                i, _finish(t, runner.state_of(i), time.perf_counter() - start, n_runs)
            )


def train_events(
    cfg: TrainConfig,
    workdir: str | None = None,
    *,
    data: SplitData | None = None,
    restart: bool = False,
    max_to_keep: int = 3,
    test_only: bool = False,
    mesh: str = "",
) -> Iterator[events.Event]:
    """Trains per cfg with early stopping on valid Recall@20, yielding what happens.

    Args: as train_and_evaluate. The last event is a Report (Evaluated with
    test_only); its `results` is what results.json holds.
    """
    if not test_only:
        for _, event in train_runs_events(
            [cfg], [workdir], data=data, restart=restart, max_to_keep=max_to_keep, mesh=mesh
        ):
            yield event
        return
    if not workdir:
        raise WorkdirError("--test_only needs the --workdir of a run")
    run = setup_run(cfg, data)
    track, _ = yield from _open(run, workdir, restart=restart, max_to_keep=max_to_keep)
    if track.best_params is None:
        raise WorkdirError(f"{workdir}: no best checkpoint to evaluate (--test_only)")
    metrics = run.evaluate(track.best_params, list(run.evaluators))
    track.ckpt.close()
    yield events.Evaluated(track.stopping.best_epoch, workdir, metrics)


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
    mesh: str = "",
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
      mesh: train on a device mesh: "auto" or "data:D,model:M" (advjax/sharding.py);
        "" on one device. A run resumes on any mesh (checkpoints hold unpadded arrays).

    Returns:
      results.json's content: {"best_epoch": int, evaluator name -> {metric@k: value},
      "flags", "data", "timing", "platform"}; with test_only, the first two only.
    """
    announce = sinks is None  # "wrote results.json" belongs to the default progress lines
    shown = [ProgressLines(log)] if sinks is None else list(sinks)
    sinks = _with_files(workdir if not test_only else None, shown, log if announce else None)
    last = None
    for event in train_events(
        cfg, workdir, data=data, restart=restart, max_to_keep=max_to_keep, test_only=test_only,
        mesh=mesh,
    ):  # fmt: skip
        for sink in sinks:
            sink(event)
        last = event
    for sink in sinks:
        sink.close()
    if isinstance(last, events.Evaluated):
        return {"best_epoch": last.best_epoch, **last.metrics}
    return last.results


def _with_files(workdir: str | None, shown: list, announce) -> list:
    """The workdir's sinks (scalars, results.json; `announce` logs its writing), then
    `shown`. The files take each event before anything shows it: a run killed on seeing
    an epoch's line has that epoch in metrics.jsonl, as the resume expects. Of several
    processes only the first writes them (advjax/distributed.py)."""
    files = []
    if workdir and distributed.is_primary():
        files = [ScalarSink(workdir), ResultsFile(workdir, announce)]
    return [*files, *shown]


def train_runs(
    cfgs: Sequence[TrainConfig],
    workdirs: Sequence[str | None],
    *,
    data: SplitData | None = None,
    log: Callable[[str], None] = print_flushed,
    sinks: Sequence[Sequence[Callable]] | None = None,
    restart: bool = False,
    max_to_keep: int = 3,
    batching: str = "map",
) -> list[dict]:
    """train_and_evaluate for runs trained in one program (their seeds, or what else
    advjax/train/batch.py lets them vary).

    Args:
      cfgs, workdirs: each run's settings and workdir (None writes nothing).
      sinks: per run, the callables receiving its events; None: a sweep's progress
        lines (validations, early stops) to `log`, each prefixed with its seed
        ("seed 2: ").
      batching: "map" (bit-identical to the runs alone) or "vmap" (advjax/train/batch.py).
      data, log, restart, max_to_keep: as train_and_evaluate.

    Returns:
      Each run's results.json content, in the order of cfgs.
    """
    if sinks is None:
        sinks = [
            [ProgressLines(log, prefix=f"seed {cfg.seed}: ", every_epoch=False)] for cfg in cfgs
        ]
    per_run = [
        _with_files(workdir, list(shown), log)
        for workdir, shown in zip(workdirs, sinks, strict=True)
    ]
    results: list[dict | None] = [None] * len(cfgs)
    for index, event in train_runs_events(
        cfgs, workdirs, data=data, restart=restart, max_to_keep=max_to_keep, batching=batching
    ):
        for sink in per_run[index]:
            sink(event)
        if isinstance(event, events.Report):
            results[index] = event.results
    for run_sinks in per_run:
        for sink in run_sinks:
            sink.close()
    return results
