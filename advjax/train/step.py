"""One training step of each kind, as top-level pure functions of (state, batch).

`cf_step` updates the CF model on one batch (the adversary frozen); `adversary_step`
updates the adversary on one batch (the CF model frozen) in the direction its loss
spec declares. The epochs (advjax/train/epochs.py) scan them over an epoch's batches.
Neither branches on the loss's name: what is loss-specific comes from its spec
(advjax.losses.spec), which `cfg.loss_spec` names.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from advjax.augmentations.spec import AugmentInputs
from advjax.losses.spec import LossInputs
from advjax.scores import l2_normalize, pair_scores
from advjax.train import streams
from advjax.train.config import TrainConfig
from advjax.train.data import TrainData
from advjax.train.state import TrainState, adam
from advjax.train.streams import fold


class Batch(NamedTuple):
    """One batch of B positives with N negatives each.

    Attributes:
      users: int32 [B]; pos: int32 [B]; negs: int32 [B, N].
      key: PRNG key of the batch (drawn from by losses that sample, e.g. InfoNCE-Rand).
    """

    users: jax.Array
    pos: jax.Array
    negs: jax.Array
    key: jax.Array | None = None


def l2_penalty(cfg: TrainConfig, cf_params: dict, batch: Batch) -> jax.Array:
    """l2_reg * (|e_u|^2 + |e_i|^2 + sum_j |e_j|^2) / 2 / B on layer-0 rows (SPEC §2)."""
    # Item norms are taken over the table and then picked: gathering [B, N, d] rows
    # would cost a large scatter-add in the backward pass.
    item_sq = jnp.sum(cf_params["item"] ** 2, axis=-1)
    sq = (
        jnp.sum(cf_params["user"][batch.users] ** 2)
        + jnp.sum(item_sq[batch.pos])
        + jnp.sum(item_sq[batch.negs])
    )
    return cfg.l2_reg * sq / 2 / batch.users.shape[0]


def loss_inputs(
    state: TrainState,
    data: TrainData,
    batch: Batch,
    user_vecs: jax.Array,
    item_table: jax.Array,
    cf_params: dict,
    adv_params: dict,
) -> LossInputs:
    """What the loss reads for one batch, given unit-norm final embeddings; the loss's
    value is then `cfg.loss_spec.value(cfg, inputs)` (a LossValue: per_sample [B],
    diagnostics, batch_stats).

    Args:
      state, data, batch: the run's state, train data and the batch.
      user_vecs: [B, d] unit-norm final embeddings of batch.users.
      item_table: [I, d] unit-norm final item embeddings.
      cf_params, adv_params: the parameters to read (the ones being differentiated).
    """
    return LossInputs(
        pos_cos=pair_scores(user_vecs, item_table, batch.pos[:, None])[:, 0],
        neg_cos=pair_scores(user_vecs, item_table, batch.negs),
        user_vecs=user_vecs,
        item_table=item_table,
        users=batch.users,
        pos=batch.pos,
        negs=batch.negs,
        cf_params=cf_params,
        adv_params=adv_params,
        loss_state=state.loss_state,
        loss_data=data.loss_data,
        epoch=state.epoch,
        key=batch.key,
    )


def _resting_zeroed(tree: dict, trains: dict) -> dict:
    """Zeroes the parameter groups that do not train this epoch."""
    return {
        name: jnp.where(trains[name], value, jnp.zeros_like(value)) for name, value in tree.items()
    }


def cf_step(
    cfg: TrainConfig, state: TrainState, data: TrainData, batch: Batch
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One Adam step of the CF model on `batch` (at the learning rate its optimiser state
    holds); the adversary stays as it is.

    Minimises mean(loss) + l2_penalty (+ the backbone's extra_loss, + its sample's term
    with the loss read on the sampled rows, + the augmentation's contrastive term) over
    the CF parameter groups the loss's spec
    trains in this epoch (`trains`; a resting group gets neither gradients nor Adam
    updates), and adds the batch to the loss's per-run state (`accumulate`).

    Returns:
      (state with step + 1, {"loss": [] the objective, and each diagnostic's batch mean}).
    """
    spec = cfg.loss_spec

    augment, backbone = cfg.augment_spec, cfg.backbone_spec

    def objective(cf_params):
        extra, extra_stats = None, {}
        if augment is None:
            user_rows, item_emb = backbone.step_rows(
                cfg, cf_params, data.graph, batch.users, data.propagation
            )
            if backbone.sample is not None:
                key = fold(batch.key, streams.BACKBONE_BATCH)
                user_rows, item_emb, extra, extra_stats = backbone.sample(
                    cfg, cf_params, user_rows, item_emb, key
                )
        else:
            out = augment.forward(cfg, augment_inputs(cfg, state, data, batch, cf_params))
            user_rows, item_emb = out.user_rows, out.item_emb
            extra, extra_stats = out.loss, out.diagnostics
        inputs = loss_inputs(
            state, data, batch, l2_normalize(user_rows), l2_normalize(item_emb), cf_params,
            state.adv_params,
        )  # fmt: skip
        value = spec.value(cfg, inputs)
        total = jnp.mean(value.per_sample) + l2_penalty(cfg, cf_params, batch)
        if backbone.extra_loss is not None:
            total = total + backbone.extra_loss(
                cfg, cf_params, batch.users, batch.pos, batch.negs, data.backbone_data
            )
        if extra is not None:
            total = total + extra
        return total, (value, extra_stats)

    (total, (value, extra_stats)), grads = jax.value_and_grad(objective, has_aux=True)(
        state.cf_params
    )
    trains = spec.trains(cfg, state.epoch) if spec.trains else None
    if trains is not None:
        grads = _resting_zeroed(grads, trains)
    updates, cf_opt = adam().update(grads, state.cf_opt, state.cf_params)
    if trains is not None:
        updates = _resting_zeroed(updates, trains)
    loss_state = state.loss_state
    if spec.accumulate:
        loss_state = spec.accumulate(loss_state, batch.users, value.batch_stats)
    state = state.replace(
        cf_params=optax.apply_updates(state.cf_params, updates),
        cf_opt=cf_opt,
        step=state.step + 1,
        loss_state=loss_state,
    )
    stats = {k: jnp.mean(v) for k, v in {**value.diagnostics, **extra_stats}.items()}
    return state, {"loss": total, **stats}


