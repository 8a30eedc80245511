"""LightGCN propagation: mean of x, Ax, A^2x, ... over the normalised graph (SPEC §1).

Sparse-product paths, tested equal (tests/models/test_propagation.py):
  "bcoo": jax.experimental.sparse BCOO matmul, the reference path;
  "segment_sum": gather the source rows, scale, jax.ops.segment_sum by target row;
  "host_csr": all layers by SciPy's CSR product on the host in one jax.pure_callback
    (CPU only: XLA's CPU scatter is the bottleneck of the other two). The layer mean is
    a polynomial in the symmetric A, so its custom VJP applies it to the cotangent.
"auto" picks per platform from DEFAULT_METHOD, which records what
benchmarks/propagation.py measured (see WORKSPACE.md).
"""

from __future__ import annotations

import functools

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


def _host_layer_mean(indptr, cols, weights, x, *, n_layers: int) -> np.ndarray:
    n = x.shape[0]
    adj = scipy.sparse.csr_matrix((weights, cols, indptr), shape=(n, n))
    total, layer = x.copy(), x
    for _ in range(n_layers):
        layer = adj @ layer
        total += layer
    return (total / (n_layers + 1)).astype(x.dtype, copy=False)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _host_csr_propagate(graph: Graph, x: jax.Array, n_layers: int) -> jax.Array:
    # All layers in one callback: each callback costs a host round trip (~4 ms here).
    out = jax.ShapeDtypeStruct(x.shape, x.dtype)
    return jax.pure_callback(
        functools.partial(_host_layer_mean, n_layers=n_layers),
        out, graph.indptr, graph.cols, graph.weights, x,
        vmap_method="sequential",
    )  # fmt: skip


def _host_csr_fwd(graph, x, n_layers):
    return _host_csr_propagate(graph, x, n_layers), graph


def _host_csr_bwd(n_layers, graph, cotangent):
    # The layer mean is a polynomial in the symmetric A, so it is its own transpose:
    # the cotangent goes through the same operator. The graph is data (no cotangent).
    return None, _host_csr_propagate(graph, cotangent, n_layers)


_host_csr_propagate.defvjp(_host_csr_fwd, _host_csr_bwd)


def spmm(graph: Graph, x: jax.Array, method: str) -> jax.Array:
    """One sparse product A @ x on device ("host_csr" runs whole propagations instead).

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
      method: "auto" or one of METHODS.

    Returns:
      [N, d] final embeddings.
    """
    if n_layers == 0:
        return x
    method = resolve_method(method)
    if method == "host_csr":
        return _host_csr_propagate(graph, x, n_layers)
    total, layer = x, x
    for _ in range(n_layers):
        layer = spmm(graph, layer, method)
        total = total + layer
    return total / (n_layers + 1)
