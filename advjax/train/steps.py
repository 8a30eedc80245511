"""One compiled epoch: the CF pass (hardness frozen) and the adversarial pass (CF frozen).

Each pass is a single jitted function running lax.scan over its batches, sampling
positives and negatives on device. The dataset's arrays arrive as arguments (never
closed over: XLA would constant-fold the graph's scatters and compile for minutes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from advjax import losses
from advjax.data import SplitData
from advjax.data.graph import Graph, empty_graph, normalized_graph
from advjax.errors import ConfigError
from advjax.models import hardness_logits, lightgcn_embed, lightgcn_rows
from advjax.models.propagation import gram_pays_off, item_gram, resolve_method
from advjax.models.scores import l2_normalize, pair_scores
from advjax.sampling import (
    TrainPairs,
    bisection_steps,
    epoch_positives,
    make_train_pairs,
    sample_negatives,
)
from advjax.train.config import TrainConfig
from advjax.train.state import TrainState, make_optimizers

# Independent random streams folded into the root key.
_CF_STREAM, _ADV_STREAM = 0, 1


class TrainData(NamedTuple):
    """The device arrays a pass reads: training pairs, the propagation graph and, for
    small catalogues on the host path, the dense item-item operator (else [0, 0])."""

    pairs: TrainPairs
    graph: Graph
    gram: jax.Array


def make_train_data(data: SplitData, n_layers: int, propagation: str = "auto") -> TrainData:
    """Device arrays of a split's training pairs, with its graph when LightGCN needs it."""
    # MF never propagates; an empty graph keeps one TrainData type for every backbone.
    graph = normalized_graph(data.train, data.n_items) if n_layers else empty_graph()
    gram = np.zeros((0, 0), np.float32)
    if (
        n_layers >= 2
        and resolve_method(propagation) == "host_csr"
        and gram_pays_off(data.n_items, data.train.nnz)
    ):
        gram = item_gram(graph, data.train.n_users)
    return TrainData(
        make_train_pairs(data.train), Graph(*map(jnp.asarray, graph)), jnp.asarray(gram)
    )


