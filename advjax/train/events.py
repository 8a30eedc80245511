"""What a run reports as it goes: structured events, in the order they happen.

The loop (advjax/train/loop.py) yields them; sinks (advjax/train/sinks.py) turn them
into progress lines, metrics.jsonl and TensorBoard scalars, and results.json. A run's
events, in order:

  RunStarted
  Note*                        (checkpoint notices: restarts, unreadable checkpoints)
  Resumed?                     (a workdir with checkpoints of this configuration)
  per epoch: AdversarialPass? EpochTrained
             (at a validation epoch: Validation? TestCurves? Diagnostics CheckpointSaved*)
             EpochEnd
  EarlyStopped?
  Report                       (or Evaluated, for --test_only)

Epochs are 1-based: epoch e is the e-th CF epoch.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RunStarted:
    """The data and model of the run.

    Attributes:
      dataset: name of the split; n_users, n_items, n_pairs: its sizes.
      model: "MF" or "LightGCN-L"; loss: the loss's label ("adv_infonce-embed"), "" for
        a fitted model (advjax/train/fit.py: an epoch is a sweep of its solver).
      n_batches: batches per epoch (0 for a fitted model).
    """

    dataset: str
    n_users: int
    n_items: int
    n_pairs: int
    model: str
    loss: str
    n_batches: int


@dataclasses.dataclass(frozen=True)
class Note:
    """A notice worth a line (a discarded or unreadable checkpoint)."""

    text: str


@dataclasses.dataclass(frozen=True)
class Resumed:
    """The run continues from the checkpoint after `epoch`."""

    epoch: int
    workdir: str
    best_score: float
    best_epoch: int


@dataclasses.dataclass(frozen=True)
class AdversarialPass:
    """An adversarial pass ran before CF epoch `epoch`.

    Attributes:
      number: adversarial passes run so far, this one included.
      stats: its epoch means ({"loss", ...the loss's diagnostics}).
    """

    epoch: int
    number: int
    stats: dict


@dataclasses.dataclass(frozen=True)
class EpochTrained:
    """CF epoch `epoch` finished.

    Attributes:
      stats: its epoch means ({"loss", ...the loss's diagnostics, e.g. "kl"}).
      seconds: wall time of its training passes (adversarial and CF).
      samples_per_s: positives trained per second.
      steps: CF steps taken so far.
      runs: runs trained by the same program in this epoch (advjax/train/multirun.py);
        `seconds` is their wall time together.
    """

    epoch: int
    stats: dict
    seconds: float
    samples_per_s: float
    steps: int
    runs: int = 1


@dataclasses.dataclass(frozen=True)
class Validation:
    """The validation after `epoch`.

    Attributes:
      metrics: {metric@k: value} on the valid split.
      improved: whether it is the best so far.
    """

    epoch: int
    metrics: dict
    improved: bool


@dataclasses.dataclass(frozen=True)
class TestCurves:
    """--log_test: every test split evaluated after `epoch`, for curves only (nothing is
    chosen by them).

    Attributes:
      metrics: {test split: {metric@k: value}}.
    """

    epoch: int
    metrics: dict


@dataclasses.dataclass(frozen=True)
class Diagnostics:
    """SPEC §7's diagnostics after `epoch` on the run's fixed sample: {"repr/align",
    "repr/uniform", and "hardness/..." for a loss that weights its negatives}."""

    epoch: int
    values: dict


@dataclasses.dataclass(frozen=True)
class CheckpointSaved:
    """A checkpoint of `epoch` was written: the state (`kind` "state") or the best
    parameters ("best")."""

    epoch: int
    kind: str


@dataclasses.dataclass(frozen=True)
class EpochEnd:
    """Epoch `epoch` is over, validation and checkpoints included.

    Attributes:
      wall_s: its whole wall time.
      stop_epoch: the epoch at which the run stops if no validation from now on beats
        the best (None without a valid split).
      max_epochs: the epoch limit.
    """

    epoch: int
    wall_s: float
    stop_epoch: int | None
    max_epochs: int


@dataclasses.dataclass(frozen=True)
class EarlyStopped:
    """`patience` validations in a row did not beat the best; training ends."""

    epoch: int
    patience: int
    metric: str


@dataclasses.dataclass(frozen=True)
class Report:
    """The run is over: every evaluator at the best validation.

    Attributes:
      best_epoch, epochs: the chosen epoch and the epochs trained.
      seconds: the run's wall time.
      metrics: {evaluator: {metric@k: value}}.
      results: what results.json holds (advjax/train/track.py, `results_record`).
    """

    best_epoch: int
    epochs: int
    seconds: float
    metrics: dict
    results: dict


@dataclasses.dataclass(frozen=True)
class Evaluated:
    """--test_only: the best checkpoint of `workdir` evaluated again."""

    best_epoch: int
    workdir: str
    metrics: dict


Event = (
    RunStarted
    | Note
    | Resumed
    | AdversarialPass
    | EpochTrained
    | Validation
    | TestCurves
    | Diagnostics
    | CheckpointSaved
    | EpochEnd
    | EarlyStopped
    | Report
    | Evaluated
)
