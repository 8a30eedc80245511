"""LightGCN propagation on the host: SciPy CSR products inside jax.pure_callback.

The path "host_csr" of advjax.models.propagation (CPU only in practice: XLA's CPU
scatter is the bottleneck of the device paths, and SciPy's CSR kernel beats it 2x).

`host_csr_propagate`: all layers in one callback. The layer mean is a polynomial in the
  symmetric A, so its custom VJP applies the same operator to the cotangent.
`host_csr_rows`: a training step's rows (its users and every item) in the bipartite
  form (below); with `graph.item_gram` attached (`item_gram`, where `gram_pays_off`)
  the item-side operator G is one dense product instead of two sparse ones.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os

import jax
import numpy as np
import scipy.sparse

from advjax.data.graph import Graph

# SciPy's CSR product releases the GIL, so row blocks run in parallel threads (Yahoo!R3
# R^T U0: 4.2 ms on one thread, 2.1 ms on two). Small products stay on one thread.
_PARALLEL_MIN_NNZ = 20_000


@functools.cache
def _pool() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1, "advjax-csr")


class _HostCSR:
    """A CSR matrix on the host whose products with dense matrices use every core."""

    def __init__(self, indptr, cols, weights, shape: tuple[int, int]):
        indptr, cols, weights = np.asarray(indptr), np.asarray(cols), np.asarray(weights)
        self.matrix = scipy.sparse.csr_matrix((weights, cols, indptr), shape=shape)
        nnz = int(indptr[-1] - indptr[0])
        n_blocks = min(_pool()._max_workers, max(1, nnz // _PARALLEL_MIN_NNZ))
        # Row cuts that split the non-zeros evenly; each block views the same arrays.
        cuts = np.searchsorted(indptr, np.linspace(indptr[0], indptr[-1], n_blocks + 1))
        cuts[0], cuts[-1] = 0, shape[0]
        self.blocks = []
        for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
            lo, hi = indptr[start], indptr[stop]
            block_indptr = indptr[start : stop + 1] - lo
            block = (weights[lo:hi], cols[lo:hi], block_indptr)
            self.blocks.append(
                (start, stop, scipy.sparse.csr_matrix(block, (stop - start, shape[1])))
            )

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        if len(self.blocks) == 1:
            return self.matrix @ x
        out = np.empty(
            (self.matrix.shape[0], x.shape[1]), np.result_type(self.matrix.dtype, x.dtype)
        )

        def run(start, stop, block):
            out[start:stop] = block @ x

        for future in [_pool().submit(run, *b) for b in self.blocks]:
            future.result()
        return out


# jax.pure_callback hands its callback jax.Arrays on the CPU device. Every callback here
# turns them into NumPy arrays first: a jnp operation inside a callback (x.copy(),
# total += layer) dispatches a nested XLA computation from one of XLA's own threads,
# which deadlocked a 2-core SGL search after about 300 epochs (2026-12-03).


def _host_layer_mean(indptr, cols, weights, x, *, n_layers: int) -> np.ndarray:
    x = np.asarray(x)
    n = x.shape[0]
    adj = _HostCSR(indptr, cols, weights, (n, n))
    total, layer = x.copy(), x
    for _ in range(n_layers):
        layer = adj @ layer
        total += layer
    # The product by the rounded reciprocal, as XLA computes a division by a constant:
    # the mean keeps the bits it had when these were jnp operations (published runs).
    scale = x.dtype.type(1) / x.dtype.type(n_layers + 1)
    return (total * scale).astype(x.dtype, copy=False)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def host_csr_propagate(graph: Graph, x: jax.Array, n_layers: int) -> jax.Array:
    """The layer mean (1 / (L+1)) sum_l A^l x of all N nodes, by SciPy on the host.

    Args:
      graph: normalised adjacency over N nodes (its item_gram is not read).
      x: [N, d] layer-0 embeddings.
      n_layers: L >= 1.

    Returns:
      [N, d].
    """
    # All layers in one callback: each callback costs a host round trip (~4 ms here).
    out = jax.ShapeDtypeStruct(x.shape, x.dtype)
    return jax.pure_callback(
        functools.partial(_host_layer_mean, n_layers=n_layers),
        out, graph.indptr, graph.cols, graph.weights, x,
        vmap_method="sequential",
    )  # fmt: skip


def _host_csr_fwd(graph, x, n_layers):
    return host_csr_propagate(graph, x, n_layers), graph


def _host_csr_bwd(n_layers, graph, cotangent):
    # The layer mean is a polynomial in the symmetric A, so it is its own transpose:
    # the cotangent goes through the same operator. The graph is data (no cotangent).
    return None, host_csr_propagate(graph, cotangent, n_layers)


host_csr_propagate.defvjp(_host_csr_fwd, _host_csr_bwd)


def _host_product(indptr, cols, weights, x) -> np.ndarray:
    x = np.asarray(x)
    n = x.shape[0]
    return (_HostCSR(indptr, cols, weights, (n, n)) @ x).astype(x.dtype, copy=False)


@jax.custom_vjp
def host_csr_product(graph: Graph, x: jax.Array) -> jax.Array:
    """One layer A @ x of all N nodes, by SciPy on the host (a layer at a time, for
    models that act between layers: advjax.models.propagation.propagate_layers).

    Args:
      graph: normalised adjacency over N nodes, symmetric (its item_gram is not read).
      x: [N, d].

    Returns:
      [N, d].
    """
    out = jax.ShapeDtypeStruct(x.shape, x.dtype)
    return jax.pure_callback(
        _host_product, out, graph.indptr, graph.cols, graph.weights, x,
        vmap_method="sequential",
    )  # fmt: skip


def _host_product_fwd(graph, x):
    return host_csr_product(graph, x), graph


def _host_product_bwd(graph, cotangent):
    return None, host_csr_product(graph, cotangent)  # A is symmetric: A^T c = A c


host_csr_product.defvjp(_host_product_fwd, _host_product_bwd)


def item_gram(graph: Graph, n_users: int) -> np.ndarray:
    """Dense item-item operator G = R^T R of the normalised graph, float32 [I, I].

    R [U, I] is the user-to-item block of A (A = [[0, R], [R^T, 0]]), so G is the
    item block of A^2. Dense is worth it only for small catalogues (gram_pays_off).
    """
    r, rt = _bipartite_blocks(*map(np.asarray, (graph.indptr, graph.cols, graph.weights)), n_users)
    return (rt.matrix @ r.matrix).toarray().astype(np.float32)


def gram_pays_off(n_items: int, n_edges: int) -> bool:
    """Whether a dense G @ x beats the two sparse products R^T (R x) it replaces.

    A dense product costs 2 I^2 d FLOPs at GEMM speed; the sparse pair 4 E d at about a
    tenth of it here (Yahoo!R3: 1.3 ms dense vs 6.3 ms sparse, I = 1000, E = 88,684).
    n_edges is E, the number of training pairs.
    """
    return n_items <= 4096 and n_items * n_items <= 20 * n_edges


def _bipartite_blocks(indptr, cols, weights, n_users: int):
    """SciPy CSR views of R [U, I] and R^T [I, U] inside the square graph's arrays.

    Rows are sorted with users first, so the first E edges are R's rows (item columns
    offset by U) and the rest are R^T's rows.
    """
    n_edges = int(indptr[n_users])
    n_items = indptr.shape[0] - 1 - n_users
    r = _HostCSR(
        indptr[: n_users + 1], cols[:n_edges] - n_users, weights[:n_edges], (n_users, n_items)
    )
    rt = _HostCSR(indptr[n_users:] - n_edges, cols[n_edges:], weights[n_edges:], (n_items, n_users))
    return r, rt


# The bipartite form of the layer mean. With E0 = [U0; I0] and A = [[0, R], [R^T, 0]],
# G = R^T R and Y = R^T U0, the item rows of A^k E0 are G^j I0 (k = 2j) and G^j Y
# (k = 2j + 1), and user rows are R G^j I0 (k = 2j + 1) and R G^(j-1) Y (k = 2j >= 2).
# So every item and any set of users needs one product with R^T over all users, item-side
# products with G, and the batch's own rows of R: 3E edge passes (or E + one dense G
# product) per direction instead of 2L E. _p_terms/_q_terms say which G^j I0 and G^j Y
# enter the items' mean and the users' T (their final rows are (U0[b] + R[b] T) / (L+1)).


def _p_terms(n_layers: int) -> tuple[list[int], list[int]]:
    """Powers j of G I0 in the items' sum and in the users' T."""
    return [j for j in range(n_layers // 2 + 1)], [j for j in range((n_layers + 1) // 2)]


def _q_terms(n_layers: int) -> tuple[list[int], list[int]]:
    """Powers j of G Y in the items' sum and in the users' T."""
    return [j for j in range((n_layers + 1) // 2)], [j for j in range(n_layers // 2)]


def _host_rows_fwd(indptr, cols, weights, gram, x_users, x_items, users, *, n_layers: int):
    gram, x_users, x_items, users = map(np.asarray, (gram, x_users, x_items, users))
    n_users = x_users.shape[0]
    r, rt = _bipartite_blocks(indptr, cols, weights, n_users)
    apply_g = (lambda v: gram @ v) if gram.size else (lambda v: rt @ (r @ v))
    (p_items, p_users), (q_items, q_users) = _p_terms(n_layers), _q_terms(n_layers)
    powers = {"p": [x_items], "q": [rt @ x_users]}
    for name, needed in (("p", p_items + p_users), ("q", q_items + q_users)):
        while len(powers[name]) <= max(needed, default=-1):
            powers[name].append(apply_g(powers[name][-1]))
    scale = 1.0 / (n_layers + 1)
    items = sum(powers["p"][j] for j in p_items) + sum(powers["q"][j] for j in q_items)
    t = sum(powers["p"][j] for j in p_users) + sum(powers["q"][j] for j in q_users)
    user_rows = x_users[users] + r.matrix[users] @ t
    return (user_rows * scale).astype(x_users.dtype), (items * scale).astype(x_items.dtype)


def _horner(apply_g, coefficients: list) -> np.ndarray:
    """sum_j G^j c_j for symmetric G, evaluated as c_0 + G (c_1 + G (c_2 + ...))."""
    acc = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        acc = c + apply_g(acc)
    return acc


def _host_rows_bwd(indptr, cols, weights, gram, users, g_rows, g_items, *, n_layers: int):
    gram, users, g_rows, g_items = map(np.asarray, (gram, users, g_rows, g_items))
    n_users = indptr.shape[0] - 1 - g_items.shape[0]
    r, rt = _bipartite_blocks(indptr, cols, weights, n_users)
    apply_g = (lambda v: gram @ v) if gram.size else (lambda v: rt @ (r @ v))
    scale = 1.0 / (n_layers + 1)
    g_rows, g_items = g_rows * scale, g_items * scale
    g_t = r.matrix[users].T @ g_rows
    (p_items, p_users), (q_items, q_users) = _p_terms(n_layers), _q_terms(n_layers)

    def coefficients(items_powers, users_powers):
        top = max(items_powers + users_powers, default=-1)
        return [
            (g_items if j in items_powers else 0) + (g_t if j in users_powers else 0)
            for j in range(top + 1)
        ]

    g_x_items = _horner(apply_g, coefficients(p_items, p_users))
    q = coefficients(q_items, q_users)
    g_x_users = r @ _horner(apply_g, q) if q else np.zeros((n_users, g_items.shape[1]))
    np.add.at(g_x_users, users, g_rows)
    return g_x_users.astype(g_items.dtype), g_x_items.astype(g_items.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def host_csr_rows(
    graph: Graph, x_users: jax.Array, x_items: jax.Array, users: jax.Array, n_layers: int
) -> tuple[jax.Array, jax.Array]:
    """The layer mean's rows `users` and every item's, in the bipartite form on the host.

    Args:
      graph: normalised adjacency over U + I nodes; its item_gram, if [I, I], stands
        for the item-side operator G.
      x_users: [U, d] layer-0 user embeddings.
      x_items: [I, d] layer-0 item embeddings.
      users: int [B] user ids (repeats allowed).
      n_layers: L >= 1.

    Returns:
      (user rows [B, d], item embeddings [I, d]).
    """
    out = (
        jax.ShapeDtypeStruct((users.shape[0], x_users.shape[1]), x_users.dtype),
        jax.ShapeDtypeStruct(x_items.shape, x_items.dtype),
    )
    return jax.pure_callback(
        functools.partial(_host_rows_fwd, n_layers=n_layers),
        out, graph.indptr, graph.cols, graph.weights, graph.item_gram, x_users, x_items, users,
        vmap_method="sequential",
    )  # fmt: skip


def _host_csr_rows_fwd(graph, x_users, x_items, users, n_layers):
    out = host_csr_rows(graph, x_users, x_items, users, n_layers)
    return out, (graph, users, x_users.shape)


def _host_csr_rows_bwd(n_layers, residuals, cotangents):
    graph, users, users_shape = residuals
    g_rows, g_items = cotangents
    out = (
        jax.ShapeDtypeStruct(users_shape, g_items.dtype),
        jax.ShapeDtypeStruct(g_items.shape, g_items.dtype),
    )
    g_users, g_items = jax.pure_callback(
        functools.partial(_host_rows_bwd, n_layers=n_layers),
        out, graph.indptr, graph.cols, graph.weights, graph.item_gram, users, g_rows, g_items,
        vmap_method="sequential",
    )  # fmt: skip
    # The graph is data (no cotangent), as are the user ids.
    return None, g_users, g_items, None


host_csr_rows.defvjp(_host_csr_rows_fwd, _host_csr_rows_bwd)
