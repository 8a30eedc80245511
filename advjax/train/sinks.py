"""Sinks of a run's events (advjax/train/events.py): progress lines, scalars, results.json.

A sink is a callable taking one event; `close()` where it holds files. Each keeps
what it needs of an epoch's events until that epoch's EpochEnd.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from advjax import distributed
from advjax.files import write_atomically
from advjax.logs import ScalarLog
from advjax.train import events


def print_flushed(line: str) -> None:
    """Progress goes out at once, even when stdout is a file or a pipe."""
    print(line, flush=True)


def format_metrics(metrics: dict[str, float], keys=("recall@20", "ndcg@20")) -> str:
    """ "recall@20 0.2547 ndcg@20 0.1930"."""
    return " ".join(f"{k} {metrics[k]:.4f}" for k in keys if k in metrics)


def format_duration(seconds: float) -> str:
    """1h02m or 3m05s."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def results_table(results: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per evaluator, one column per metric."""
    names = list(results)
    columns = list(results[names[0]])
    width = max(len(n) for n in names)
    lines = [" " * width + " | " + " | ".join(f"{c:>14}" for c in columns)]
    for name in names:
        row = " | ".join(f"{results[name][c]:14.4f}" for c in columns)
        lines.append(f"{name:<{width}} | {row}")
    return "\n".join(lines)


class ProgressLines:
    """Human-readable progress: one line per epoch, the final table.

    Args:
      log: receives each line.
      prefix: put before every line ("coat_mf_infonce seed 2: "), for sweeps.
      every_epoch: False keeps only what a sweep of many runs wants to see: epochs
        with a validation, early stops, resumptions and notes (no final table: the
        sweep reports each run itself).
    """

    def __init__(self, log: Callable[[str], None] = print_flushed, *, prefix: str = "",
                 every_epoch: bool = True):  # fmt: skip
        self.log, self.prefix, self.every_epoch = log, prefix, every_epoch
        self._line: list[str] = []
        self._adversarial: events.AdversarialPass | None = None
        self._validated = False
        self._epoch_times: list[float] = []

    def _out(self, text: str) -> None:
        self.log(self.prefix + text)

    def __call__(self, event) -> None:
        match event:
            case events.RunStarted():
                if self.every_epoch:
                    trains = (
                        f"{event.model} + {event.loss}; {event.n_batches} batches/epoch"
                        if event.loss
                        else f"{event.model}, fitted by its solver (an epoch is a sweep)"
                    )
                    self._out(
                        f"{event.dataset}: {event.n_users} users, {event.n_items} items, "
                        f"{event.n_pairs} train pairs; {trains}"
                    )
            case events.Note():
                self._out(event.text)
            case events.Resumed():
                self._out(
                    f"resumed from the checkpoint of epoch {event.epoch} in {event.workdir} "
                    f"(best valid {event.best_score:.4f} at epoch {event.best_epoch})"
                )
            case events.AdversarialPass():
                self._adversarial = event
            case events.EpochTrained():
                stats = event.stats
                line = [
                    f"epoch {event.epoch:4d}",
                    f"{event.seconds:6.2f}s {event.samples_per_s:9,.0f}/s",
                ]
                if "loss" in stats:
                    line.append(f"loss {stats['loss']:.4f}")
                if "kl" in stats:
                    line.append(f"kl {stats['kl']:.3g}")
                adversarial = self._adversarial
                if adversarial is not None and adversarial.epoch == event.epoch:
                    line.append(f"adv #{adversarial.number} loss {adversarial.stats['loss']:.4f}")
                self._line, self._adversarial = line, None
            case events.Validation():
                self._line.append(
                    f"valid {format_metrics(event.metrics)}" + (" *" if event.improved else "")
                )
                self._validated = True
            case events.TestCurves():
                self._line += [f"{n} {format_metrics(m)}" for n, m in event.metrics.items()]
            case events.EpochEnd():
                self._epoch_times.append(event.wall_s)
                if len(self._epoch_times) > 1:  # the first epoch's time is mostly compilation
                    self._line.append(self._eta(event))
                if self.every_epoch or self._validated:
                    self._out(" | ".join(self._line))
                self._line, self._validated = [], False
            case events.EarlyStopped():
                self._out(
                    f"early stop: {event.patience} validations without a better {event.metric}"
                )
            case events.Report() if self.every_epoch:
                self._out(
                    f"best epoch {event.best_epoch} of {event.epochs}; {event.seconds:.1f}s\n"
                    + results_table(event.metrics)
                )
            case events.Evaluated():
                self._out(
                    f"best checkpoint (epoch {event.best_epoch}) of {event.workdir}\n"
                    + results_table(event.metrics)
                )

    def _eta(self, event: events.EpochEnd) -> str:
        """Time to the early stop if validation stops improving, and to max_epochs."""
        recent = self._epoch_times[1:][-20:]
        per_epoch = sum(recent) / len(recent)
        left = event.max_epochs - event.epoch
        if event.stop_epoch is None:
            return f"eta {format_duration(left * per_epoch)}"
        stop = min(event.max_epochs, event.stop_epoch)
        return (
            f"eta {format_duration((stop - event.epoch) * per_epoch)} if valid stops "
            f"improving (epoch {stop}), <= {format_duration(left * per_epoch)}"
        )

    def close(self) -> None:
        pass


