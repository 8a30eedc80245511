"""The metric paths of an evaluator on one device, and the choice between them.

Three interchangeable paths (chosen statically per evaluator, see :func:`_pick_method`):
"top_k" runs ``jax.lax.top_k`` over each batch's scores, the reference; "rank" counts
each target's rank directly from the padded target pairs
(:func:`advjax.metrics.per_user_rank_metrics`), which is much cheaper on CPU when users
have few targets; "chunked" scores items x users (the faster GEMM layout on CPU),
writes the exclusions into the scores, and finds the exact top K through chunk maxima
(:func:`advjax.metrics.chunked_top_k`), for large catalogues. All give the same
per-user metrics (the DCG sums may differ in the last float bit).

One jitted call maps over all of an evaluator's batches (:mod:`.packing`), rebuilding
each batch's masks on device, so memory is bounded by one [batch, n_items] block. The
arrays are arguments, never closed-over constants (XLA would constant-fold them and
compile for minutes).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from advjax.evaluation.packing import _Batches, _scatter_mask
from advjax.metrics import (
    chunked_top_k,
    per_user_metrics_from_ranks,
    per_user_rank_metrics,
    per_user_topk_metrics,
    select_top_k,
)
from advjax.models.trained import TrainedModel

METHODS = ("rank", "top_k", "chunked")
# "auto" takes the rank path when the padded target pairs of a batch are at most this
# many per batch row, and their [pairs, n_items] comparison block stays this small.
RANK_MAX_PAIRS_PER_ROW = 4
RANK_MAX_ELEMENTS = 64 * 2**20
# Items per chunk of the "chunked" path; "auto" takes it for catalogues of at least
# CHUNKED_MIN_ITEMS items (smaller ones are cheap either way).
CHUNK = 64
CHUNKED_MIN_ITEMS = 8192


def _pick_method(batches: _Batches, n_items: int) -> str:
    """The path "auto" takes for these batches: "rank" when their padded target pairs
    number at most ``RANK_MAX_PAIRS_PER_ROW`` per batch row and at most
    ``RANK_MAX_ELEMENTS / n_items``, else "chunked" for at least ``CHUNKED_MIN_ITEMS``
    items, else "top_k"."""
    width, batch_size = batches.target_items.shape[1], batches.users.shape[1]
    small = width <= RANK_MAX_PAIRS_PER_ROW * batch_size
    if small and width * n_items <= RANK_MAX_ELEMENTS:
        return "rank"
    return "chunked" if n_items >= CHUNKED_MIN_ITEMS else "top_k"


def _batch_inputs(
    user_hat: jax.Array,
    item_hat: jax.Array,
    not_candidate: jax.Array,
    batch: _Batches,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Scores, targets and exclusions of one batch, all [batch, n_items]."""
    batch_size, n_items = batch.users.shape[0], item_hat.shape[0]
    # HIGHEST: accelerators would otherwise use reduced-precision matmuls and reorder
    # near-ties differently from the CPU reference.
    scores = jnp.matmul(user_hat[batch.users], item_hat.T, precision=jax.lax.Precision.HIGHEST)
    targets = _scatter_mask(batch.target_rows, batch.target_items, batch_size, n_items)
    exclude = _scatter_mask(batch.exclude_rows, batch.exclude_items, batch_size, n_items)
    if not_candidate.shape[0]:
        exclude = exclude | not_candidate[None, :]
    return scores, targets, exclude


def _metrics_of_top(
    top: jax.Array, batch: _Batches, ks: tuple[int, ...], n_items: int
) -> dict[str, jax.Array]:
    """Per-user metrics of one batch from its rows' top lists.

    Args:
      top: int [batch, max(ks)] each row's best items, best first.
      batch: the batch whose targets are looked up in ``top``.
      ks: list lengths.
      n_items: number of items; target pairs with item ``n_items`` are padding.

    Returns:
      Each metric float32 [batch], padding rows included.
    """
    k_max = max(ks)
    match = top[batch.target_rows] == batch.target_items[:, None]  # [n_pairs, K]
    ranks = jnp.where(match.any(axis=1), jnp.argmax(match, axis=1), k_max)
    real = batch.target_items < n_items
    return per_user_metrics_from_ranks(
        ranks, real, batch.target_rows, n_users=batch.users.shape[0], ks=ks
    )


