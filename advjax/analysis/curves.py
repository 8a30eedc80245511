"""Curves over training from a run's per-epoch records (advjax.logs.read_metrics)."""

from __future__ import annotations

import numpy as np


def curve(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs int64 [T], values float64 [T]) of the records that hold `key`
    (validations hold the metrics, every epoch the loss); null values are NaN."""
    points = [(r["epoch"], r[key]) for r in records if key in r]
    epochs = np.array([e for e, _ in points], np.int64)
    values = np.array([np.nan if v is None else v for _, v in points], np.float64)
    return epochs, values


def adversarial_epochs(records: list[dict]) -> list[int]:
    """The (1-based) epochs whose CF pass followed an adversarial pass: the records
    holding the pass's statistics ("adv_loss", ...)."""
    return [r["epoch"] for r in records if any(k.startswith("adv_") for k in r)]


def mean_over_seeds(
    curves: list[tuple[np.ndarray, np.ndarray]], *, min_share: float = 0.5
) -> dict[str, np.ndarray]:
    """The mean and standard error over seeds of one curve, epoch by epoch.

    Runs stop early at different epochs, so an epoch is kept while at least
    `min_share` of the seeds (and at least one) still have a value there; the number
    of seeds behind each point is returned with it.

    Args:
      curves: per seed, (epochs [T_s], values [T_s]) as `curve` gives them.
      min_share: least share of the seeds an epoch needs.

    Returns:
      {"epoch": int64 [E], "mean": [E], "se": [E] (std with ddof 1 over sqrt(n); NaN
      where n < 2), "n": int64 [E]}, epochs ascending.
    """
    if not curves:
        raise ValueError("mean_over_seeds needs at least one curve")
    by_epoch: dict[int, list[float]] = {}
    for epochs, values in curves:
        for epoch, value in zip(epochs.tolist(), values.tolist(), strict=True):
            if not np.isnan(value):
                by_epoch.setdefault(epoch, []).append(value)
    need = max(1, int(np.ceil(min_share * len(curves))))
    kept = sorted(e for e, v in by_epoch.items() if len(v) >= need)
    n = np.array([len(by_epoch[e]) for e in kept], np.int64)
    mean = np.array([np.mean(by_epoch[e]) for e in kept], np.float64)
    se = np.array(
        [np.std(by_epoch[e], ddof=1) / np.sqrt(len(by_epoch[e])) if len(by_epoch[e]) > 1
         else np.nan for e in kept],
        np.float64,
    )  # fmt: skip
    return {"epoch": np.array(kept, np.int64), "mean": mean, "se": se, "n": n}
