"""LightGCN propagation on the device: the paths "bcoo", "segment_sum" and "csr".

Each layer is one sparse product A @ x inside the compiled program (`spmm`):
  "bcoo": jax.experimental.sparse BCOO matmul, the reference path;
  "segment_sum": gather the source rows, scale, jax.ops.segment_sum by target row;
  "csr": jax.experimental.sparse CSR products, with a custom VJP through the same
    symmetric operator. On CUDA they lower to cuSPARSE SpMM (BCOO lowers to XLA gathers
    and scatter-adds unless jax_bcoo_cusparse_lowering is set, and its autodiff
    transpose scatters into unsorted rows); elsewhere to the same XLA scatter as BCOO.
advjax.models.propagation chooses among these and the host path.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import sparse

from advjax.data.graph import Graph

DEVICE_METHODS = ("bcoo", "segment_sum", "csr")


def spmm(graph: Graph, x: jax.Array, method: str) -> jax.Array:
    """One sparse product A @ x on the device.

    Args:
      graph: normalised adjacency over N nodes.
      x: [N, d] node features.
      method: "bcoo", "segment_sum" or "csr".

    Returns:
      [N, d].
    """
    n = x.shape[0]
    if method == "csr":
        adj = sparse.CSR((graph.weights, graph.cols, graph.indptr), shape=(n, n))
        return adj @ x
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


def device_propagate(graph: Graph, x: jax.Array, n_layers: int, method: str) -> jax.Array:
    """The layer mean (1 / (L+1)) sum_l A^l x of all N nodes, on the device.

    Args:
      graph: normalised adjacency over N nodes (its item_gram is not read).
      x: [N, d] layer-0 embeddings.
      n_layers: L >= 1.
      method: one of DEVICE_METHODS.

    Returns:
      [N, d].
    """
    if method == "csr":
        return _csr_propagate(graph, x, n_layers)
    return _layer_mean(graph, x, n_layers, method)


def _layer_mean(graph: Graph, x: jax.Array, n_layers: int, method: str) -> jax.Array:
    total, layer = x, x
    for _ in range(n_layers):
        layer = spmm(graph, layer, method)
        total = total + layer
    return total / (n_layers + 1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _csr_propagate(graph: Graph, x: jax.Array, n_layers: int) -> jax.Array:
    return _layer_mean(graph, x, n_layers, "csr")


def _csr_fwd(graph, x, n_layers):
    return _csr_propagate(graph, x, n_layers), graph


def _csr_bwd(n_layers, graph, cotangent):
    # As for host_csr: the symmetric operator is its own transpose, so the backward pass
    # runs the forward's (row-sorted) products instead of transposed ones.
    return None, _csr_propagate(graph, cotangent, n_layers)


_csr_propagate.defvjp(_csr_fwd, _csr_bwd)


@jax.custom_vjp
def csr_product(graph: Graph, x: jax.Array) -> jax.Array:
    """One layer A @ x with the "csr" path, its VJP through the same symmetric product."""
    return spmm(graph, x, "csr")


def _csr_product_fwd(graph, x):
    return csr_product(graph, x), graph


def _csr_product_bwd(graph, cotangent):
    return None, csr_product(graph, cotangent)


csr_product.defvjp(_csr_product_fwd, _csr_product_bwd)


def device_product(graph: Graph, x: jax.Array, method: str) -> jax.Array:
    """One layer A @ x on the device with `method` (one of DEVICE_METHODS)."""
    return csr_product(graph, x) if method == "csr" else spmm(graph, x, method)
