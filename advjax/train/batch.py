"""Several runs in one compiled program: their states stacked on a leading run axis.

Runs that differ only in their seed trace the same epoch, so one program can train
them all: parameters, both optimiser states, counters and root keys carry a leading
axis of length R, and each epoch maps the single-run epoch (advjax/train/epochs.py)
over it. Runs may also differ in settings each carries outside the program's code
(HOST_SETTINGS: the seed and the learning rates, which its state holds; schedule,
budgets, patience, which the host applies) and in numeric settings that enter only the
arithmetic (TRACED_SETTINGS: temperatures, weights), which then travel into the program
as the epochs' `hyper` argument, arrays [R] (a grid search's points,
experiments/search.py). Two ways to map, `--run_batching`:

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

A traced setting is a program input where the run alone has it as a constant, which XLA
may fold (x / 0.75 into x * 1.3333334): runs differing in TRACED_SETTINGS agree with
the runs alone to float32 rounding per step under either mapping, not bit for bit.
Runs that share a setting get it as the constant. A learning rate is state in every run
(advjax.train.state.adam), alone or stacked, so runs differing in it stay bit-identical
to the runs alone under `map`.

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
# Settings each run carries outside the program's code: in its initial state (the seed;
# the learning rates, which its optimiser states hold) or on the host (the schedule,
# budgets, early stopping).
HOST_SETTINGS = (
    "seed", "lr", "lr_adv", "patience", "t_adv", "e_adv", "warm_up_epochs", "kl_radius",
    "adv_stop", "log_test",
)  # fmt: skip
# Numeric settings that enter only the arithmetic of the epochs (no shape, no branch):
# the epochs' `hyper` argument, read through config.TracedSettings.
TRACED_SETTINGS = (
    "tau", "l2_reg", "ccl_margin", "ccl_neg_weight", "bc_tau_bias",
    "adap_tau_beta", "cl_weight", "cl_tau", "sgl_drop_rate", "xsimgcl_eps",
    "ncl_proto_weight", "ncl_alpha",
)  # fmt: skip


def check_batchable(cfgs: Sequence[TrainConfig]) -> tuple[str, ...]:
    """The TRACED_SETTINGS in which the configurations differ.

    Raises:
      ConfigError: they differ in a setting that is in neither list (one that shapes
        or branches the compiled program, or the data).
    """
    first = config_dict(cfgs[0])
    differ = set()
    for cfg in cfgs[1:]:
        other = config_dict(cfg)
        differ |= {name for name in first if first[name] != other[name]}
    fixed = sorted(differ - set(HOST_SETTINGS) - set(TRACED_SETTINGS))
    if fixed:
        raise ConfigError(
            f"runs trained in one program cannot differ in {', '.join(fixed)} (they may "
            f"differ in {', '.join(HOST_SETTINGS + TRACED_SETTINGS)})"
        )
    return tuple(name for name in TRACED_SETTINGS if name in differ)


def traced_values(cfgs: Sequence[TrainConfig], names: Sequence[str]) -> dict[str, jax.Array]:
    """{setting: float32 [R]} of the runs' values of the traced settings `names`."""
    return {name: jnp.asarray([getattr(c, name) for c in cfgs], jnp.float32) for name in names}


def stack(trees: Sequence) -> object:
    """The pytrees `trees` (same structure) as one, each leaf stacked on a new axis 0."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def run_slice(tree, index: int):
    """Run `index` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda leaf: leaf[index], tree)


@dataclasses.dataclass(frozen=True)
class BatchedEpochs:
    """The epochs of R stacked runs, each with a mask of the runs it trains.

    cf_epoch(states, data, active, settings) -> (states, stats): active: bool [R];
      settings: {setting: [R]} traced values (traced_values; {} for none); stats: the
      epoch's means as arrays [R] (zeros for masked runs).
    adv_epoch(states, data, active, settings): the same for the adversarial pass.
    """

    cf_epoch: Callable
    adv_epoch: Callable


def _masked(epoch: Callable) -> Callable:
    """epoch(state, data, settings) -> (state, stats) as f(state, data, active, settings):
    unchanged state and zero stats where not active."""

    def masked(state: TrainState, data, active: jax.Array, settings: dict):
        shapes = {}

        def run(state):
            state, stats = epoch(state, data, settings)
            shapes["stats"] = jax.tree_util.tree_map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), stats
            )
            return state, stats

        def skip(state):
            # lax.cond traces `run` first, so the stats' shapes are known without
            # tracing the epoch again; eval_shape only if that order ever changes.
            if "stats" not in shapes:
                shapes["stats"] = jax.eval_shape(epoch, state, data, settings)[1]
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
            return jax.vmap(one, in_axes=(0, None, 0, 0))

        def loop(states: TrainState, data, active: jax.Array, settings: dict):
            return jax.lax.map(lambda xs: one(xs[0], data, *xs[1:]), (states, active, settings))

        return loop

    return BatchedEpochs(
        cf_epoch=jax.jit(mapped(fns.pure_cf_epoch), donate_argnums=0),
        adv_epoch=jax.jit(mapped(fns.pure_adv_epoch), donate_argnums=0),
    )