def contrastive_loss(
    cfg: TrainConfig,
    user_vecs: jax.Array,
    item_table: jax.Array,
    cf_params: dict,
    adv_params: dict,
    users: jax.Array,
    pos: jax.Array,
    negs: jax.Array,
    key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Per-sample loss and hardness KL of one batch.

    Args:
      cfg: run settings (loss, tau, k_neg, hardness model and strategy).
      user_vecs: [B, d] unit-norm final embeddings of the batch's users.
      item_table: [I, d] unit-norm final item embeddings.
      cf_params: layer-0 CF tables (read by the "mlp" hardness model).
      adv_params: hardness model parameters.
      users: int [B]; pos: int [B]; negs: int [B, N].
      key: PRNG key of the batch; the "random" hardness strategy draws from it.

    Returns:
      (loss [B], kl [B]); kl = KL(uniform || hardness distribution), zero for InfoNCE.
    """
    pos_logits = pair_scores(user_vecs, item_table, pos[:, None])[:, 0] / cfg.tau
    neg_logits = pair_scores(user_vecs, item_table, negs) / cfg.tau
    if not cfg.uses_hardness:
        return losses.infonce(pos_logits, neg_logits), jnp.zeros_like(pos_logits)
    hard = hardness_for(cfg, adv_params, users, negs, cf_params, key)
    loss = losses.adv_infonce(pos_logits, neg_logits, hard, k_neg=cfg.k_neg)
    return loss, losses.hardness_kl(hard)


def hardness_for(cfg: TrainConfig, adv_params, users, negs, cf_params, key) -> jax.Array:
    """[B, N] hardness logits under cfg.hardness_strategy (Fig. 2b/4c variants)."""
    if cfg.hardness_strategy == "none":
        return jnp.zeros(negs.shape, jnp.float32)
    if cfg.hardness_strategy == "random":
        if key is None:
            raise ValueError("the random hardness strategy needs a key")
        return jax.random.uniform(key, negs.shape, jnp.float32)
    return hardness_logits(adv_params, cfg.hardness, users, negs, cf_params)


def l2_penalty(cfg: TrainConfig, cf_params: dict, users, pos, negs) -> jax.Array:
    """l2_reg * (|e_u|^2 + |e_i|^2 + sum_j |e_j|^2) / 2 / B on layer-0 rows (SPEC §2)."""
    # Item norms are taken over the table and then picked: gathering [B, N, d] rows
    # would cost a large scatter-add in the backward pass.
    item_sq = jnp.sum(cf_params["item"] ** 2, axis=-1)
    sq = jnp.sum(cf_params["user"][users] ** 2) + jnp.sum(item_sq[pos]) + jnp.sum(item_sq[negs])
    return cfg.l2_reg * sq / 2 / users.shape[0]


@dataclasses.dataclass(frozen=True)
class EpochFns:
    """The jitted passes of one run; each returns (state, {"loss", "kl"} epoch means).

    cf_epoch(state, data) updates the CF model over one epoch (hardness frozen).
    adv_epoch(state, data) updates the hardness model over one epoch to maximise the
    loss (CF model frozen; its embeddings are computed once for the whole pass).
    embed(cf_params, graph) -> (user_emb, item_emb) final embeddings for evaluation.
    """

    cf_epoch: Callable
    adv_epoch: Callable
    embed: Callable
    n_batches: int


def make_epoch_fns(
    cfg: TrainConfig,
    *,
    n_items: int,
    n_samples: int,
    max_degree: int,
    trace_hook: Callable[[Callable], Callable] = lambda fn: fn,
) -> EpochFns:
    """Builds the jitted passes for a dataset of the given sizes.

    Args:
      cfg: run settings.
      n_items: number of items.
      n_samples: |O+|, training pairs, = samples per epoch.
      max_degree: the largest number of training items of one user.
      trace_hook: wraps each pass before jit; tests pass chex.assert_max_traces.
    """
    n_batches = n_samples // cfg.batch_size
    if n_batches == 0:
        raise ConfigError(
            f"batch_size {cfg.batch_size} exceeds the {n_samples} training pairs: no complete batch"
        )
    steps = bisection_steps(max_degree)
    cf_tx, adv_tx = make_optimizers(cfg)

    def embed(cf_params, graph):
        return lightgcn_embed(cf_params, graph, n_layers=cfg.n_layers, method=cfg.propagation)

    def batches(epoch_key, pairs):
        return epoch_positives(
            jax.random.fold_in(epoch_key, 0),
            pairs,
            n_samples=n_samples,
            n_batches=n_batches,
            batch_size=cfg.batch_size,
        )

    def negatives(epoch_key, pairs, users, index):
        key = jax.random.fold_in(jax.random.fold_in(epoch_key, 1), index)
        return sample_negatives(key, pairs, users, n_neg=cfg.n_neg, n_items=n_items, steps=steps)

    def cf_epoch(state: TrainState, data: TrainData):
        epoch_key = jax.random.fold_in(jax.random.fold_in(state.key, _CF_STREAM), state.epoch)
        users_all, pos_all = batches(epoch_key, data.pairs)

        def loss_fn(cf_params, users, pos, negs, key):
            user_rows, item_emb = lightgcn_rows(
                cf_params, data.graph, users,
                n_layers=cfg.n_layers, method=cfg.propagation, gram=data.gram,
            )  # fmt: skip
            per, kl = contrastive_loss(
                cfg, l2_normalize(user_rows), l2_normalize(item_emb), cf_params,
                state.adv_params, users, pos, negs, key,
            )  # fmt: skip
            total = jnp.mean(per) + l2_penalty(cfg, cf_params, users, pos, negs)
            return total, jnp.mean(kl)

        def body(carry, xs):
            params, opt, step = carry
            index, users, pos = xs
            negs = negatives(epoch_key, data.pairs, users, index)
            key = jax.random.fold_in(jax.random.fold_in(epoch_key, 2), index)
            (loss, kl), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, users, pos, negs, key
            )
            updates, opt = cf_tx.update(grads, opt, params)
            return (optax.apply_updates(params, updates), opt, step + 1), (loss, kl)

        xs = (jnp.arange(n_batches), users_all, pos_all)
        (params, opt, step), (loss, kl) = jax.lax.scan(
            body, (state.cf_params, state.cf_opt, state.step), xs
        )
        state = state.replace(cf_params=params, cf_opt=opt, step=step, epoch=state.epoch + 1)
        return state, {"loss": jnp.mean(loss), "kl": jnp.mean(kl)}

    def adv_epoch(state: TrainState, data: TrainData):
        epoch_key = jax.random.fold_in(jax.random.fold_in(state.key, _ADV_STREAM), state.adv_epochs)
        users_all, pos_all = batches(epoch_key, data.pairs)
        cf_params = jax.lax.stop_gradient(state.cf_params)
        user_emb, item_emb = embed(cf_params, data.graph)
        user_table, item_table = l2_normalize(user_emb), l2_normalize(item_emb)

        def loss_fn(adv_params, users, pos, negs):
            per, kl = contrastive_loss(
                cfg, user_table[users], item_table, cf_params, adv_params, users, pos, negs
            )
            return jnp.mean(per), jnp.mean(kl)

        def body(carry, xs):
            params, opt = carry
            index, users, pos = xs
            negs = negatives(epoch_key, data.pairs, users, index)
            (loss, kl), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, users, pos, negs)
            # The adversary maximises the loss: descend on its negation ("reverse":
            # it minimises the loss, AdvInfoNCE-Reverse).
            if cfg.hardness_strategy == "adversarial":
                grads = jax.tree_util.tree_map(jnp.negative, grads)
            updates, opt = adv_tx.update(grads, opt, params)
            return (optax.apply_updates(params, updates), opt), (loss, kl)

        xs = (jnp.arange(n_batches), users_all, pos_all)
        (params, opt), (loss, kl) = jax.lax.scan(body, (state.adv_params, state.adv_opt), xs)
        state = state.replace(adv_params=params, adv_opt=opt, adv_epochs=state.adv_epochs + 1)
        return state, {"loss": jnp.mean(loss), "kl": jnp.mean(kl)}

    return EpochFns(
        cf_epoch=jax.jit(trace_hook(cf_epoch), donate_argnums=0),
        adv_epoch=jax.jit(trace_hook(adv_epoch), donate_argnums=0),
        embed=jax.jit(embed),
        n_batches=n_batches,
    )
