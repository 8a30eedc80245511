"""LightGCN propagation: mean of x, Ax, A^2x, ... over the normalised graph (SPEC §1).

Sparse-product paths, tested equal (tests/models/test_propagation.py):
  "bcoo": jax.experimental.sparse BCOO matmul, the reference path;
  "segment_sum": gather the source rows, scale, jax.ops.segment_sum by target row;
  "host_csr": all layers by SciPy's CSR product on the host in one jax.pure_callback
    (CPU only: XLA's CPU scatter is the bottleneck of the other two). The layer mean is
    a polynomial in the symmetric A, so its custom VJP applies it to the cotangent;
  "csr": jax.experimental.sparse CSR products on the device, with the same symmetric
    VJP. On CUDA they lower to cuSPARSE SpMM (BCOO lowers to XLA gathers and
    scatter-adds unless jax_bcoo_cusparse_lowering is set, and its autodiff transpose
    scatters into unsorted rows); elsewhere to the same XLA scatter as BCOO.
"auto" picks per platform from DEFAULT_METHOD, which records what
benchmarks/propagation.py measured (see WORKSPACE.md).

A training step needs every item's final embedding but only its batch's users:
`propagate_rows` computes just those, in the bipartite form (below), on the host for
"host_csr" and by full propagation plus a row gather for the device paths.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from jax.experimental import sparse

from advjax.data.graph import Graph

METHODS = ("bcoo", "segment_sum", "host_csr", "csr")

# Faster path per jax.default_backend(), by benchmarks/propagation.py (WORKSPACE.md).
DEFAULT_METHOD = {"cpu": "host_csr", "gpu": "bcoo"}


def resolve_method(method: str) -> str:
    """Maps "auto" to the platform's faster path; validates explicit names."""
    if method == "auto":
        return DEFAULT_METHOD.get(jax.default_backend(), "bcoo")
    if method not in METHODS:
        raise ValueError(f"unknown propagation method {method!r}; choose auto or one of {METHODS}")
    return method


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


def _host_layer_mean(indptr, cols, weights, x, *, n_layers: int) -> np.ndarray:
    n = x.shape[0]
    adj = _HostCSR(indptr, cols, weights, (n, n))
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


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _host_csr_rows(graph: Graph, gram, x_users, x_items, users, n_layers: int):
    out = (
        jax.ShapeDtypeStruct((users.shape[0], x_users.shape[1]), x_users.dtype),
        jax.ShapeDtypeStruct(x_items.shape, x_items.dtype),
    )
    return jax.pure_callback(
        functools.partial(_host_rows_fwd, n_layers=n_layers),
        out, graph.indptr, graph.cols, graph.weights, gram, x_users, x_items, users,
        vmap_method="sequential",
    )  # fmt: skip


def _host_csr_rows_fwd(graph, gram, x_users, x_items, users, n_layers):
    out = _host_csr_rows(graph, gram, x_users, x_items, users, n_layers)
    return out, (graph, gram, users, x_users.shape)


def _host_csr_rows_bwd(n_layers, residuals, cotangents):
    graph, gram, users, users_shape = residuals
    g_rows, g_items = cotangents
    out = (
        jax.ShapeDtypeStruct(users_shape, g_items.dtype),
        jax.ShapeDtypeStruct(g_items.shape, g_items.dtype),
    )
    g_users, g_items = jax.pure_callback(
        functools.partial(_host_rows_bwd, n_layers=n_layers),
        out, graph.indptr, graph.cols, graph.weights, gram, users, g_rows, g_items,
        vmap_method="sequential",
    )  # fmt: skip
    return None, None, g_users, g_items, None


_host_csr_rows.defvjp(_host_csr_rows_fwd, _host_csr_rows_bwd)


def spmm(graph: Graph, x: jax.Array, method: str) -> jax.Array:
    """One sparse product A @ x on device ("host_csr" runs whole propagations instead).

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


def propagate_rows(
    x_users: jax.Array,
    x_items: jax.Array,
    graph: Graph,
    users: jax.Array,
    n_layers: int,
    method: str = "auto",
    gram: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The layer mean's rows of some users and of every item (a training step's need).

    Equal to propagating all nodes and taking rows `users`; "host_csr" computes only
    what those rows need, in the bipartite form (3 E edge passes per direction instead
    of 2 L E for L = 2), on the host.

    Args:
      x_users: [U, d] layer-0 user embeddings.
      x_items: [I, d] layer-0 item embeddings.
      graph: normalised adjacency over U + I nodes.
      users: int [B] user ids (repeats allowed).
      n_layers: L >= 0.
      method: "auto" or one of METHODS.
      gram: optional dense item_gram(graph) [I, I]; "host_csr" then applies G as one
        dense product instead of two sparse ones. Ignored by the device paths.

    Returns:
      (user rows [B, d], item embeddings [I, d]).
    """
    if n_layers == 0:
        return x_users[users], x_items
    method = resolve_method(method)
    if method == "host_csr":
        if gram is None:
            gram = jnp.zeros((0, 0), x_items.dtype)
        return _host_csr_rows(graph, gram, x_users, x_items, users, n_layers)
    out = propagate(jnp.concatenate([x_users, x_items], axis=0), graph, n_layers, method)
    n_users = x_users.shape[0]
    return out[:n_users][users], out[n_users:]
