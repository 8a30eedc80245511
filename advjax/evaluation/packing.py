"""The padded user batches of an evaluator: packed once in NumPy, unpacked on device.

When an evaluator is built, the evaluated users are laid out in fixed-size batches
(padding rows flagged invalid) and, per batch, the (row, item) pairs of the targets and
of the excluded items are padded to the widest batch with pairs that point at a dummy
column ``n_items``. On device, :func:`_scatter_mask` turns a batch's pairs back into a
[batch, n_items] mask, the dummy column sliced off after the scatter, so no dense
[n_users, n_items] matrix ever exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from advjax.data.splits import Interactions


class _Batches(NamedTuple):
    """Device arrays describing the padded user batches of one evaluator.

    Attributes:
      users: int32 [n_batches, batch]; padding rows repeat user 0.
      valid: bool [n_batches, batch]; False on padding rows.
      target_rows, target_items: int32 [n_batches, n_target_pairs]; row within the
        batch and item id of each target; padding pairs have item ``n_items``.
      exclude_rows, exclude_items: int32 [n_batches, n_exclude_pairs]; same for the
        excluded (known positive) items.
    """

    users: jax.Array
    valid: jax.Array
    target_rows: jax.Array
    target_items: jax.Array
    exclude_rows: jax.Array
    exclude_items: jax.Array


def _user_pairs(interactions: Interactions, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Expands the CSR rows of ``users`` into (position in ``users``, item) pairs.

    Args:
      interactions: CSR pairs over all users.
      users: int [n] user ids.

    Returns:
      (positions int64 [nnz], items int32 [nnz]) ordered by position.
    """
    starts = interactions.indptr[users]
    degrees = interactions.indptr[users + 1] - starts
    positions = np.repeat(np.arange(len(users)), degrees)
    # Offset of each pair inside its user's row: a global counter minus the row start.
    offsets = np.arange(degrees.sum()) - np.repeat(np.cumsum(degrees) - degrees, degrees)
    items = interactions.items[np.repeat(starts, degrees) + offsets]
    return positions, items.astype(np.int32)


def _pack_pairs(
    positions: np.ndarray, items: np.ndarray, batch_size: int, n_batches: int, pad_item: int
) -> tuple[np.ndarray, np.ndarray]:
    """Groups (position, item) pairs by batch, padded to the widest batch.

    Args:
      positions: int [nnz] position of each pair's user among the evaluated users.
      items: int [nnz] item ids.
      batch_size: users per batch.
      n_batches: number of batches.
      pad_item: item id of padding pairs (a dummy column past the last item).

    Returns:
      (rows, items), both int32 [n_batches, width]; rows are positions within the batch.
    """
    batch = positions // batch_size
    order = np.argsort(batch, kind="stable")
    batch, positions, items = batch[order], positions[order], items[order]
    counts = np.bincount(batch, minlength=n_batches)
    width = max(int(counts.max(initial=0)), 1)
    slots = np.arange(len(batch)) - np.repeat(np.cumsum(counts) - counts, counts)
    rows = np.zeros((n_batches, width), np.int32)
    cols = np.full((n_batches, width), pad_item, np.int32)
    rows[batch, slots] = positions % batch_size
    cols[batch, slots] = items
    return rows, cols


def _user_batches(users: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Lays the evaluated users out in the fewest batches of equal size up to ``batch_size``,
    which keeps the padding under one row per batch.

    Args:
      users: int32 [n_evaluated] user ids.
      batch_size: most users per batch.

    Returns:
      (users int32 [n_batches, batch], valid bool [n_batches, batch]); padding rows hold
      user 0 and are not valid. At least one batch of at least one row.
    """
    n_batches = max(-(-len(users) // batch_size), 1)
    batch_size = max(-(-len(users) // n_batches), 1)
    padded = np.zeros(n_batches * batch_size, np.int32)
    padded[: len(users)] = users
    valid = np.arange(n_batches * batch_size) < len(users)
    return padded.reshape(n_batches, batch_size), valid.reshape(n_batches, batch_size)


def _pack_batches(
    targets: Interactions,
    exclusions: Sequence[Interactions],
    users: np.ndarray,
    batch_size: int,
    n_items: int,
) -> _Batches:
    """The padded batches of one target set (see the module doc).

    Args:
      targets: the pairs to retrieve.
      exclusions: known positives removed from every ranking.
      users: int32 [n_evaluated] ascending ids of the evaluated users.
      batch_size: most users per batch (see :func:`_user_batches`).
      n_items: number of items; padding pairs point at item ``n_items``.

    Returns:
      The batches; their exclusion pairs hold none of a user's own targets.
    """
    batch_users, valid = _user_batches(users, batch_size)
    n_batches, batch_size = batch_users.shape
    target_positions, target_ids = _user_pairs(targets, users)
    target_rows, target_items = _pack_pairs(
        target_positions, target_ids, batch_size, n_batches, n_items
    )
    pairs = [_user_pairs(source, users) for source in exclusions]
    positions = np.concatenate([p for p, _ in pairs] + [np.zeros(0, np.int64)])
    items = np.concatenate([i for _, i in pairs] + [np.zeros(0, np.int32)])
    # A user's own targets are never excluded (SPEC §4): drop them from the pairs here,
    # so a path may write the exclusions straight into the scores.
    own = np.isin(positions * (n_items + 1) + items, target_positions * (n_items + 1) + target_ids)
    positions, items = positions[~own], items[~own]
    exclude_rows, exclude_items = _pack_pairs(positions, items, batch_size, n_batches, n_items)
    return _Batches(
        users=jnp.asarray(batch_users),
        valid=jnp.asarray(valid),
        target_rows=jnp.asarray(target_rows),
        target_items=jnp.asarray(target_items),
        exclude_rows=jnp.asarray(exclude_rows),
        exclude_items=jnp.asarray(exclude_items),
    )


def _candidate_mask(not_candidate: np.ndarray | None, n_items: int) -> jax.Array:
    """bool [n_items] True on the items excluded for every user, or bool [0] when there
    are none (a static "no such items": the metric paths skip the mask)."""
    mask = np.zeros(n_items, bool)
    if not_candidate is not None:
        mask[np.asarray(not_candidate)] = True
    if not mask.any():
        mask = np.zeros(0, bool)
    return jnp.asarray(mask)


def _pad_batches(batches: _Batches, n_batches: int, n_items: int) -> _Batches:
    """`batches` with empty ones appended up to `n_batches` (no valid row, every pair
    pointing at the dummy item n_items)."""
    extra = n_batches - batches.users.shape[0]
    if not extra:
        return batches

    def pad(x, value):
        return jnp.concatenate([x, jnp.full((extra, *x.shape[1:]), value, x.dtype)])

    return _Batches(
        users=pad(batches.users, 0), valid=pad(batches.valid, False),
        target_rows=pad(batches.target_rows, 0), target_items=pad(batches.target_items, n_items),
        exclude_rows=pad(batches.exclude_rows, 0),
        exclude_items=pad(batches.exclude_items, n_items),
    )  # fmt: skip


def _scatter_mask(rows: jax.Array, items: jax.Array, batch_size: int, n_items: int) -> jax.Array:
    """bool [batch_size, n_items] with True at each (row, item); padding hits column n_items."""
    mask = jnp.zeros((batch_size, n_items + 1), bool).at[rows, items].set(True)
    return mask[:, :n_items]
