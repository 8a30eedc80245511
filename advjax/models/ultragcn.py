"""UltraGCN (Mao et al., CIKM 2021): plain ID embeddings trained with constraints that
stand in for infinitely many graph-convolution layers; no message passing at train or
test time.

Its objective is ``L_L + gamma ||theta||^2 / 2 + lambda L_I``. `--loss=ultragcn`
(advjax/losses/ultragcn.py) is the constraint loss L_L. This backbone adds the other
two terms to every step as its `extra_loss`, whatever the loss:

  L_I    the item-item constraint: for each positive (u, i) of the batch, the K
         (`--ultragcn_neighbors`) items j nearest to i in the co-occurrence graph
         G = R^T R by omega_ij = G_ij sqrt(g_i + 1) / g_i / sqrt(g_j + 1) (g_i = the
         row sums of G), each pulled towards u: -sum_j omega_ij log sigmoid(e_u . e_j).
         Like the public code, G keeps its diagonal (an item co-occurs with itself
         G_ii = d_i times), so an item is usually among its own neighbours.
  norm   ||theta||^2 / 2 over the whole user and item tables at every step, as the
         public code's ``norm_loss`` (every parameter, not the batch's rows).

Scale: the public code sums L_L and L_I over a batch and adds the norm once per batch;
our trainer averages per example, so each term here is the public one divided by the
batch size B (L_I by its mean, the norm penalty by gamma / B). `--ultragcn_lambda` and
`--ultragcn_gamma` thus mean what its configs' ``lambda`` and ``gamma`` mean at the same
batch size (advjax/losses/ultragcn.py says how the learning rate maps).

UltraGCN + InfoNCE / AdvInfoNCE (the paper's Table 6 rows, not defined there beyond
their names) is read as: the (Adv)InfoNCE loss over the same sampled negatives in place
of L_L, keeping lambda L_I and the norm penalty; the model then ranks by cosine, as
those losses train, and by dot product under its own loss (`scoring`).

Representations are the tables, initialised N(0, `--ultragcn_init_std`^2) (its
configs' ``initial_weight``). The neighbour table is built once from the training
split on the host (`item_neighbors`), in row blocks of G, never a dense I x I matrix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from advjax.data.interactions import Interactions
from advjax.models import mf
from advjax.models.backbone import Backbone
from advjax.scores import pair_scores
from advjax.settings import Setting, non_negative, positive

# Entries of G = R^T R (an upper bound: the co-occurrences counted with repetition)
# per row block of `item_neighbors`: bounds its host memory, whatever the catalogue.
BLOCK_ENTRIES = 1 << 24

# The losses whose model ranks by raw dot product (advjax/losses/ultragcn.py).
_DOT_LOSSES = ("ultragcn",)


def init_params(cfg, key: jax.Array, n_users: int, n_items: int) -> dict:
    """Tables {"user": [U, emb_dim], "item": [I, emb_dim]} drawn from
    N(0, ultragcn_init_std^2)."""
    key_user, key_item = jax.random.split(key)
    std = cfg.ultragcn_init_std
    return {
        "user": std * jax.random.normal(key_user, (n_users, cfg.emb_dim), jnp.float32),
        "item": std * jax.random.normal(key_item, (n_items, cfg.emb_dim), jnp.float32),
    }


def train_matrix(train: Interactions, n_items: int) -> sp.csr_matrix:
    """R: float64 [U, I] CSR with a 1 per training pair."""
    ones = np.ones(train.nnz, np.float64)
    return sp.csr_matrix((ones, train.items, train.indptr), shape=(train.n_users, n_items))


def _blocks(g: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of G whose summed g (>= their stored entries) stays
    within `budget`, one row at least."""
    bounds, start, n = [], 0, len(g)
    ends = np.cumsum(g)
    while start < n:
        base = ends[start - 1] if start else 0.0
        stop = max(start + 1, int(np.searchsorted(ends, base + budget, side="right")))
        bounds.append((start, min(stop, n)))
        start = stop
    return bounds


