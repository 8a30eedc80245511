"""Training samples drawn on device, inside jit (SPEC §3).

Positives are user-balanced: an epoch has |O+| samples in shuffled order, sample k takes
user (k mod |U|) among the users that have training items, and one of that user's
training items uniformly. Negatives are uniform over the items the user has NOT trained
on, with replacement, drawn exactly (no rejection loop): with the user's sorted positives
p_0 < p_1 < ..., the r-th non-positive item is r + #{k : p_k - k <= r}, a count found by
a fixed number of bisection steps inside the user's CSR segment.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from advjax.data.splits import Interactions


class TrainPairs(NamedTuple):
    """Device-side training pairs (a pytree; pass as a jit argument).

    Attributes:
      indptr: int32 [U + 1] CSR offsets by user.
      items: int32 [nnz] items, ascending within each user.
      shifted: int32 [nnz] items[k] - (k - indptr[user of k]), non-decreasing per user.
      active_users: int32 [n_active] users with at least one training item.
    """

    indptr: jax.Array
    items: jax.Array
    shifted: jax.Array
    active_users: jax.Array


def make_train_pairs(train: Interactions) -> TrainPairs:
    """NumPy CSR training pairs -> TrainPairs of device arrays."""
    indptr = train.indptr.astype(np.int64)
    rank_in_user = np.arange(train.nnz, dtype=np.int64) - np.repeat(indptr[:-1], train.degrees())
    shifted = train.items.astype(np.int64) - rank_in_user
    active = np.flatnonzero(train.degrees() > 0)
    return TrainPairs(
        indptr=jnp.asarray(indptr, jnp.int32),
        items=jnp.asarray(train.items, jnp.int32),
        shifted=jnp.asarray(shifted, jnp.int32),
        active_users=jnp.asarray(active, jnp.int32),
    )


def bisection_steps(max_degree: int) -> int:
    """Steps that shrink any segment of up to max_degree entries to one position."""
    return max(1, math.ceil(math.log2(max_degree + 1)))


def epoch_positives(
    key: jax.Array, pairs: TrainPairs, *, n_samples: int, n_batches: int, batch_size: int
) -> tuple[jax.Array, jax.Array]:
    """One epoch of user-balanced (user, positive item) samples.

    Args:
      key: PRNG key of this epoch.
      pairs: training pairs.
      n_samples: |O+|, the number of training pairs.
      n_batches, batch_size: n_batches * batch_size <= n_samples samples are kept
        (the incomplete last batch is dropped).

    Returns:
      (users, items), each int32 [n_batches, batch_size].
    """
    key_order, key_item = jax.random.split(key)
    order = jax.random.permutation(key_order, n_samples)[: n_batches * batch_size]
    users = pairs.active_users[order % pairs.active_users.shape[0]]
    start = pairs.indptr[users]
    degree = pairs.indptr[users + 1] - start
    offset = jax.random.randint(key_item, users.shape, 0, degree)
    items = pairs.items[start + offset]
    return users.reshape(n_batches, batch_size), items.reshape(n_batches, batch_size)


def sample_negatives(
    key: jax.Array, pairs: TrainPairs, users: jax.Array, *, n_neg: int, n_items: int, steps: int
) -> jax.Array:
    """N negatives per user, uniform over the items the user has no training pair with.

    Args:
      key: PRNG key.
      pairs: training pairs.
      users: int [B] user ids.
      n_neg: N, negatives per user (with replacement).
      n_items: number of items.
      steps: bisection steps, bisection_steps(max training degree).

    Returns:
      int32 [B, N] item ids, none of them a training item of its row's user.
    """
    start = pairs.indptr[users][:, None]
    end = pairs.indptr[users + 1][:, None]
    n_free = jnp.maximum(n_items - (end - start), 1)
    rank = jax.random.randint(key, (users.shape[0], n_neg), 0, n_free)

    # Count the user's shifted values <= rank: find the first position in [start, end)
    # whose shifted value exceeds rank. Segments that have converged stay put.
    last = pairs.shifted.shape[0] - 1

    def step(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) // 2
        active = lo < hi
        below = pairs.shifted[jnp.minimum(mid, last)] <= rank
        return jnp.where(active & below, mid + 1, lo), jnp.where(active & ~below, mid, hi)

    bounds = (jnp.broadcast_to(start, rank.shape), jnp.broadcast_to(end, rank.shape))
    lo, _ = jax.lax.fori_loop(0, steps, step, bounds)
    return (rank + (lo - start)).astype(jnp.int32)
