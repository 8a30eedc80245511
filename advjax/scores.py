"""Similarity scores between users and sampled items (SPEC §1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Below this many items per sampled negative, scoring the batch against the whole item
# table and picking entries beats gathering rows: XLA's CPU scatter-add (the gather's
# gradient) costs more than the dense product. Measured on CPU with B=1024, d=64
# (WORKSPACE.md): dense wins at I/N <= 84 (Yahoo, N=64: 4 vs 26 ms), loses at I/N = 168.
DENSE_ITEMS_PER_NEG = 128


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rows of x [..., d] scaled to unit L2 norm (rows of norm < eps are divided by eps)."""
    norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
    return x / jnp.maximum(norm, eps)


def pair_scores(user_vecs: jax.Array, item_table: jax.Array, items: jax.Array) -> jax.Array:
    """Inner products <user_vecs[b], item_table[items[b, n]]>.

    Args:
      user_vecs: [B, d].
      item_table: [I, d].
      items: int [B, N] item ids.

    Returns:
      [B, N] scores. Computed by the dense [B, I] product and a pick when I <= 128 N,
      else by gathering the [B, N, d] rows; the two agree to float rounding.
    """
    n_items, n_per_row = item_table.shape[0], items.shape[1]
    if n_items <= DENSE_ITEMS_PER_NEG * n_per_row:
        return jnp.take_along_axis(user_vecs @ item_table.T, items, axis=1)
    return jnp.einsum("bd,bnd->bn", user_vecs, item_table[items])
