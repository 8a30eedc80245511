"""LightGCN: layer-0 embeddings propagated over the user-item graph (SPEC §1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from advjax.data.graph import Graph
from advjax.models.mf import Params
from advjax.models.propagation import propagate, propagate_rows


def lightgcn_embed(
    params: Params, graph: Graph, *, n_layers: int, method: str = "auto"
) -> tuple[jax.Array, jax.Array]:
    """Final user and item embeddings; n_layers = 0 is MF (the tables themselves).

    Args:
      params: {"user": [U, d], "item": [I, d]} layer-0 embeddings.
      graph: normalised adjacency over U + I nodes (unused when n_layers = 0).
      n_layers: number of propagation layers L.
      method: propagation path, see advjax.models.propagation.

    Returns:
      (user_emb [U, d], item_emb [I, d]).
    """
    if n_layers == 0:
        return params["user"], params["item"]
    n_users = params["user"].shape[0]
    nodes = jnp.concatenate([params["user"], params["item"]], axis=0)
    out = propagate(nodes, graph, n_layers, method)
    return out[:n_users], out[n_users:]


def lightgcn_rows(
    params: Params, graph: Graph, users: jax.Array, *, n_layers: int, method: str = "auto"
) -> tuple[jax.Array, jax.Array]:
    """Final embeddings of the users `users` and of every item: what a training step reads.

    Equal to lightgcn_embed's rows `users` and items; the host path computes no other
    user's final embedding (advjax.models.propagation.propagate_rows).

    Args:
      params: {"user": [U, d], "item": [I, d]} layer-0 embeddings.
      graph: normalised adjacency over U + I nodes (unused when n_layers = 0), as
        advjax.models.propagation.prepare_graph builds it for `method`.
      users: int [B] user ids.
      n_layers: number of propagation layers L.
      method: propagation path, see advjax.models.propagation.

    Returns:
      (user rows [B, d], item_emb [I, d]).
    """
    return propagate_rows(params["user"], params["item"], graph, users, n_layers, method)
