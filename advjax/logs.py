"""Scalars of a run: JSON lines and TensorBoard event files in the workdir.

  metrics.jsonl   one JSON object per epoch: {"epoch", "step", "loss", "kl", ...}
  tb/             TensorBoard events (tensorboardX; `tensorboard --logdir WORKDIR/tb`);
                  tags spell "@" as "_" (recall@20 -> recall_20), TensorBoard's alphabet

A resumed run first drops what it is about to replay: JSON lines of later epochs are
cut, and TensorBoard is told to purge events at or after the resume step.
"""

from __future__ import annotations

import json
import math
import os

from tensorboardX import SummaryWriter

from advjax.errors import WorkdirError
from advjax.files import write_atomically


class ScalarLog:
    """Writes one record of scalars per epoch.

    Args:
      workdir: the run's directory.
      resume_epoch: the epoch the run restarts after (0 for a fresh run).
    """

    def __init__(self, workdir: str, resume_epoch: int = 0):
        self.path = os.path.join(workdir, "metrics.jsonl")
        kept = []
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        break  # a line cut by a kill: everything after it is replayed
                    if record.get("epoch", 0) <= resume_epoch and "final" not in record:
                        kept.append(line if line.endswith("\n") else line + "\n")
        write_atomically(self.path, "".join(kept))
        self._jsonl = open(self.path, "a")
        self._tb = SummaryWriter(
            os.path.join(workdir, "tb"), purge_step=resume_epoch + 1 if resume_epoch else None
        )

    def write(self, epoch: int, scalars: dict[str, float], *, final: bool = False) -> None:
        """Records the scalars of `epoch` (1-based); non-finite values are kept as null.

        `final` marks the closing report (test metrics at the best validation), which a
        resumed run writes again.
        """
        record = {"epoch": epoch, **({"final": True} if final else {})}
        record.update({k: (v if math.isfinite(v) else None) for k, v in scalars.items()})
        try:
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()
            for name, value in scalars.items():
                self._tb.add_scalar(name.replace("@", "_"), value, global_step=epoch)
            self._tb.flush()
        except OSError as err:
            raise WorkdirError(
                f"{os.path.dirname(self.path)}: cannot write scalars of epoch {epoch} "
                f"({err.strerror})"
            ) from None

    def close(self) -> None:
        self._jsonl.close()
        self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
    """The per-epoch records of a run's metrics.jsonl (the closing "final" record
    left out), in file order.

    Raises:
      WorkdirError: the file is missing or a line is not a JSON object with an epoch.
    """
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        raise WorkdirError(f"{path}: no such file (the run has not started)")
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                record = json.loads(line)
                epoch = record["epoch"]
            except (json.JSONDecodeError, KeyError, TypeError):
                raise WorkdirError(f"{path}:{number}: not a JSON object with an epoch") from None
            if not isinstance(epoch, int):
                raise WorkdirError(f"{path}:{number}: epoch {epoch!r} is not an integer")
            if not record.get("final"):
                records.append(record)
    return records