def _top_k_rows(block: sp.csr_matrix, k: int, first_row: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `block` ([b, I] CSR of omega), its k largest entries: (item int32
    [b, k], omega float64 [b, k]), ties to the smaller item id; rows with fewer than k
    entries are padded with their own item (row first_row + r) and weight 0."""
    n_rows = block.shape[0]
    rows = np.repeat(np.arange(n_rows), np.diff(block.indptr))
    order = np.lexsort((block.indices, -block.data, rows))
    rank = np.arange(len(order)) - block.indptr[rows[order]]
    keep = order[rank < k]
    items = np.repeat(np.arange(first_row, first_row + n_rows)[:, None], k, axis=1)
    weights = np.zeros((n_rows, k))
    kept_rows, kept_rank = rows[keep], rank[rank < k]
    items[kept_rows, kept_rank] = block.indices[keep]
    weights[kept_rows, kept_rank] = block.data[keep]
    return items.astype(np.int32), weights


def item_neighbors(
    train: Interactions, n_items: int, k: int, *, budget: int = BLOCK_ENTRIES
) -> tuple[np.ndarray, np.ndarray]:
    """Each item's k nearest items S(i) by UltraGCN's omega over G = R^T R.

    omega_ij = G_ij * sqrt(g_i + 1) / g_i * 1 / sqrt(g_j + 1), g = G's row sums,
    diagonal kept (as the public code's ``get_ii_constraint_mat`` with its default
    ``ii_diagonal_zero=False``). G is computed in row blocks of at most `budget`
    entries (SciPy's sparse product), each block's rows cut to their top k.

    Args:
      train: the training pairs.
      n_items: I.
      k: neighbours per item (>= 1).
      budget: entries of G per block (host memory), not the result.

    Returns:
      (neighbours int32 [I, k], omega float64 [I, k]), each row by descending omega,
      ties to the smaller item id. An item with fewer than k co-occurring items (or
      none: an item no user trained on, whose g is 0) is padded with itself at weight
      0, which adds nothing to L_I.

    References:
      K. Mao et al., `UltraGCN: Ultra Simplification of Graph Convolutional Networks
      for Recommendation <https://arxiv.org/abs/2110.15114>`_, CIKM 2021: the item-item
      graph's weights omega and its top-K neighbours (the public code's
      ``get_ii_constraint_mat``).
    """
    r = train_matrix(train, n_items)
    r_t = r.T.tocsr()
    g = np.asarray(r_t @ train.degrees().astype(np.float64)).reshape(-1)
    row_scale = np.divide(np.sqrt(g + 1), g, out=np.zeros_like(g), where=g > 0)
    col_scale = 1 / np.sqrt(g + 1)
    items, weights = [], []
    for start, stop in _blocks(g, budget):
        block = (r_t[start:stop] @ r).tocsr()
        rows = np.repeat(np.arange(start, stop), np.diff(block.indptr))
        block.data = block.data * row_scale[rows] * col_scale[block.indices]
        block_items, block_weights = _top_k_rows(block, k, start)
        items.append(block_items)
        weights.append(block_weights)
    return np.concatenate(items), np.concatenate(weights)


def item_item_loss(
    user_rows: jax.Array, item_table: jax.Array, neighbors: jax.Array, omega: jax.Array
) -> jax.Array:
    """UltraGCN's L_I per example: -sum_k omega[b, k] log sigmoid(<u_b, e_{n[b, k]}>).

    Args:
      user_rows: [B, d] layer-0 rows of the batch's users.
      item_table: [I, d] layer-0 item table.
      neighbors: int [B, K] the neighbours of each example's positive item.
      omega: [B, K] their weights.

    Returns:
      [B] the term of each example.

    References:
      K. Mao et al., UltraGCN, CIKM 2021: the item-item constraint loss L_I (the public
      code's ``cal_loss_I``).
    """
    return -jnp.sum(omega * jax.nn.log_sigmoid(pair_scores(user_rows, item_table, neighbors)), -1)


def squared_norm(params: dict) -> jax.Array:
    """[]: ||theta||^2 / 2 over the "user" and "item" tables."""
    return (jnp.sum(params["user"] ** 2) + jnp.sum(params["item"] ** 2)) / 2


def extra_loss(cfg, params: dict, users, pos, negs, data: dict) -> jax.Array:
    """lambda * mean_b L_I + gamma * ||theta||^2 / 2 / B (the module docstring's scale)."""
    item_item = item_item_loss(
        params["user"][users], params["item"], data["neighbors"][pos], data["omega"][pos]
    )
    n = users.shape[0]
    return cfg.ultragcn_lambda * jnp.mean(item_item) + cfg.ultragcn_gamma * squared_norm(params) / n


def _prepare(cfg, data) -> dict:
    neighbors, omega = item_neighbors(data.train, data.n_items, cfg.ultragcn_neighbors)
    return {"neighbors": neighbors, "omega": omega.astype(np.float32)}


def _scoring(cfg) -> str:
    return "dot" if cfg.loss in _DOT_LOSSES else "cosine"


BACKBONE = Backbone(
    name="ultragcn",
    init_params=init_params,
    represent=mf.represent,  # the tables, as MF's; a step's rows: the default gather
    label=lambda cfg: "UltraGCN",
    slug=lambda cfg: "ultragcn",
    prepare=_prepare,
    extra_loss=extra_loss,
    scoring=_scoring,
    settings=(
        Setting(
            "ultragcn_init_std",
            1e-4,
            "UltraGCN: std of the tables' normal initialisation (its initial_weight).",
            positive,
        ),
        Setting(
            "ultragcn_neighbors",
            10,
            "UltraGCN: K, the nearest items of each positive in its item-item term.",
            positive,
        ),
        Setting(
            "ultragcn_lambda",
            5e-4,
            "UltraGCN: weight lambda of the item-item term L_I (added to any --loss).",
            non_negative,
        ),
        Setting(
            "ultragcn_gamma",
            1e-4,
            "UltraGCN: weight gamma of ||tables||^2 / 2, divided by the batch size as "
            "the losses are averaged (added to any --loss).",
            non_negative,
        ),
    ),  # fmt: skip
)
