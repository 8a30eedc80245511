"""All-ranking top-K metrics: Recall, NDCG, hit ratio and precision (SPEC §4).

Pure and jit-able (``ks``/``k`` are static); no I/O. The evaluators in
``advjax.evaluation`` call :func:`per_user_topk_metrics` on padded user batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

METRIC_NAMES = ("recall", "ndcg", "hit_ratio", "precision")


def _check_inputs(
    scores: jax.Array, targets: jax.Array, exclude: jax.Array, ks: Sequence[int]
) -> tuple[int, ...]:
    """Validates shapes eagerly (shapes are static, so this works under jit too)."""
    if scores.ndim != 2:
        raise ValueError(f"scores must be [n_users, n_items], got shape {scores.shape}")
    if targets.shape != scores.shape or exclude.shape != scores.shape:
        raise ValueError(
            f"scores {scores.shape}, targets {targets.shape} and exclude {exclude.shape}"
            " must have the same shape"
        )
    ks = tuple(int(k) for k in ks)
    n_items = scores.shape[1]
    if not ks or any(k < 1 or k > n_items for k in ks):
        raise ValueError(f"every k must be in [1, n_items={n_items}], got ks={ks}")
    return ks


def select_top_k(scores: ArrayLike, targets: ArrayLike, exclude: ArrayLike, k: int) -> jax.Array:
    """Returns each user's top-``k`` items after exclusion.

    The effective exclusion is ``exclude & ~targets``: a user's own targets are never
    excluded (SPEC §4), so a target that also sits in train stays rankable, and an
    evaluated set that equals the "other" test set is not hidden. Excluded items get
    ``-inf``; they can reach the top ``k`` only when fewer than ``k`` items remain,
    and they are never targets, so they never count as hits. Ties go to the lower
    item index (``jax.lax.top_k``'s order).

    Args:
      scores: float [n_users, n_items].
      targets: bool [n_users, n_items], the items being evaluated.
      exclude: bool [n_users, n_items], known positives to drop from the ranking.
      k: list length (static).

    Returns:
      int32 [n_users, k] item ids, best first.
    """
    scores, targets, exclude = jnp.asarray(scores), jnp.asarray(targets), jnp.asarray(exclude)
    (k,) = _check_inputs(scores, targets, exclude, (k,))
    drop = exclude.astype(bool) & ~targets.astype(bool)
    masked = jnp.where(drop, -jnp.inf, scores)
    return jax.lax.top_k(masked, k)[1]


def per_user_topk_metrics(
    scores: ArrayLike, targets: ArrayLike, exclude: ArrayLike, ks: Sequence[int] = (20,)
) -> dict[str, jax.Array]:
    """Per-user top-K metrics for several K from a single ``top_k`` at ``max(ks)``.

    Binary gains: DCG@K = sum over hit ranks r <= K (1-based) of 1 / log2(r + 1);
    IDCG@K is the DCG of min(|targets|, K) hits at ranks 1, 2, ....
    A user without targets gets 0 for every metric; callers average over users with
    targets (see :func:`topk_metrics`).

    Args:
      scores: float [n_users, n_items].
      targets: bool [n_users, n_items].
      exclude: bool [n_users, n_items]; ``exclude & ~targets`` is masked out.
      ks: list lengths (static), each in [1, n_items].

    Returns:
      ``{"recall@K", "ndcg@K", "hit_ratio@K", "precision@K"}`` for each K in ``ks``,
      each float32 [n_users].

    References:
      Zhang et al., "Empowering Collaborative Filtering with Principled Adversarial
      Contrastive Loss", NeurIPS 2023, evaluation protocol (all-ranking top-K).
    """
    scores, targets, exclude = jnp.asarray(scores), jnp.asarray(targets), jnp.asarray(exclude)
    ks = _check_inputs(scores, targets, exclude, ks)
    targets = targets.astype(bool)
    k_max = max(ks)
    top = select_top_k(scores, targets, exclude, k_max)
    hits = jnp.take_along_axis(targets, top, axis=1)  # bool [U, k_max]
    n_targets = targets.sum(axis=1, dtype=jnp.int32)
    # Rank r (1-based) is worth 1 / log2(r + 1). ideal_dcg[j]: DCG of j hits at ranks 1..j.
    discounts = 1.0 / np.log2(np.arange(2, k_max + 2))
    ideal_dcg = np.concatenate([[1.0], np.cumsum(discounts)]).astype(np.float32)  # [0] unused

    # DCG accumulates rank by rank in a fixed order, not as a reduction: XLA may order
    # a float reduction differently per batch shape, and per-user values must not
    # depend on the evaluator's batch size. Hit counts are integers, exact any way.
    dcg = jnp.zeros(scores.shape[:1], jnp.float32)
    out = {}
    for r in range(k_max):
        dcg = dcg + jnp.where(hits[:, r], np.float32(discounts[r]), np.float32(0.0))
        k = r + 1
        if k in ks:
            n_hits = hits[:, :k].sum(axis=1, dtype=jnp.int32)
            idcg = jnp.asarray(ideal_dcg)[jnp.minimum(n_targets, k)]  # 1.0 without targets
            out[f"recall@{k}"] = n_hits / jnp.maximum(n_targets, 1).astype(jnp.float32)
            out[f"ndcg@{k}"] = dcg / idcg
            out[f"hit_ratio@{k}"] = (n_hits > 0).astype(jnp.float32)
            out[f"precision@{k}"] = n_hits.astype(jnp.float32) / k
    return {f"{name}@{k}": out[f"{name}@{k}"] for k in ks for name in METRIC_NAMES}


def topk_metrics(
    scores: ArrayLike, targets: ArrayLike, exclude: ArrayLike, k: int = 20
) -> dict[str, jax.Array]:
    """Top-K metrics averaged over the users with at least one target.

    Args:
      scores: float [n_users, n_items].
      targets: bool [n_users, n_items].
      exclude: bool [n_users, n_items]; a user's own targets are never excluded.
      k: list length (static), in [1, n_items].

    Returns:
      ``{"recall", "ndcg", "hit_ratio", "precision"}``, each a float32 scalar: the
      plain mean over users with targets (NaN when no user has one).
    """
    per_user = per_user_topk_metrics(scores, targets, exclude, (k,))
    evaluated = jnp.asarray(targets).astype(bool).any(axis=1)
    n_evaluated = evaluated.sum()
    return {
        name: jnp.where(evaluated, per_user[f"{name}@{k}"], 0.0).sum() / n_evaluated
        for name in METRIC_NAMES
    }
