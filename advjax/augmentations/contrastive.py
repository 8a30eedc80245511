"""The contrastive term the augmentations share: InfoNCE between two views of the
batch's distinct nodes, the others in the batch as negatives (SGL, XSimGCL)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from advjax.scores import l2_normalize
from advjax.settings import Setting, non_negative, positive

# Every augmentation's contrastive term: its weight and temperature.
CL_SETTINGS = (
    Setting("cl_weight", 0.2, "Augmentations: weight of the contrastive term.", non_negative),
    Setting("cl_tau", 0.15, "Augmentations: temperature of the contrastive term.", positive),
)


def distinct(ids: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(the distinct ids of `ids` [B], padded with 0 to B; mask [B] of the real ones)."""
    unique = jnp.unique(ids, size=ids.shape[0], fill_value=-1)
    return jnp.maximum(unique, 0), unique >= 0


def view_infonce(view_a: jax.Array, view_b: jax.Array, mask: jax.Array, tau) -> jax.Array:
    """Mean over the real rows of -log softmax_j(<a_i, b_j> / tau)[i], cosines.

    Args:
      view_a, view_b: [M, d] two views of the same M nodes (row i of each is node i).
      mask: bool [M], the rows that are real nodes (padding neither counts nor competes).
      tau: temperature.

    Returns:
      [] the mean over real rows (0 when there is none).
    """
    a, b = l2_normalize(view_a), l2_normalize(view_b)
    logits = (a @ b.T) / tau
    # A finite floor, not -inf: padded rows are masked out below, and an infinite value
    # there would still turn their (discarded) gradients into NaN.
    logits = jnp.where(mask[None, :], logits, -1e9)
    per_row = jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(logits)
    per_row = jnp.where(mask, per_row, 0.0)
    return jnp.sum(per_row) / jnp.maximum(jnp.sum(mask), 1)


def target_infonce(queries: jax.Array, keys: jax.Array, targets: jax.Array, tau) -> jax.Array:
    """Mean over rows of -log softmax_j(<q_b, k_j> / tau)[targets[b]], cosines: each
    query against every key, its target key the positive (NCL's structural contrast,
    keys = every node's layer-0 embedding; its prototype contrast, keys = centroids).

    Args:
      queries: [B, d]; keys: [M, d]; targets: int [B] in [0, M); tau: temperature.

    Returns:
      [].
    """
    logits = (l2_normalize(queries) @ l2_normalize(keys).T) / tau
    picked = jnp.take_along_axis(logits, targets[:, None], axis=1)[:, 0]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def nodes_infonce(view_a: jax.Array, view_b: jax.Array, ids: jax.Array, tau) -> jax.Array:
    """view_infonce over the distinct nodes among `ids` of two [N, d] views."""
    rows, mask = distinct(ids)
    return view_infonce(view_a[rows], view_b[rows], mask, tau)
