"""Initial values of embedding tables: a low module the backbones and the losses' own
parameter groups (BC loss's popularity branch, AdvInfoNCE's hardness model) share."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def xavier_normal(key: jax.Array, n_rows: int, dim: int) -> jax.Array:
    """[n_rows, dim] from N(0, 2 / (n_rows + dim)), Xavier-normal for an embedding table."""
    std = (2.0 / (n_rows + dim)) ** 0.5
    return std * jax.random.normal(key, (n_rows, dim), jnp.float32)


def init_embeddings(key: jax.Array, n_users: int, n_items: int, dim: int = 64) -> dict:
    """Xavier-normal tables {"user": [n_users, dim], "item": [n_items, dim]}."""
    key_user, key_item = jax.random.split(key)
    return {
        "user": xavier_normal(key_user, n_users, dim),
        "item": xavier_normal(key_item, n_items, dim),
    }
