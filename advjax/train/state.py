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
      cf_params: {"user": [U, d], "item": [I, d]} layer-0 embeddings.
      cf_opt: optax state of the CF optimiser.
      adv_params: hardness model parameters (empty dict when the loss has no adversary).
      adv_opt: optax state of the hardness optimiser.
      step: int32 [], CF batches taken.
      epoch: int32 [], CF epochs finished.
      adv_epochs: int32 [], adversarial epochs finished.
      key: the run's root PRNG key; every draw folds counters into it.
    """

    cf_params: dict
    cf_opt: optax.OptState
    adv_params: dict
    adv_opt: optax.OptState
    step: jax.Array
    epoch: jax.Array
    adv_epochs: jax.Array
    key: jax.Array


def make_optimizers(cfg: TrainConfig) -> tuple[optax.GradientTransformation, ...]:
    """(CF optimiser, hardness optimiser): two independent Adams (SPEC §3)."""
    return optax.adam(cfg.lr), optax.adam(cfg.lr_adv)


def init_state(cfg: TrainConfig, *, n_users: int, n_items: int) -> TrainState:
    """Fresh state from cfg.seed: Xavier-normal embeddings, zeroed Adam moments."""
    root = jax.random.key(cfg.seed)
    key_cf, key_adv, key_run = jax.random.split(root, 3)
    cf_params = init_embeddings(key_cf, n_users, n_items, cfg.emb_dim)
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
    )
