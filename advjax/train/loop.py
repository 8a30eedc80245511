"""Training one run: the loop a newcomer reads top to bottom.

Set up (split, device arrays, compiled epochs, evaluators, state: setup.py), restore
the workdir's newest checkpoint, then for each epoch: the adversarial pass when the
schedule asks for one, the CF epoch, the validation with its checkpoints when one is
due, early stopping; finally the report. Every step yields events
(advjax/train/events.py) that sinks turn into progress lines, metrics.jsonl and
results.json; what each step does to the run's host-side record is in track.py. On a
device mesh the same loop runs the placed epochs (setup_run's `mesh`,
advjax/sharding.py); several runs in one program are multirun.py's wrapper around the
same epochs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from advjax.data import SplitData
from advjax.errors import ConfigError, WorkdirError
from advjax.train import events
from advjax.train.config import TrainConfig
from advjax.train.fit import fit_events
from advjax.train.setup import setup_run
from advjax.train.sinks import ProgressLines, print_flushed, with_files
from advjax.train.track import (
    adversarial_pass_done,
    cf_epoch_done,
    end_epoch,
    finish,
    floats,
    open_run,
    wants_adversarial_pass,
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
    """Trains per cfg with early stopping on valid Recall@20, yielding what happens (a
    fitted model, --backbone=ease|ials: its solver's sweeps, advjax/train/fit.py).

    Args: as train_and_evaluate. The last event is a Report (Evaluated with
    test_only); its `results` is what results.json holds.
    """
    if cfg.fitted_spec is not None:  # EASE, iALS: their solvers' loop
        if mesh:
            raise ConfigError(f"--mesh trains SGD backbones; --backbone={cfg.backbone} is fitted")
        yield from fit_events(cfg, workdir, data=data, restart=restart, test_only=test_only)
        return
    if test_only:
        yield from _evaluate_best(cfg, workdir, data, restart=restart, max_to_keep=max_to_keep)
        return
    start = time.perf_counter()
    run = setup_run(cfg, data, mesh=mesh)
    track, state = yield from open_run(run, workdir, restart=restart, max_to_keep=max_to_keep)
    epochs, train_data = run.fns, run.train_data
    for epoch in range(track.epoch + 1, cfg.max_epochs + 1):
        if track.done:  # stopped early (or resumed after it had)
            break
        tick = time.perf_counter()
        if wants_adversarial_pass(track, epoch, lambda state=state: state):
            state, stats = epochs.adv_epoch(state, train_data)
            yield from adversarial_pass_done(track, epoch, floats(stats))
        state, stats = epochs.cf_epoch(state, train_data)
        yield from cf_epoch_done(track, epoch, floats(stats), time.perf_counter() - tick)
        yield from end_epoch(track, lambda state=state: state, epoch, tick, start)
    if not track.reported:
        yield from finish(track, state, time.perf_counter() - start)


def _evaluate_best(
    cfg: TrainConfig, workdir: str | None, data: SplitData | None, *, restart: bool,
    max_to_keep: int,
) -> Iterator[events.Event]:  # fmt: skip
    """--test_only: every evaluator at the workdir's best checkpoint; nothing trained."""
    if not workdir:
        raise WorkdirError("--test_only needs the --workdir of a run")
    run = setup_run(cfg, data)
    track, _ = yield from open_run(run, workdir, restart=restart, max_to_keep=max_to_keep)
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
    sinks = with_files(workdir if not test_only else None, shown, log if announce else None)
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
