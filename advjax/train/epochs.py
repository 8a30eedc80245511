"""One compiled epoch of each kind: lax.scan of a step (advjax/train/step.py) over batches.

Each epoch samples its positives and every batch's negatives on device, from keys
folded out of the run's root key and counters (advjax/train/streams.py), so a
state restored at an epoch boundary replays exactly. The dataset's arrays arrive as
arguments (never closed over: XLA would constant-fold the graph's scatters and compile
for minutes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from advjax.augmentations.spec import EpochInputs
from advjax.errors import ConfigError
from advjax.losses.spec import EpochView
from advjax.models.trained import TrainedModel, trained_model
from advjax.sampling import bisection_steps, epoch_positives, sample_negatives
from advjax.scores import l2_normalize
from advjax.train import streams
from advjax.train.config import TrainConfig, traced
from advjax.train.data import TrainData
from advjax.train.state import TrainState
from advjax.train.step import Batch, FrozenTables, adversary_step, cf_step
from advjax.train.streams import fold


def negatives_key(cfg: TrainConfig, root_key: jax.Array, epoch_key: jax.Array, index):
    """The key of the negatives of batch `index`.

    "fresh": from the epoch's key, so every epoch and adversarial pass draws anew.
    "frozen": from the root key alone, so batch position `index` reuses one key for
    the whole run (the paper's public code restarts a fixed-seed sampler in each
    data-loader worker, which has this effect); a position's negatives then repeat
    whenever its user does.
    """
    base = epoch_key if cfg.negatives == "fresh" else fold(root_key, streams.FROZEN_NEGATIVES)
    return fold(base, streams.NEGATIVES, index)


@dataclasses.dataclass(frozen=True)
class EpochFns:
    """The jitted epochs of one run; each returns (state, {"loss", ...} epoch means).

    cf_epoch(state, data) updates the CF model over one epoch (the adversary frozen).
    adv_epoch(state, data) updates the adversary over one epoch (the CF model frozen;
    its embeddings are computed once for the whole pass).
    Both take an optional third argument `hyper`, {setting: traced value}: the numeric
    settings read from it instead of cfg (config.TracedSettings; advjax/train/multirun.py:
    runs differing in them in one program).
    model(cf_params, data) -> the TrainedModel at cf_params (advjax.models.trained: the
      backbone's representations and scoring), for evaluation and diagnostics.
    pure_cf_epoch, pure_adv_epoch: the same epochs before jit (trace_hook applied), for
      programs that train several runs at once (advjax/train/multirun.py).
    """

    cf_epoch: Callable
    adv_epoch: Callable
    model: Callable
    n_batches: int
    pure_cf_epoch: Callable
    pure_adv_epoch: Callable


def make_epoch_fns(
    cfg: TrainConfig,
    *,
    n_items: int,
    n_samples: int,
    max_degree: int,
    trace_hook: Callable[[Callable], Callable] = lambda fn: fn,
    constrain_batch: Callable[[jax.Array], jax.Array] = lambda x: x,
) -> EpochFns:
    """Builds the jitted epochs for a dataset of the given sizes.

    Args:
      cfg: run settings.
      n_items: number of items.
      n_samples: positives per epoch (|O+| for a whole epoch).
      max_degree: the largest number of training items of one user.
      trace_hook: wraps each epoch before jit; tests pass chex.assert_max_traces.
      constrain_batch: applied to each batch's users, positives and negatives; on a mesh
        it splits them over the `data` axis (advjax/sharding.py).
    """
    n_batches = n_samples // cfg.batch_size
    if n_batches == 0:
        raise ConfigError(
            f"batch_size {cfg.batch_size} exceeds the {n_samples} training pairs: no complete batch"
        )
    steps = bisection_steps(max_degree)
    spec = cfg.loss_spec

    backbone = cfg.backbone_spec

    def represent(cf_params, data: TrainData):
        return backbone.represent(cfg, cf_params, data.graph, data.propagation)

    def model(cf_params, data: TrainData) -> TrainedModel:
        return trained_model(backbone, cfg, cf_params, data.graph, data.propagation)

    def scan_batches(step, state: TrainState, data: TrainData, epoch_key, with_keys: bool):
        """Scans `step(state, batch)` over the epoch's batches drawn from `epoch_key`."""
        users_all, pos_all = epoch_positives(
            fold(epoch_key, streams.POSITIVES),
            data.pairs,
            n_samples=n_samples,
            n_batches=n_batches,
            batch_size=cfg.batch_size,
        )

        def body(state, xs):
            index, users, pos = xs
            users, pos = constrain_batch(users), constrain_batch(pos)
            neg_key = negatives_key(cfg, state.key, epoch_key, index)
            negs = sample_negatives(
                neg_key, data.pairs, users, n_neg=cfg.n_neg, n_items=n_items, steps=steps
            )
            negs = constrain_batch(negs)
            key = None
            if with_keys:
                key = fold(epoch_key, streams.BATCH_KEYS, index)
            return step(state, Batch(users, pos, negs, key))

        state, stats = jax.lax.scan(body, state, (jnp.arange(n_batches), users_all, pos_all))
        return state, {name: jnp.mean(values) for name, values in stats.items()}

    base_cfg = cfg

    def cf_epoch(state: TrainState, data: TrainData, hyper: dict | None = None):
        cfg = traced(base_cfg, hyper)
        epoch_key = fold(state.key, streams.CF_EPOCHS, state.epoch)
        if spec.epoch_start:
            view = EpochView(
                epoch=state.epoch,
                pairs=data.pairs,
                final_embeddings=lambda: represent(jax.lax.stop_gradient(state.cf_params), data),
            )
            state = state.replace(loss_state=spec.epoch_start(cfg, state.loss_state, view))
        augment = cfg.augment_spec
        if augment is not None and augment.epoch_start:
            view = EpochInputs(
                cf_params=jax.lax.stop_gradient(state.cf_params),
                graph=data.graph,
                method=data.propagation,
                depth=backbone.depth(cfg),
                key=fold(epoch_key, streams.AUGMENT_EPOCH),
                epoch=state.epoch,
                data=data.aug_data,
            )
            state = state.replace(aug_state=augment.epoch_start(cfg, state.aug_state, view))
        state, stats = scan_batches(
            lambda s, batch: cf_step(cfg, s, data, batch), state, data, epoch_key, True
        )
        return state.replace(epoch=state.epoch + 1), stats

    def adv_epoch(state: TrainState, data: TrainData, hyper: dict | None = None):
        cfg = traced(base_cfg, hyper)
        epoch_key = fold(state.key, streams.ADV_EPOCHS, state.adv_epochs)
        cf_params = jax.lax.stop_gradient(state.cf_params)
        user_emb, item_emb = represent(cf_params, data)
        frozen = FrozenTables(cf_params, l2_normalize(user_emb), l2_normalize(item_emb))
        state, stats = scan_batches(
            lambda s, batch: adversary_step(cfg, s, data, batch, frozen),
            state, data, epoch_key, False,
        )  # fmt: skip
        return state.replace(adv_epochs=state.adv_epochs + 1), stats

    cf_epoch, adv_epoch = trace_hook(cf_epoch), trace_hook(adv_epoch)
    return EpochFns(
        cf_epoch=jax.jit(cf_epoch, donate_argnums=0),
        adv_epoch=jax.jit(adv_epoch, donate_argnums=0),
        model=jax.jit(model),
        n_batches=n_batches,
        pure_cf_epoch=cf_epoch,
        pure_adv_epoch=adv_epoch,
    )
