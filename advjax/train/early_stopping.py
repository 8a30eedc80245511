"""Early stopping on a validation score (SPEC: valid Recall@20, patience in validations)."""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Where a run stands against its best validation; immutable, checkpointed.

    Attributes:
      patience: validations without a better score that stop the run.
      eval_every: epochs between validations.
      best_score: the best score so far (-inf before the first validation).
      best_epoch: the epoch of that score (0 before the first validation).
      stale: validations since the best one.
    """

    patience: int
    eval_every: int
    best_score: float = -math.inf
    best_epoch: int = 0
    stale: int = 0

    def update(self, epoch: int, score: float) -> EarlyStopping:
        """After the validation of `epoch` (1-based): a strictly better score is the new
        best; anything else (ties included) adds one stale validation."""
        if score > self.best_score:
            return dataclasses.replace(self, best_score=score, best_epoch=epoch, stale=0)
        return dataclasses.replace(self, stale=self.stale + 1)

    def improved_at(self, epoch: int) -> bool:
        """Whether the validation of `epoch` set the current best."""
        return self.best_epoch == epoch and self.stale == 0

    @property
    def stopped(self) -> bool:
        """Whether patience has run out."""
        return self.stale >= self.patience

    def stop_epoch(self, epochs_done: int) -> int:
        """The epoch whose validation stops the run if none from now on beats the best:
        the next validation after `epochs_done`, then patience - stale - 1 more."""
        next_eval = epochs_done - epochs_done % self.eval_every + self.eval_every
        return next_eval + (self.patience - self.stale - 1) * self.eval_every

    def record(self) -> dict:
        """What a checkpoint keeps (the same JSON as before this class existed)."""
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "stale": self.stale}

    def restored(self, record: dict) -> EarlyStopping:
        """This stopper at a checkpoint's `record`."""
        return dataclasses.replace(
            self,
            best_score=float(record["best_score"]),
            best_epoch=int(record["best_epoch"]),
            stale=int(record["stale"]),
        )
