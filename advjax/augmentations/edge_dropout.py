"""Graph augmentation for SGL: edge dropout on the user-item graph.

SGL (Wu et al., SIGIR 2021) contrasts two views of every node, each propagated over
a copy of the graph with some edges dropped. A dropped graph keeps the input's sparsity
structure (rows, cols, indptr) and sets the weights of dropped entries to 0, so its
shapes are static under jit and every propagation path (advjax.models.propagation)
takes it as it takes the full graph.

Each undirected edge is one Bernoulli draw, applied to both of its directed entries;
`edge_pairs` finds, once on the host, which user -> item entry each entry belongs to.
The kept graph is re-normalised with its own degrees, D'^-1/2 A' D'^-1/2, computed as
the input weight times sqrt(d/d') at both ends: at rate 0 that factor is exactly 1, so
the weights are the input's bit for bit, and the product of the two ends' factors is
commutative, so the operator stays exactly symmetric (the csr and host_csr paths'
backward passes rely on that).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from advjax.data.graph import Graph

__all__ = ["drop_edges", "edge_pairs", "mask_edges"]


def edge_pairs(graph: Graph, n_users: int) -> np.ndarray:
    """The undirected edge of each directed entry, on the host, once per graph.

    normalized_graph sorts entries by (row, col) with users first, so the E user -> item
    entries come first; an undirected edge's id is the index of its user -> item entry.

    Args:
      graph: a user-item graph over U + I nodes with both directions of every edge
        (normalized_graph); NumPy or device arrays.
      n_users: U.

    Returns:
      int32 [2E]: entry k's edge id in [0, E); the two entries of a pair share it.

    Raises:
      ValueError: an entry joins two users or two items, the user -> item entries do
        not come first, or an entry has no reverse entry.
    """
    rows, cols = np.asarray(graph.rows), np.asarray(graph.cols)
    n_entries = rows.shape[0]
    n_edges = n_entries // 2
    from_user = rows < n_users
    if np.any(from_user == (cols < n_users)):
        raise ValueError("not a bipartite user-item graph: an entry joins two users or two items")
    if n_entries % 2 or not (np.all(from_user[:n_edges]) and not np.any(from_user[n_edges:])):
        raise ValueError(
            f"expected the {n_edges} user -> item entries first, then as many item -> user "
            f"entries (normalized_graph's order); got {int(from_user.sum())} of {n_entries}"
        )
    # Sorted by (col, row), the j-th entry is the reverse of the j-th sorted by (row, col).
    reverse = np.lexsort((rows, cols))
    if not (np.array_equal(rows[reverse], cols) and np.array_equal(cols[reverse], rows)):
        raise ValueError("not symmetric: some entry (r, c) has no entry (c, r)")
    ids = np.where(from_user, np.arange(n_entries), reverse)
    return ids.astype(np.int32)


def mask_edges(graph: Graph, keep: ArrayLike) -> Graph:
    """The graph of the kept entries, re-normalised with the kept graph's degrees.

    Kept entry (r, c) gets 1 / sqrt(d'_r d'_c), d' the kept degrees, computed as
    w_rc * sqrt(d_r / d'_r) * sqrt(d_c / d'_c) from the input's normalised weight w_rc
    and full degrees d (so an unchanged graph keeps its weights exactly). Dropped
    entries get weight 0; a node with no kept entry has only zero weights, no NaN.

    Args:
      graph: the symmetric-normalised graph over N nodes with every entry present
        (normalized_graph); its degrees are read from indptr.
      keep: bool [2E], which entries stay; symmetric (an entry and its reverse alike)
        for a symmetric result.

    Returns:
      The graph with the same rows, cols and indptr, float32 weights [2E], and a
      [0, 0] item_gram (a dense Gram of the full graph would be wrong for this one).
    """
    keep = jnp.asarray(keep, bool)
    n_nodes = graph.indptr.shape[0] - 1
    degree = jnp.diff(graph.indptr).astype(jnp.float32)
    kept_degree = jax.ops.segment_sum(
        keep.astype(jnp.float32), graph.rows, num_segments=n_nodes, indices_are_sorted=True
    )
    factor = jnp.sqrt(degree / jnp.maximum(kept_degree, 1.0))
    weights = jnp.where(keep, graph.weights * (factor[graph.rows] * factor[graph.cols]), 0.0)
    return Graph(
        graph.rows,
        graph.cols,
        weights.astype(jnp.float32),
        graph.indptr,
        jnp.zeros((0, 0), jnp.float32),
    )


def drop_edges(key: jax.Array, graph: Graph, pairs: ArrayLike, rate: ArrayLike) -> Graph:
    """SGL's edge dropout: keep each undirected edge with probability 1 - rate.

    One Bernoulli draw per undirected edge, shared by its two directed entries, then
    the kept graph re-normalised symmetrically (mask_edges). Rate 0 returns the input's
    weights exactly; rate 1 drops every edge (all weights 0). Jit-able; a new key or
    rate does not retrace.

    Args:
      key: PRNG key; fold in the epoch and the view (SGL draws two graphs per epoch).
      graph: the normalised user-item graph (normalized_graph or prepare_graph).
      pairs: int32 [2E], edge_pairs(graph, n_users).
      rate: the drop probability in [0, 1], SGL's rho; may be traced.

    Returns:
      The dropped graph: same rows, cols and indptr, weights 0 on dropped entries,
      item_gram [0, 0].

    Raises:
      ValueError: pairs does not match the graph's entries, or a concrete rate is
        outside [0, 1].

    References:
      Wu et al., "Self-supervised Graph Learning for Recommendation", SIGIR 2021,
      Sec. 3.1.1, edge dropout (masks M1, M2 over the edge set). The authors' code
      (wujcan/SGL-Torch, create_adj_mat) keeps exactly int(E (1 - rate)) edges drawn
      without replacement; a Bernoulli draw per edge keeps that many on average.
    """
    pairs = jnp.asarray(pairs)
    if pairs.shape != graph.rows.shape:
        raise ValueError(
            f"pairs has shape {pairs.shape}, the graph's entries {graph.rows.shape}: "
            "pass edge_pairs(graph, n_users)"
        )
    if isinstance(rate, int | float) and not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    n_edges = graph.rows.shape[0] // 2
    # uniform is in [0, 1): rate 0 keeps every edge and rate 1 none, with no special case.
    keep_edge = jax.random.uniform(key, (n_edges,)) >= rate
    return mask_edges(graph, keep_edge[pairs])