def _valid_only(metrics: dict[str, jax.Array], batch: _Batches) -> dict[str, jax.Array]:
    """``metrics`` (each [batch]) with zeros on the batch's padding rows."""
    return {name: jnp.where(batch.valid, value, 0.0) for name, value in metrics.items()}


def _chunked_metrics(
    user_hat: jax.Array,
    item_hat: jax.Array,
    not_candidate: jax.Array,
    batch: _Batches,
    ks: tuple[int, ...],
    chunk: int,
) -> dict[str, jax.Array]:
    """The "chunked" path's per-user metrics of one batch (see the module doc)."""
    batch_size, n_items = batch.users.shape[0], item_hat.shape[0]
    scores_t = jnp.matmul(
        item_hat, user_hat[batch.users].T, precision=jax.lax.Precision.HIGHEST
    )  # [n_items, batch]
    # Flat indices: XLA's CPU scatter runs several times faster on them than on 2-D
    # ones. Padding pairs (item n_items) fall outside the block and are dropped.
    targets = batch.target_items * batch_size + batch.target_rows
    if not_candidate.shape[0]:
        # Blocked for every user, except as the user's own target (SPEC §4).
        kept = scores_t.reshape(-1).at[targets].get(mode="fill", fill_value=-jnp.inf)
        scores_t = jnp.where(not_candidate[:, None], -jnp.inf, scores_t)
        scores_t = scores_t.reshape(-1).at[targets].set(kept, mode="drop")
    # The exclusion pairs hold no target (packing._pack_batches removed them).
    excluded = batch.exclude_items * batch_size + batch.exclude_rows
    scores_t = scores_t.reshape(-1).at[excluded].set(-jnp.inf, mode="drop")
    top = chunked_top_k(scores_t.reshape(n_items, batch_size), max(ks), chunk)  # [batch, K]
    return _metrics_of_top(top, batch, ks, n_items)


def _batch_metrics(
    user_hat: jax.Array,
    item_hat: jax.Array,
    not_candidate: jax.Array,
    batch: _Batches,
    ks: tuple[int, ...],
    method: str = "top_k",
    chunk: int = CHUNK,
) -> dict[str, jax.Array]:
    """Per-user metrics of one batch: each float32 [batch], zero on padding rows."""
    n_chunks = -(-item_hat.shape[0] // chunk)
    if method == "chunked" and n_chunks >= max(ks):
        return _valid_only(
            _chunked_metrics(user_hat, item_hat, not_candidate, batch, ks, chunk), batch
        )
    if method == "chunked":
        method = "top_k"  # fewer chunks than K: the plain top_k is cheap anyway
    scores, targets, exclude = _batch_inputs(user_hat, item_hat, not_candidate, batch)
    if method == "rank":
        metrics = per_user_rank_metrics(
            scores, targets, exclude, batch.target_rows, batch.target_items, ks
        )
    elif method == "top_k":
        metrics = per_user_topk_metrics(scores, targets, exclude, ks)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return _valid_only(metrics, batch)


@functools.partial(jax.jit, static_argnames=("ks", "method", "chunk"))
def _evaluate_batches(
    model: TrainedModel,
    not_candidate: jax.Array,
    batches: _Batches,
    ks: tuple[int, ...],
    method: str = "top_k",
    chunk: int = CHUNK,
) -> dict[str, jax.Array]:
    """Per-user metrics for all batches: each float32 [n_batches, batch]."""
    user_hat, item_hat = model.score_vectors()
    return jax.lax.map(
        lambda batch: _batch_metrics(user_hat, item_hat, not_candidate, batch, ks, method, chunk),
        batches,
    )


@functools.partial(jax.jit, static_argnames=("k",))
def _top_items_batches(
    model: TrainedModel,
    not_candidate: jax.Array,
    batches: _Batches,
    k: int,
) -> jax.Array:
    """int32 [n_batches, batch, k]: each user's ranked list after exclusion."""
    user_hat, item_hat = model.score_vectors()

    def top_items(batch):
        return select_top_k(*_batch_inputs(user_hat, item_hat, not_candidate, batch), k)

    return jax.lax.map(top_items, batches)
