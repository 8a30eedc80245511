"""Hardness models g(u, j) whose softmax over the negatives weights AdvInfoNCE (SPEC §2).

"embed": separate user and item hardness embeddings, g(u, j) = <a_u, b_j>.
"mlp": one Linear + ReLU tower per side, mapping the CF model's layer-0 embeddings
(gradient stopped, so the CF model is never trained through the adversary) to a small
space, g(u, j) = <MLP_u(e_u), MLP_v(e_j)>.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from advjax.initializers import xavier_normal
from advjax.scores import pair_scores

KINDS = ("embed", "mlp")


def init_hardness(
    key: jax.Array,
    kind: str,
    *,
    n_users: int,
    n_items: int,
    cf_dim: int = 64,
    embed_dim: int = 64,
    mlp_dim: int = 4,
) -> dict:
    """Parameters of a hardness model.

    Returns:
      "embed": {"user": [U, embed_dim], "item": [I, embed_dim]};
      "mlp": {"user_w": [cf_dim, mlp_dim], "user_b": [mlp_dim], "item_w", "item_b"}.
    """
    key_user, key_item = jax.random.split(key)
    if kind == "embed":
        return {
            "user": xavier_normal(key_user, n_users, embed_dim),
            "item": xavier_normal(key_item, n_items, embed_dim),
        }
    if kind == "mlp":
        return {
            "user_w": xavier_normal(key_user, cf_dim, mlp_dim),
            "user_b": jnp.zeros((mlp_dim,), jnp.float32),
            "item_w": xavier_normal(key_item, cf_dim, mlp_dim),
            "item_b": jnp.zeros((mlp_dim,), jnp.float32),
        }
    raise ValueError(f"unknown hardness model {kind!r}; choose one of {KINDS}")


def hardness_logits(
    adv_params: dict,
    kind: str,
    users: jax.Array,
    neg_items: jax.Array,
    cf_params: dict,
) -> jax.Array:
    """Raw hardness scores g(u, j) of each sampled negative.

    Args:
      adv_params: hardness model parameters (see init_hardness).
      kind: "embed" or "mlp".
      users: int [B] user ids.
      neg_items: int [B, N] negative item ids.
      cf_params: the CF model's layer-0 tables {"user", "item"}; read by "mlp" only,
        through stop_gradient.

    Returns:
      [B, N] hardness logits.
    """
    if kind == "embed":
        return pair_scores(adv_params["user"][users], adv_params["item"], neg_items)
    if kind == "mlp":
        # Towers over the whole item table, then picked: cheaper than per-sample rows.
        e_u = jax.lax.stop_gradient(cf_params["user"][users])
        e_items = jax.lax.stop_gradient(cf_params["item"])
        a = jax.nn.relu(e_u @ adv_params["user_w"] + adv_params["user_b"])
        b = jax.nn.relu(e_items @ adv_params["item_w"] + adv_params["item_b"])
        return pair_scores(a, b, neg_items)
    raise ValueError(f"unknown hardness model {kind!r}; choose one of {KINDS}")
