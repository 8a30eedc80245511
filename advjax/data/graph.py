"""The symmetric-normalised user-item graph LightGCN propagates over (SPEC §1)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from advjax.data.splits import Interactions


class Graph(NamedTuple):
    """D^-1/2 A D^-1/2 of the bipartite graph, as COO edges sorted by (row, col).

    Nodes 0..n_users-1 are users, n_users..n_users+n_items-1 are items. Every training
    pair (u, i) gives two edges, u -> i and i -> u, of weight 1 / sqrt(deg_u * deg_i).
    A pytree of arrays: pass it to jitted functions as an argument.

    Attributes:
      rows: int32 [2E], target node of each edge (sorted ascending).
      cols: int32 [2E], source node of each edge.
      weights: float32 [2E].
      indptr: int32 [n_nodes + 1], CSR row offsets into the edge arrays.
      item_gram: float32 [I, I], the item block R^T R of A^2, which the host path
        applies as one dense product where that pays off; else [0, 0], as built here
        (advjax.models.propagation.prepare_graph attaches it).
    """

    rows: np.ndarray
    cols: np.ndarray
    weights: np.ndarray
    indptr: np.ndarray
    item_gram: np.ndarray = np.zeros((0, 0), np.float32)


def normalized_graph(train: Interactions, n_items: int) -> Graph:
    """Builds the normalised adjacency from training pairs.

    Args:
      train: training pairs; train.n_users users.
      n_items: number of items.

    Returns:
      Graph over train.n_users + n_items nodes, 2 * train.nnz edges.
    """
    n_users = train.n_users
    users = train.users().astype(np.int64)
    items = train.items.astype(np.int64) + n_users
    deg = np.bincount(np.concatenate([users, items]), minlength=n_users + n_items)
    rows = np.concatenate([users, items])
    cols = np.concatenate([items, users])
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    weights = 1.0 / np.sqrt(deg[rows].astype(np.float64) * deg[cols])
    indptr = np.searchsorted(rows, np.arange(n_users + n_items + 1))
    return Graph(
        rows.astype(np.int32),
        cols.astype(np.int32),
        weights.astype(np.float32),
        indptr.astype(np.int32),
    )


def empty_graph() -> Graph:
    """A graph with no edges, for backbones that never propagate (MF)."""
    return Graph(
        np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(1, np.int32)
    )
