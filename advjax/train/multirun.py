"""Several runs in one compiled program, a wrapper around the single run's epochs: their
states stacked on a leading run axis (--seeds, a search's batched points).

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
import functools
import time
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp

from advjax.data import SplitData
from advjax.errors import ConfigError
from advjax.train import events
from advjax.train.config import TrainConfig, config_dict
from advjax.train.data import load_split
from advjax.train.epochs import EpochFns
from advjax.train.fit import fit_events
from advjax.train.run_diagnostics import make_diagnose
from advjax.train.setup import RunSetup, diagnostics_sample, setup_run
from advjax.train.sinks import ProgressLines, print_flushed, with_files
from advjax.train.state import TrainState, init_state
from advjax.train.track import (
    Track,
    adversarial_pass_done,
    cf_epoch_done,
    end_epoch,
    finish,
    open_run,
    wants_adversarial_pass,
)

RUN_BATCHING = ("map", "vmap")
# Settings each run carries outside the program's code: in its initial state (the seed,
# UltraGCN's initial scale; the learning rates, which its optimiser states hold) or on
# the host (the schedule, budgets, early stopping).
HOST_SETTINGS = (
    "seed", "lr", "lr_adv", "patience", "t_adv", "e_adv", "warm_up_epochs", "kl_radius",
    "adv_stop", "log_test", "ultragcn_init_std",
)  # fmt: skip
# Numeric settings that enter only the arithmetic of the epochs (no shape, no branch):
# the epochs' `hyper` argument, read through config.TracedSettings.
TRACED_SETTINGS = (
    "tau", "l2_reg", "ccl_margin", "ccl_neg_weight", "bc_tau_bias",
    "adap_tau_beta", "cl_weight", "cl_tau", "sgl_drop_rate", "xsimgcl_eps",
    "ncl_proto_weight", "ncl_alpha", "ultragcn_w1", "ultragcn_w2", "ultragcn_w3",
    "ultragcn_w4", "ultragcn_negative_weight", "ultragcn_lambda", "ultragcn_gamma",
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


def setup_runs(
    cfgs: list[TrainConfig],
    data: SplitData | None = None,
    *,
    trace_hook: Callable[[Callable], Callable] = lambda fn: fn,
) -> list[RunSetup]:
    """setup_run for runs trained in one program (this module): one split,
    train data, set of epochs and evaluators, shared; each run its own configuration,
    state and diagnostics sample (and its own diagnostics where its numeric settings
    differ from the first run's), as setup_run(cfg) would give them."""
    base = setup_run(cfgs[0], data, trace_hook=trace_hook)
    runs = [base]
    for cfg in cfgs[1:]:
        state = init_state(
            cfg, n_users=base.data.n_users, n_items=base.data.n_items,
            loss_data=base.train_data.loss_data,
            n_edges=int(base.train_data.graph.rows.shape[0]),
        )  # fmt: skip
        sample = diagnostics_sample(cfg, base.data, base.train_data, state)
        diagnose = base.diagnose if check_batchable([base.cfg, cfg]) == () else make_diagnose(cfg)
        runs.append(
            dataclasses.replace(base, cfg=cfg, state=state, sample=sample, diagnose=diagnose)
        )
    return runs


class StackedRuns:
    """Runs stacked on a leading axis, trained by one program: their state, the batched
    epochs and the traced settings they differ in (the epochs' `hyper` argument)."""

    def __init__(self, runs: list[RunSetup], states: list, batching: str, traced: tuple):
        self.hyper = traced_values([run.cfg for run in runs], traced)
        self.epochs = make_batched_epochs(runs[0].fns, batching)
        self.data, self.state = runs[0].train_data, stack(states)

    def state_of(self, index: int):
        return run_slice(self.state, index)

    def _epoch(self, epoch, mask: list[bool]) -> list[dict | None]:
        self.state, stats = epoch(self.state, self.data, jnp.asarray(mask), self.hyper)
        stats = jax.device_get(stats)
        return [
            {name: float(values[i]) for name, values in stats.items()} if on else None
            for i, on in enumerate(mask)
        ]

    def adv_epoch(self, wanted: list[bool]) -> list[dict | None]:
        return self._epoch(self.epochs.adv_epoch, wanted)

    def cf_epoch(self, active: list[bool]) -> list[dict | None]:
        return self._epoch(self.epochs.cf_epoch, active)


def _tagged(index: int, stream: Iterator) -> Iterator[tuple[int, events.Event]]:
    """(index, event) for each event of a generator; returns the generator's value."""
    while True:
        try:
            event = next(stream)
        except StopIteration as stop:
            return stop.value
        yield index, event


def train_runs_events(
    cfgs: Sequence[TrainConfig],
    workdirs: Sequence[str | None],
    *,
    data: SplitData | None = None,
    restart: bool = False,
    max_to_keep: int = 3,
    batching: str = "map",
) -> Iterator[tuple[int, events.Event]]:
    """Trains runs in one program with early stopping on valid Recall@20, yielding
    (run index, event): each run's events are those loop.train_events gives it alone,
    in that order; runs interleave by epoch, and a run's Report follows its early stop
    while the others go on.

    Args:
      cfgs: the runs' settings; they may differ only in what check_batchable allows.
      workdirs: each run's workdir (or None), as train_and_evaluate's.
      data, restart, max_to_keep: as train_and_evaluate.
      batching: how the program maps the runs: "map" or "vmap" (module docstring).
    """
    start = time.perf_counter()
    if len(cfgs) != len(workdirs):
        raise ValueError(f"{len(cfgs)} configurations but {len(workdirs)} workdirs")
    traced = check_batchable(cfgs)  # before anything is loaded or compiled
    if any(cfg.fitted_spec is not None for cfg in cfgs):
        yield from _fit_one_by_one(cfgs, workdirs, data, restart)
        return
    runs = setup_runs(list(cfgs), data)
    tracks: list[Track] = []
    states = []
    for index, (run, workdir) in enumerate(zip(runs, workdirs, strict=True)):
        track, state = yield from _tagged(
            index, open_run(run, workdir, restart=restart, max_to_keep=max_to_keep)
        )
        tracks.append(track)
        states.append(state)
    stacked = StackedRuns(runs, states, batching, traced)
    del states  # the stack owns (and donates) them now
    n_runs = len(runs)
    for epoch in range(min(t.epoch for t in tracks) + 1, runs[0].cfg.max_epochs + 1):
        if all(t.done for t in tracks):
            break
        live = [not t.done and t.epoch == epoch - 1 for t in tracks]
        if not any(live):
            continue  # resumed runs behind the others catch up first
        tick = time.perf_counter()
        wanted = [
            on and wants_adversarial_pass(t, epoch, functools.partial(stacked.state_of, i))
            for i, (on, t) in enumerate(zip(live, tracks, strict=True))
        ]
        if any(wanted):
            adv_stats = stacked.adv_epoch(wanted)
            for i in (i for i, on in enumerate(wanted) if on):
                yield from _tagged(i, adversarial_pass_done(tracks[i], epoch, adv_stats[i]))
        stats = stacked.cf_epoch(live)
        seconds = time.perf_counter() - tick
        for i in (i for i, on in enumerate(live) if on):
            yield from _tagged(i, cf_epoch_done(tracks[i], epoch, stats[i], seconds, sum(live)))
        for i in (i for i, on in enumerate(live) if on):
            state = functools.partial(stacked.state_of, i)
            yield from _tagged(i, end_epoch(tracks[i], state, epoch, tick, start, n_runs))
    for i, t in enumerate(tracks):
        if not t.reported:
            yield from _tagged(
                i, finish(t, stacked.state_of(i), time.perf_counter() - start, n_runs)
            )


def _fit_one_by_one(cfgs, workdirs, data, restart) -> Iterator[tuple[int, events.Event]]:
    """Fitted models' runs (advjax/train/fit.py) one after another on one loaded split:
    a solver's sweep is already one program over all rows, and fits take seconds."""
    data = data if data is not None else load_split(cfgs[0])
    for index, (cfg, workdir) in enumerate(zip(cfgs, workdirs, strict=True)):
        yield from _tagged(index, fit_events(cfg, workdir, data=data, restart=restart))


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
    this module lets them vary).

    Args:
      cfgs, workdirs: each run's settings and workdir (None writes nothing).
      sinks: per run, the callables receiving its events; None: a sweep's progress
        lines (validations, early stops) to `log`, each prefixed with its seed
        ("seed 2: ").
      batching: "map" (bit-identical to the runs alone) or "vmap" (this module).
      data, log, restart, max_to_keep: as train_and_evaluate.

    Returns:
      Each run's results.json content, in the order of cfgs.
    """
    if sinks is None:
        sinks = [
            [ProgressLines(log, prefix=f"seed {cfg.seed}: ", every_epoch=False)] for cfg in cfgs
        ]
    per_run = [
        with_files(workdir, list(shown), log)
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
