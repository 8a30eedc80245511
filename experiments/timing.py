"""Seconds per epoch of a configuration's training passes, measured in this process.

Each pass is compiled first (``.lower().compile()``, timed on its own), then run for
warm-up epochs, then for timed epochs, the adversarial pass (where the configuration
trains an adversary) before the CF pass of each epoch; the medians of the timed epochs
are the per-epoch figures. The cost figure (experiments/figures/cost.py) reports them;
benchmarks.record builds its records around them (evaluation, memory, the floor).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import jax
import numpy as np

from advjax.data import SplitData
from advjax.errors import check_finite
from advjax.train import TrainConfig, setup_run
from advjax.train.setup import RunSetup
from advjax.train.state import TrainState


def timed(fn: Callable, *args):
    """(fn(*args), the seconds until its result is ready)."""
    tick = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    return out, time.perf_counter() - tick


@dataclasses.dataclass(frozen=True)
class EpochTimes:
    """The timed epochs of one configuration, and the setup and state they leave."""

    run: RunSetup
    state: TrainState  # after the last epoch
    full_batches: int  # batches of a whole epoch; a capped one runs n_batches
    n_edges: int  # entries of the normalised graph
    propagation: str  # LightGCN's propagation path; "-" for MF
    compile_s: float  # both passes
    cf_times: list[float]
    adv_times: list[float]  # empty without an adversary
    warmup_epochs: int
    timed_epochs: int

    @property
    def n_batches(self) -> int:
        """Batches of each timed epoch."""
        return self.run.fns.n_batches

    @property
    def epoch_s(self) -> float:
        """Median seconds of a timed CF epoch."""
        return float(np.median(self.cf_times))

    @property
    def adv_epoch_s(self) -> float | None:
        """Median seconds of a timed adversarial epoch; None without an adversary."""
        return float(np.median(self.adv_times)) if self.adv_times else None


def time_epochs(
    data: SplitData,
    cfg: TrainConfig,
    *,
    label: str,
    warmup_epochs: int = 1,
    timed_epochs: int = 2,
    max_batches: int = 0,
    log: Callable[[str], None] = print,
) -> EpochTimes:
    """Sets up `cfg` on `data`, compiles its passes, and times their epochs.

    Args:
      data: the loaded split.
      cfg: the configuration timed; its batch size, N, tau, layers and loss are used.
      label: the configuration's name in the first progress line.
      warmup_epochs: untimed epochs of each pass after compilation.
      timed_epochs: timed epochs of each pass.
      max_batches: cap on batches per epoch (0 = whole epochs).
      log: progress lines: the setup, then one per epoch.

    Returns:
      The epochs' times, the setup and the state after the last epoch.
    """
    full_batches = data.train.nnz // cfg.batch_size
    # A capped epoch samples n_batches * batch_size slots; the per-step work is the same.
    run = setup_run(cfg, data, max_batches=max_batches)
    n_edges = int(run.train_data.graph.rows.shape[0])
    method = run.train_data.propagation if cfg.backbone_spec.prepare_graph else "-"
    log(
        f"{label}: {data.n_users} users, {data.n_items} items, "
        f"{data.train.nnz} pairs, {n_edges} edges; batch {cfg.batch_size}, N {cfg.n_neg}, "
        f"tau {cfg.tau}; {run.fns.n_batches} of {full_batches} batches/epoch; "
        f"propagation {method}"
    )
    cf_epoch, adv_epoch, compile_s = _compile_passes(run)
    state, cf_times, adv_times = _run_epochs(
        run, cf_epoch, adv_epoch, warmup_epochs, timed_epochs, log
    )
    return EpochTimes(
        run, state, full_batches, n_edges, method, compile_s, cf_times, adv_times,
        warmup_epochs, timed_epochs,
    )  # fmt: skip


def _compile_passes(run: RunSetup) -> tuple[Callable, Callable | None, float]:
    """(the compiled CF epoch, the compiled adversarial epoch or None, the seconds both
    took to compile)."""
    tick = time.perf_counter()
    cf_epoch = run.fns.cf_epoch.lower(run.state, run.train_data).compile()
    compile_s = time.perf_counter() - tick
    adv_epoch = None
    if run.cfg.trains_adversary:
        tick = time.perf_counter()
        adv_epoch = run.fns.adv_epoch.lower(run.state, run.train_data).compile()
        compile_s += time.perf_counter() - tick
    return cf_epoch, adv_epoch, compile_s


def _run_epochs(
    run: RunSetup,
    cf_epoch: Callable,
    adv_epoch: Callable | None,
    warmup_epochs: int,
    timed_epochs: int,
    log: Callable[[str], None],
) -> tuple[TrainState, list[float], list[float]]:
    """(the state after the last epoch, the timed CF epochs' seconds, the timed
    adversarial epochs' seconds); a non-finite loss stops it (check_finite)."""
    state, train_data = run.state, run.train_data
    cf_times, adv_times = [], []
    for epoch in range(warmup_epochs + timed_epochs):
        is_timed = epoch >= warmup_epochs
        line = f"  epoch {epoch} ({'timed' if is_timed else 'warm-up'}):"
        if adv_epoch is not None:
            (state, stats), seconds = timed(adv_epoch, state, train_data)
            check_finite(stats, f"in adversarial epoch {epoch}")
            adv_times += [seconds] if is_timed else []
            line += f" adv {seconds:.3f}s"
        (state, stats), seconds = timed(cf_epoch, state, train_data)
        check_finite(stats, f"in CF epoch {epoch}")
        cf_times += [seconds] if is_timed else []
        log(f"{line} cf {seconds:.3f}s")
    return state, cf_times, adv_times