def _flat(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """{"test_ood": {"recall@20": x}} -> {"test_ood/recall@20": x}."""
    return {f"{split}/{k}": v for split, values in metrics.items() for k, v in values.items()}


class ScalarSink:
    """Per-epoch scalars and the final metrics into the workdir's metrics.jsonl and
    TensorBoard events (advjax.logs.ScalarLog), opened at the first epoch or report."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self._log: ScalarLog | None = None
        self._resume_epoch = 0
        self._adversarial: dict = {}
        self._record: dict = {}

    def _scalars(self) -> ScalarLog:
        if self._log is None:
            self._log = ScalarLog(self.workdir, resume_epoch=self._resume_epoch)
        return self._log

    def __call__(self, event) -> None:
        match event:
            case events.Resumed():
                self._resume_epoch = event.epoch
            case events.AdversarialPass():
                self._adversarial = {f"adv_{k}": v for k, v in event.stats.items()}
            case events.EpochTrained():
                record = {  # "loss" first (a fitted model's sweep may have none)
                    **{k: v for k, v in event.stats.items() if k == "loss"},
                    "epoch_s": event.seconds,
                    "samples_per_s": event.samples_per_s,
                }
                if event.runs > 1:  # epoch_s is the wall time of that many runs
                    record["epoch_runs"] = event.runs
                record.update({k: v for k, v in event.stats.items() if k != "loss"})
                record.update(self._adversarial)
                self._adversarial = {}
                self._record = record
            case events.Validation():
                self._record.update({f"valid/{k}": v for k, v in event.metrics.items()})
            case events.TestCurves():
                self._record.update(_flat(event.metrics))
            case events.Diagnostics():
                self._record.update(event.values)
            case events.EpochEnd():
                self._scalars().write(event.epoch, self._record)
                self._record = {}
            case events.Report():
                self._scalars().write(event.epochs, _flat(event.metrics), final=True)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()


class ResultsFile:
    """The Report's results as the workdir's results.json (written atomically); `log`,
    if given, is told where when the run closes (after the final table)."""

    def __init__(self, workdir: str, log: Callable[[str], None] | None = print_flushed):
        self.path = os.path.join(workdir, "results.json")
        self.log = log
        self._written = False

    def __call__(self, event) -> None:
        if isinstance(event, events.Report):
            write_atomically(self.path, json.dumps(event.results, indent=2))
            self._written = True

    def close(self) -> None:
        if self._written and self.log:
            self.log(f"wrote {self.path}")


def with_files(workdir: str | None, shown: list, announce) -> list:
    """The workdir's sinks (scalars, results.json; `announce` logs its writing), then
    `shown`. The files take each event before anything shows it: a run killed on seeing
    an epoch's line has that epoch in metrics.jsonl, as the resume expects. Of several
    processes only the first writes them (advjax/distributed.py)."""
    files = []
    if workdir and distributed.is_primary():
        files = [ScalarSink(workdir), ResultsFile(workdir, announce)]
    return [*files, *shown]
