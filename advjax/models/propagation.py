"""LightGCN propagation: mean of x, Ax, A^2x, ... over the normalised graph (SPEC §1).

Sparse-product paths, tested equal (tests/models/test_propagation.py):
  "bcoo": jax.experimental.sparse BCOO matmul, the reference path;
  "segment_sum": gather the source rows, scale, jax.ops.segment_sum by target row;
  "host_csr": SciPy's CSR product on the host through jax.pure_callback (CPU only:
    XLA's CPU scatter is the bottleneck of the other two). A is symmetric, so its
    custom VJP is the same product applied to the cotangent.
"auto" picks per platform from DEFAULT_METHOD, which records what
benchmarks/propagation.py measured (see WORKSPACE.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from jax.experimental import sparse

from advjax.data.graph import Graph

METHODS = ("bcoo", "segment_sum", "host_csr")

# Faster path per jax.default_backend(), by benchmarks/propagation.py (WORKSPACE.md).
DEFAULT_METHOD = {"cpu": "host_csr", "gpu": "bcoo"}


def resolve_method(method: str) -> str:
    """Maps "auto" to the platform's faster path; validates explicit names."""
    if method == "auto":
        return DEFAULT_METHOD.get(jax.default_backend(), "bcoo")
    if method not in METHODS:
        raise ValueError(f"unknown propagation method {method!r}; choose auto or one of {METHODS}")
    return method


def _host_csr_product(indptr, cols, weights, x) -> np.ndarray:
    n = x.shape[0]
    adj = scipy.sparse.csr_matrix((weights, cols, indptr), shape=(n, n))
    return np.asarray(adj @ x, dtype=x.dtype)


@jax.custom_vjp
def _host_csr_spmm(graph: Graph, x: jax.Array) -> jax.Array:
    out = jax.ShapeDtypeStruct(x.shape, x.dtype)
    return jax.pure_callback(
        _host_csr_product, out, graph.indptr, graph.cols, graph.weights, x,
        vmap_method="sequential",
    )  # fmt: skip


def _host_csr_fwd(graph, x):
    return _host_csr_spmm(graph, x), graph


def _host_csr_bwd(graph, cotangent):
    # (A x)' = A^T g = A g: the normalised adjacency is symmetric. The graph is data.
    return None, _host_csr_spmm(graph, cotangent)


_host_csr_spmm.defvjp(_host_csr_fwd, _host_csr_bwd)


def spmm(graph: Graph, x: jax.Array, method: str) -> jax.Array:
    """One sparse product A @ x.

    Args:
      graph: normalised adjacency over N nodes.
      x: [N, d] node features.
      method: one of METHODS.

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
    if method == "host_csr":
        return _host_csr_spmm(graph, x)
    raise ValueError(f"unknown propagation method {method!r}")


def propagate(x: jax.Array, graph: Graph, n_layers: int, method: str = "auto") -> jax.Array:
    """LightGCN's layer mean (1 / (L+1)) * sum_{l=0..L} A^l x.

    Args:
      x: [N, d] layer-0 embeddings of all nodes (users first, then items).
      graph: normalised adjacency over N nodes.
      n_layers: L >= 0; 0 returns x unchanged.
      method: "auto" or one of METHODS.

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
