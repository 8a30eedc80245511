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
from advjax.data.popularity import popularity_levels
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
    """The device arrays a pass reads.

    Attributes:
      pairs: the training pairs.
      graph: the propagation graph (empty for MF).
      gram: the dense item-item operator for small catalogues on the host path, else
        [0, 0] (advjax.models.propagation.item_gram).
      user_level, item_level: int32 [U], [I] popularity levels (BC loss's branch).
    """

    pairs: TrainPairs
    graph: Graph
    gram: jax.Array
    user_level: jax.Array
    item_level: jax.Array


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
    user_level, item_level = popularity_levels(data.train, data.n_items)
    return TrainData(
        make_train_pairs(data.train),
        Graph(*map(jnp.asarray, graph)),
        jnp.asarray(gram),
        jnp.asarray(user_level),
        jnp.asarray(item_level),
    )


def pop_level_counts(train_data: TrainData) -> tuple[int, int]:
    """(user, item) popularity level counts: the BC branch's table sizes."""
    return int(train_data.user_level.max()) + 1, int(train_data.item_level.max()) + 1


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
    *,
    extras: LossExtras | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Per-sample loss of one batch under cfg.loss, with per-sample diagnostics.

    Args:
      cfg: run settings (loss and its hyperparameters, hardness model and strategy).
      user_vecs: [B, d] unit-norm final embeddings of the batch's users.
      item_table: [I, d] unit-norm final item embeddings.
      cf_params: layer-0 CF tables (read by the "mlp" hardness model and, for BC loss,
        holding the popularity branch).
      adv_params: hardness model parameters.
      users: int [B]; pos: int [B]; negs: int [B, N].
      key: PRNG key of the batch; the "random" hardness strategy draws from it.
      extras: what some losses read beyond the batch (LossExtras).

    Returns:
      (loss [B], aux): aux["kl"] [B] = KL(uniform || hardness distribution), zero
      without hardness; Adap-tau adds aux["user_loss"] [B], InfoNCE at temperature 1
      (no gradient), the statistic its next temperatures come from.
    """
    pos_cos = pair_scores(user_vecs, item_table, pos[:, None])[:, 0]
    neg_cos = pair_scores(user_vecs, item_table, negs)
    zeros = jnp.zeros_like(pos_cos)
    if cfg.loss == "infonce":
        return losses.infonce(pos_cos / cfg.tau, neg_cos / cfg.tau), {"kl": zeros}
    if cfg.loss == "bpr":
        return losses.bpr(pos_cos / cfg.tau, neg_cos / cfg.tau), {"kl": zeros}
    if cfg.loss == "ccl":
        loss = losses.ccl(pos_cos, neg_cos, margin=cfg.ccl_margin, neg_weight=cfg.ccl_neg_weight)
        return loss, {"kl": zeros}
    if cfg.loss == "bc_loss":
        return _bc_loss(cfg, cf_params, users, pos, negs, pos_cos, neg_cos, extras), {"kl": zeros}
    if cfg.loss == "adap_tau":
        tau_user = extras.tau_user[users]
        loss = losses.adap_tau_loss(pos_cos, neg_cos, tau_user)
        user_loss = jax.lax.stop_gradient(losses.infonce(pos_cos, neg_cos))
        return loss, {"kl": zeros, "user_loss": user_loss}
    hard = hardness_for(cfg, adv_params, users, negs, cf_params, key)
    loss = losses.adv_infonce(pos_cos / cfg.tau, neg_cos / cfg.tau, hard, k_neg=cfg.k_neg)
    return loss, {"kl": losses.hardness_kl(hard)}


class LossExtras(NamedTuple):
    """Inputs some losses read besides the batch.

    Attributes:
      user_level, item_level: int32 [U], [I] popularity levels (BC loss).
      pop_phase: bool []: BC loss trains only its popularity branch this epoch.
      tau_user: float32 [U] per-user temperatures of this epoch (Adap-tau).
    """

    user_level: jax.Array | None = None
    item_level: jax.Array | None = None
    pop_phase: jax.Array | None = None
    tau_user: jax.Array | None = None


def _bc_loss(cfg, cf_params, users, pos, negs, pos_cos, neg_cos, extras) -> jax.Array:
    """BC loss: the popularity branch's InfoNCE in its phase, the margin loss after."""
    raw_users = cf_params["pop_user"][extras.user_level[users]]
    raw_items = cf_params["pop_item"][extras.item_level]
    pop_users, pop_items = l2_normalize(raw_users), l2_normalize(raw_items)
    pos_bias = pair_scores(pop_users, pop_items, pos[:, None])[:, 0]
    neg_bias = pair_scores(pop_users, pop_items, negs)
    branch = losses.infonce(pos_bias / cfg.bc_tau_bias, neg_bias / cfg.bc_tau_bias)
    if cfg.bc_margin == "arccos":
        margin = losses.bias_margin(pos_bias)
    else:
        margin = 1.0 - jax.nn.sigmoid(pair_scores(raw_users, raw_items, pos[:, None])[:, 0])
    main = losses.bc_loss(pos_cos, neg_cos, margin, tau=cfg.tau)
    return jnp.where(extras.pop_phase, branch, main)


def hardness_for(cfg: TrainConfig, adv_params, users, negs, cf_params, key) -> jax.Array:
    """[B, N] hardness logits under cfg.hardness_strategy (Fig. 2b/4c variants)."""
    if cfg.hardness_strategy == "none":
        return jnp.zeros(negs.shape, jnp.float32)
    if cfg.hardness_strategy == "random":
        if key is None:
            raise ValueError("the random hardness strategy needs a key")
        return jax.random.uniform(key, negs.shape, jnp.float32)
    return hardness_logits(adv_params, cfg.hardness, users, negs, cf_params)


