"""TrainState: everything a run needs to continue, as one pytree."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from advjax.models import init_embeddings, init_hardness
from advjax.train.config import TrainConfig


class TrainState(struct.PyTreeNode):
    """CF model and hardness model with their Adam states, counters and the root key.

    Attributes:
      cf_params: {"user": [U, d], "item": [I, d]} layer-0 embeddings; BC loss adds its
        popularity branch {"pop_user": [user levels, d], "pop_item": [item levels, d]}.
      cf_opt: optax state of the CF optimiser.
      adv_params: hardness model parameters (empty dict when the loss has no adversary).
      adv_opt: optax state of the hardness optimiser.
      step: int32 [], CF batches taken.
      epoch: int32 [], CF epochs finished.
      adv_epochs: int32 [], adversarial epochs finished.
      key: the run's root PRNG key; every draw folds counters into it.
      loss_state: what a loss carries across epochs (empty for most). Adap-tau:
        {"tau_user": [U] temperatures of the running epoch, "loss_sum": [U] and
        "loss_count": [U] each user's InfoNCE at temperature 1 summed over it}.
    """

    cf_params: dict
    cf_opt: optax.OptState
    adv_params: dict
    adv_opt: optax.OptState
    step: jax.Array
    epoch: jax.Array
    adv_epochs: jax.Array
    key: jax.Array
    loss_state: dict


def make_optimizers(cfg: TrainConfig) -> tuple[optax.GradientTransformation, ...]:
    """(CF optimiser, hardness optimiser): two independent Adams (SPEC §3)."""
    return optax.adam(cfg.lr), optax.adam(cfg.lr_adv)


def init_state(
    cfg: TrainConfig,
    *,
    n_users: int,
    n_items: int,
    pop_levels: tuple[int, int] = (1, 1),
) -> TrainState:
    """Fresh state from cfg.seed: Xavier-normal embeddings, zeroed Adam moments.

    pop_levels: (user, item) popularity level counts, for BC loss's branch
    (advjax.data.popularity).
    """
    root = jax.random.key(cfg.seed)
    key_cf, key_adv, key_run = jax.random.split(root, 3)
    cf_params = init_embeddings(key_cf, n_users, n_items, cfg.emb_dim)
    if cfg.loss == "bc_loss":
        # Its own stream: the main tables stay those of the other losses at this seed.
        pop = init_embeddings(jax.random.fold_in(key_cf, 1), *pop_levels, cfg.emb_dim)
        cf_params = {**cf_params, "pop_user": pop["user"], "pop_item": pop["item"]}
    loss_state = {}
    if cfg.loss == "adap_tau":
        loss_state = {
            "tau_user": jnp.full((n_users,), cfg.tau, jnp.float32),
            "loss_sum": jnp.zeros((n_users,), jnp.float32),
            "loss_count": jnp.zeros((n_users,), jnp.float32),
        }
    adv_params = {}
    if cfg.trains_adversary:
        adv_params = init_hardness(
            key_adv, cfg.hardness, n_users=n_users, n_items=n_items, cf_dim=cfg.emb_dim
        )
    cf_tx, adv_tx = make_optimizers(cfg)

    # Separate buffers per counter: the epoch functions donate the whole state.
    def zero():
        return jnp.zeros((), jnp.int32)

    return TrainState(
        cf_params=cf_params,
        cf_opt=cf_tx.init(cf_params),
        adv_params=adv_params,
        adv_opt=adv_tx.init(adv_params),
        step=zero(),
        epoch=zero(),
        adv_epochs=zero(),
        key=key_run,
        loss_state=loss_state,
    )
