"""Several runs in one compiled program: their states stacked on a leading run axis.

Runs that differ only in their seed trace the same epoch, so one program can train
them all: parameters, both optimiser states, counters and root keys carry a leading
axis of length R, and each epoch maps the single-run epoch (advjax/train/epochs.py)
over it. Two ways to map, `--run_batching`:

  map   jax.lax.map: the runs one after another inside the program. Each run's
        arithmetic is that of the run trained alone, so results are bit-identical to
        it (tested); what it saves is R - 1 compilations and the per-epoch dispatch,
        which dominate small data on a CPU.
  vmap  jax.vmap: the runs side by side in every kernel, for accelerators where a
        small step is launch-bound. XLA fuses and reorders batched arithmetic
        differently (Adam's bias-correction division becomes a product with its
        reciprocal; sums reduce in another order), so runs agree with the run trained
        alone to float32 rounding per step, and drift apart like any two float32
        trajectories over an early-stopped run (benchmarks/batch.py measures it).

A run that has stopped early, or has no adversarial pass scheduled this epoch, is
masked: under `map` its epoch is skipped (lax.cond), under `vmap` it is computed and
discarded (a batched cond becomes a select).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from advjax.errors import ConfigError
from advjax.train.config import TrainConfig, config_dict
from advjax.train.epochs import EpochFns
from advjax.train.state import TrainState

RUN_BATCHING = ("map", "vmap")
# Settings runs in one program may differ in: they shape nothing that is compiled.
BATCHABLE = ("seed",)


def check_batchable(cfgs: Sequence[TrainConfig]) -> None:
    """Raises ConfigError unless the configurations differ only in BATCHABLE settings."""
    first = config_dict(cfgs[0])
    for cfg in cfgs[1:]:
        other = config_dict(cfg)
        differ = sorted(k for k in first if first[k] != other[k] and k not in BATCHABLE)
        if differ:
            raise ConfigError(
                "runs trained in one program may differ only in "
                f"{', '.join(BATCHABLE)}; these differ in {', '.join(differ)}"
            )


def stack(trees: Sequence) -> object:
    """The pytrees `trees` (same structure) as one, each leaf stacked on a new axis 0."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def run_slice(tree, index: int):
    """Run `index` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


@dataclasses.dataclass(frozen=True)
class BatchedEpochs:
    """The epochs of R stacked runs, each with a mask of the runs it trains.

    cf_epoch(states, data, active) -> (states, stats): active: bool [R]; stats: the
      epoch's means as arrays [R] (zeros for masked runs).
    adv_epoch(states, data, active): the same for the adversarial pass.
    """

    cf_epoch: Callable
    adv_epoch: Callable


def _masked(epoch: Callable) -> Callable:
    """epoch(state, data) -> (state, stats) as f(state, data, active): unchanged state and
    zero stats where not active."""

    def masked(state: TrainState, data, active: jax.Array):
        shapes = {}

        def run(state):
            state, stats = epoch(state, data)
            shapes["stats"] = jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), stats
            )
            return state, stats

        def skip(state):
            # lax.cond traces `run` first, so the stats' shapes are known without
            # tracing the epoch again; eval_shape only if that order ever changes.
            if "stats" not in shapes:
                shapes["stats"] = jax.eval_shape(epoch, state, data)[1]
            zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["stats"])
            return state, zeros

        return jax.lax.cond(active, run, skip, state)

    return masked


def make_batched_epochs(fns: EpochFns, batching: str) -> BatchedEpochs:
    """Jitted epochs over stacked runs, mapped per `batching` ("map" or "vmap")."""
    if batching not in RUN_BATCHING:
        choices = ", ".join(RUN_BATCHING)
        raise ConfigError(f"--run_batching must be one of {choices}; got {batching!r}")

    def mapped(epoch: Callable) -> Callable:
        one = _masked(epoch)
        if batching == "vmap":
            return jax.vmap(one, in_axes=(0, None, 0))

        def loop(states: TrainState, data, active: jax.Array):
            return jax.lax.map(lambda xs: one(xs[0], data, xs[1]), (states, active))

        return loop

    return BatchedEpochs(
        cf_epoch=jax.jit(mapped(fns.pure_cf_epoch), donate_argnums=0),
        adv_epoch=jax.jit(mapped(fns.pure_adv_epoch), donate_argnums=0),
    )