def _bc_phase_mask(tree: dict, pop_phase: jax.Array) -> dict:
    """Zeroes the group that does not train this epoch: the popularity branch
    ("pop_*") trains only in its phase, the CF tables only after it."""
    return {
        name: jnp.where(pop_phase == name.startswith("pop_"), value, jnp.zeros_like(value))
        for name, value in tree.items()
    }


def adap_tau_epoch_start(cfg: TrainConfig, state: TrainState, data: TrainData, embed, n_items):
    """Adap-tau's temperatures for the coming epoch; the loss sums restart from zero.

    tau_0 is --tau during the warm-up, then follows the embeddings
    (losses.adap_tau_0 over users above the 20% quantile of training degree, as the
    public code counts them); a non-positive tau_0 (positives not yet above the mean
    cosine) keeps --tau. Each user's tau_u comes from its mean InfoNCE at temperature 1
    over the previous epoch (losses.adap_tau_user); users without one get tau_0.
    """
    stats = state.loss_state
    pairs = data.pairs
    user_emb, item_emb = embed(jax.lax.stop_gradient(state.cf_params), data.graph)
    user_hat, item_hat = l2_normalize(user_emb), l2_normalize(item_emb)
    degree = jnp.diff(pairs.indptr)
    pair_user = jnp.searchsorted(pairs.indptr, jnp.arange(pairs.items.shape[0]), side="right") - 1
    threshold = jnp.quantile(degree[pairs.active_users].astype(jnp.float32), 0.2)
    counted = degree > threshold
    pos_cos = jnp.sum(user_hat[pair_user] * item_hat[pairs.items], axis=-1)
    user_mean = user_hat @ jnp.mean(item_hat, axis=0)
    tau_0 = losses.adap_tau_0(
        pos_cos, user_mean, n_items=n_items, pos_where=counted[pair_user], user_where=counted
    )
    fixed = (state.epoch < cfg.adap_tau_warm_up) | ~(tau_0 > 0)
    tau_0 = jnp.where(fixed, jnp.float32(cfg.tau), tau_0)
    seen = stats["loss_count"] > 0
    mean_loss = stats["loss_sum"] / jnp.maximum(stats["loss_count"], 1.0)
    tau_user = losses.adap_tau_user(mean_loss, tau_0, beta=cfg.adap_tau_beta, where=seen)
    zeros = jnp.zeros_like(stats["loss_sum"])
    return {"tau_user": tau_user, "loss_sum": zeros, "loss_count": zeros}


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
        loss_state = state.loss_state
        extras = LossExtras(data.user_level, data.item_level, state.epoch < cfg.bc_pop_epochs)
        if cfg.loss == "adap_tau":
            loss_state = adap_tau_epoch_start(cfg, state, data, embed, n_items)
            extras = extras._replace(tau_user=loss_state["tau_user"])

        def loss_fn(cf_params, users, pos, negs, key):
            user_rows, item_emb = lightgcn_rows(
                cf_params, data.graph, users,
                n_layers=cfg.n_layers, method=cfg.propagation, gram=data.gram,
            )  # fmt: skip
            per, aux = contrastive_loss(
                cfg, l2_normalize(user_rows), l2_normalize(item_emb), cf_params,
                state.adv_params, users, pos, negs, key, extras=extras,
            )  # fmt: skip
            total = jnp.mean(per) + l2_penalty(cfg, cf_params, users, pos, negs)
            return total, aux

        def body(carry, xs):
            params, opt, step, sums = carry
            index, users, pos = xs
            negs = negatives(epoch_key, data.pairs, users, index)
            key = jax.random.fold_in(jax.random.fold_in(epoch_key, 2), index)
            (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, users, pos, negs, key
            )
            if cfg.loss == "bc_loss":
                grads = _bc_phase_mask(grads, extras.pop_phase)
            updates, opt = cf_tx.update(grads, opt, params)
            if cfg.loss == "bc_loss":
                # Adam's momentum would move a frozen group on without gradients.
                updates = _bc_phase_mask(updates, extras.pop_phase)
            if "user_loss" in aux:
                sums = {
                    "loss_sum": sums["loss_sum"].at[users].add(aux["user_loss"]),
                    "loss_count": sums["loss_count"].at[users].add(1.0),
                }
            params = optax.apply_updates(params, updates)
            return (params, opt, step + 1, sums), (loss, jnp.mean(aux["kl"]))

        sums = {k: v for k, v in loss_state.items() if k in ("loss_sum", "loss_count")}
        xs = (jnp.arange(n_batches), users_all, pos_all)
        (params, opt, step, sums), (loss, kl) = jax.lax.scan(
            body, (state.cf_params, state.cf_opt, state.step, sums), xs
        )
        state = state.replace(
            cf_params=params, cf_opt=opt, step=step, epoch=state.epoch + 1,
            loss_state={**loss_state, **sums},
        )  # fmt: skip
        return state, {"loss": jnp.mean(loss), "kl": jnp.mean(kl)}

    def adv_epoch(state: TrainState, data: TrainData):
        epoch_key = jax.random.fold_in(jax.random.fold_in(state.key, _ADV_STREAM), state.adv_epochs)
        users_all, pos_all = batches(epoch_key, data.pairs)
        cf_params = jax.lax.stop_gradient(state.cf_params)
        user_emb, item_emb = embed(cf_params, data.graph)
        user_table, item_table = l2_normalize(user_emb), l2_normalize(item_emb)

        def loss_fn(adv_params, users, pos, negs):
            per, aux = contrastive_loss(
                cfg, user_table[users], item_table, cf_params, adv_params, users, pos, negs
            )
            return jnp.mean(per), jnp.mean(aux["kl"])

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
