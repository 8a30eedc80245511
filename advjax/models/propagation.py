"""LightGCN propagation: mean of x, Ax, A^2x, ... over the normalised graph (SPEC §1).

Two sparse-product paths, tested equal (tests/models/test_propagation.py):
  "bcoo": jax.experimental.sparse BCOO matmul, the reference path;
  "segment_sum": gather the source rows, scale, jax.ops.segment_sum by target row.
"auto" picks per platform from DEFAULT_METHOD, which records what
benchmarks/propagation.py measured (see WORKSPACE.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import sparse

from advjax.data.graph import Graph

METHODS = ("bcoo", "segment_sum")

# Faster path per jax.default_backend(), by benchmarks/propagation.py (WORKSPACE.md).
DEFAULT_METHOD = {"cpu": "segment_sum", "gpu": "bcoo", "tpu": "segment_sum"}


def resolve_method(method: str) -> str:
    """Maps "auto" to the platform's faster path; validates explicit names."""
    if method == "auto":
        return DEFAULT_METHOD.get(jax.default_backend(), "bcoo")
    if method not in METHODS:
        raise ValueError(f"unknown propagation method {method!r}; choose auto, bcoo or segment_sum")
    return method


def spmm(graph: Graph, x: jax.Array, method: str) -> jax.Array:
    """One sparse product A @ x.

    Args:
      graph: normalised adjacency over N nodes.
      x: [N, d] node features.
      method: "bcoo" or "segment_sum".

    Returns:
      [N, d].
    """
    n = x.shape[0]
    if method == "bcoo":
        indices = jnp.stack([graph.rows, graph.cols], axis=1)
        adj = sparse.BCOO(
            (graph.weights, indices), shape=(n, n), indices_sorted=True, unique_indices=True
        )
        return adj @ x
    if method == "segment_sum":
        messages = graph.weights[:, None] * x[graph.cols]
        return jax.ops.segment_sum(messages, graph.rows, num_segments=n, indices_are_sorted=True)
    raise ValueError(f"unknown propagation method {method!r}")


def propagate(x: jax.Array, graph: Graph, n_layers: int, method: str = "auto") -> jax.Array:
    """LightGCN's layer mean (1 / (L+1)) * sum_{l=0..L} A^l x.

    Args:
      x: [N, d] layer-0 embeddings of all nodes (users first, then items).
      graph: normalised adjacency over N nodes.
      n_layers: L >= 0; 0 returns x unchanged.
      method: "auto", "bcoo" or "segment_sum".

    Returns:
      [N, d] final embeddings.
    """
    if n_layers == 0:
        return x
    method = resolve_method(method)
    total, layer = x, x
    for _ in range(n_layers):
        layer = spmm(graph, layer, method)
        total = total + layer
    return total / (n_layers + 1)
