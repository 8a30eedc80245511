"""Diagnostics of the paper's analysis (SPEC §7), on a fixed sample of training pairs.

Pure and jit-able except `make_sample`, which builds the sample once on the host. None
of these values is ever used for training or for choosing anything.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from advjax.data import SplitData
from advjax.losses import hardness_delta
from advjax.sampling import TrainPairs, bisection_steps, epoch_positives, sample_negatives

# Rows of the fixed sample: enough for stable means, cheap next to an evaluation.
SAMPLE_SIZE = 1024


class Sample(NamedTuple):
    """A fixed batch of training positives with their negatives (a pytree).

    Attributes:
      users: int32 [S]; pos: int32 [S]; negs: int32 [S, N].
      user_set: int32 [K] the distinct users among `users`, for the user uniformity.
      items: int32 [M] distinct items for the item uniformity (at most S).
      neg_popularity: float32 [S, N] log(1 + training degree) of each negative.
      false_negative: bool [S, N] whether the negative is a held-out test positive of
        its user (any test split).
    """

    users: jax.Array
    pos: jax.Array
    negs: jax.Array
    user_set: jax.Array
    items: jax.Array
    neg_popularity: jax.Array
    false_negative: jax.Array


def make_sample(data: SplitData, pairs: TrainPairs, key: jax.Array, *, n_neg: int) -> Sample:
    """SAMPLE_SIZE user-balanced training positives (fewer on tiny data), each with
    n_neg negatives drawn as training draws them, from `key`."""
    size = min(SAMPLE_SIZE, data.train.nnz)
    key_pos, key_neg, key_items = jax.random.split(key, 3)
    users, pos = epoch_positives(key_pos, pairs, n_samples=size, n_batches=1, batch_size=size)
    users, pos = users[0], pos[0]
    steps = bisection_steps(int(data.train.degrees().max()))
    negs = sample_negatives(key_neg, pairs, users, n_neg=n_neg, n_items=data.n_items, steps=steps)
    items = jax.random.permutation(key_items, data.n_items)[:size]
    degree = data.train.item_degrees(data.n_items)
    held_out = np.zeros(0, np.int64)
    for split in data.tests.values():
        keys = np.repeat(np.arange(split.n_users), split.degrees()) * data.n_items + split.items
        held_out = np.union1d(held_out, keys)
    users_np, negs_np = np.asarray(users), np.asarray(negs)
    false_negative = np.isin(users_np[:, None].astype(np.int64) * data.n_items + negs_np, held_out)
    return Sample(
        users=users,
        pos=pos,
        negs=negs,
        user_set=jnp.asarray(np.unique(users_np), jnp.int32),
        items=jnp.asarray(items, jnp.int32),
        neg_popularity=jnp.asarray(np.log1p(degree[negs_np]), jnp.float32),
        false_negative=jnp.asarray(false_negative),
    )


def alignment(user_hat: jax.Array, item_hat: jax.Array) -> jax.Array:
    """Wang & Isola's alignment: mean ||f(u) - f(i)||^2 over paired unit rows [S, d]."""
    return jnp.mean(jnp.sum((user_hat - item_hat) ** 2, axis=-1))


def uniformity(x_hat: jax.Array) -> jax.Array:
    """Wang & Isola's uniformity: log mean over distinct pairs of exp(-2 ||x - y||^2),
    for unit rows x_hat [M, d], M >= 2."""
    n = x_hat.shape[0]
    sq = jnp.maximum(2.0 - 2.0 * (x_hat @ x_hat.T), 0.0)  # ||x - y||^2 of unit vectors
    off_diagonal = ~jnp.eye(n, dtype=bool)
    total = jnp.sum(jnp.where(off_diagonal, jnp.exp(-2.0 * sq), 0.0))
    return jnp.log(total / (n * (n - 1)))


def _correlation(x: jax.Array, y: jax.Array) -> jax.Array:
    x, y = x - jnp.mean(x), y - jnp.mean(y)
    return jnp.sum(x * y) / jnp.sqrt(jnp.sum(x * x) * jnp.sum(y * y))


def hardness_stats(logits: jax.Array, sample: Sample) -> dict[str, jax.Array]:
    """What the hardness distribution over each row's negatives looks like.

    Args:
      logits: [S, N] hardness logits of sample.negs; P = softmax over each row.
      sample: the fixed sample.

    Returns:
      "kl_u_p": mean KL(U || P) (the divergence the trainer logs), "kl_p_u": mean
      KL(P || U) (the paper's public code logs this one), "delta_std": the spread of
      delta = log(N p), "pop_corr": Pearson correlation of delta with the negative's
      log(1 + training degree) (NaN while delta is constant), "fn_rate": among
      negatives that are held-out test positives of their user, the share with
      delta < 0 (Fig. 6; NaN without any).
    """
    delta = hardness_delta(logits)
    p = jax.nn.softmax(logits, axis=-1)
    is_fn = sample.false_negative
    n_fn = jnp.sum(is_fn)
    return {
        "kl_u_p": jnp.mean(-jnp.mean(delta, axis=-1)),
        "kl_p_u": jnp.mean(jnp.sum(p * delta, axis=-1)),
        "delta_std": jnp.std(delta),
        "pop_corr": _correlation(delta.ravel(), sample.neg_popularity.ravel()),
        "fn_rate": jnp.where(n_fn > 0, jnp.sum(is_fn & (delta < 0)) / n_fn, jnp.nan),
    }