def augment_inputs(
    cfg: TrainConfig, state: TrainState, data: TrainData, batch: Batch, cf_params: dict
) -> AugmentInputs:
    """What the augmentation's `forward` reads for one batch (advjax/augmentations)."""
    return AugmentInputs(
        cf_params=cf_params,
        graph=data.graph,
        method=data.propagation,
        depth=cfg.backbone_spec.depth(cfg),
        users=batch.users,
        pos=batch.pos,
        key=fold(batch.key, streams.AUGMENT_BATCH),
        state=state.aug_state,
        epoch=state.epoch,
        data=data.aug_data,
    )


class FrozenTables(NamedTuple):
    """The CF model as an adversarial pass sees it: computed once per pass.

    Attributes:
      cf_params: layer-0 CF parameters, gradient stopped.
      user_table: [U, d] unit-norm final user embeddings.
      item_table: [I, d] unit-norm final item embeddings.
    """

    cf_params: dict
    user_table: jax.Array
    item_table: jax.Array


def adversary_step(
    cfg: TrainConfig, state: TrainState, data: TrainData, batch: Batch, frozen: FrozenTables
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One Adam step of the adversary on `batch`; the CF model stays as it is.

    The adversary ascends the loss when its spec says so (AdvInfoNCE's adversary
    maximises it) and descends it otherwise (AdvInfoNCE-Reverse): the one sign flip.

    Returns:
      (state, {"loss": [] the batch's mean loss, and each diagnostic's batch mean}).
    """
    adversary = cfg.loss_spec.adversary(cfg)

    def objective(adv_params):
        inputs = loss_inputs(
            state, data, batch, frozen.user_table[batch.users], frozen.item_table,
            frozen.cf_params, adv_params,
        )  # fmt: skip
        value = cfg.loss_spec.value(cfg, inputs)
        return jnp.mean(value.per_sample), value

    (loss, value), grads = jax.value_and_grad(objective, has_aux=True)(state.adv_params)
    if adversary.ascent:  # descend on the negated loss
        grads = jax.tree_util.tree_map(jnp.negative, grads)
    updates, adv_opt = adam().update(grads, state.adv_opt, state.adv_params)
    state = state.replace(
        adv_params=optax.apply_updates(state.adv_params, updates), adv_opt=adv_opt
    )
    return state, {"loss": loss, **{k: jnp.mean(v) for k, v in value.diagnostics.items()}}
