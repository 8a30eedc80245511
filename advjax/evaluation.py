"""Full-ranking evaluators over a split (SPEC §4), in padded, jitted user batches.

Everything data-dependent is precomputed once in NumPy when an evaluator is built:
the evaluated users in fixed-size batches (padding rows flagged invalid) and, per
batch, the (row, item) pairs of the targets and of the excluded items, padded to the
widest batch with pairs that point at a dummy column ``n_items`` sliced off after
the scatter. One jitted call then maps over all batches, rebuilding each batch's
masks on device, so memory is bounded by one [batch, n_items] block and no dense
[n_users, n_items] matrix ever exists. The arrays are arguments, never closed-over
constants (XLA would constant-fold them and compile for minutes).

Three interchangeable metric paths (chosen statically per evaluator, see
:func:`make_evaluator`): "top_k" runs ``jax.lax.top_k`` over each batch's scores, the
reference; "rank" counts each target's rank directly from the padded target pairs
(:func:`advjax.metrics.per_user_rank_metrics`), which is much cheaper on CPU when
users have few targets; "chunked" scores items x users (the faster GEMM layout on
CPU), writes the exclusions into the scores, and finds the exact top K through chunk
maxima (:func:`advjax.metrics.chunked_top_k`), for large catalogues. All give the
same per-user metrics (the DCG sums may differ in the last float bit).

Per-user metrics come back to the host and are averaged once in float64, so results
do not depend on the batch size.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.typing import ArrayLike

from advjax.data.splits import Interactions, SplitData
from advjax.metrics import (
    METRIC_NAMES,
    chunked_top_k,
    per_user_metrics_from_ranks,
    per_user_rank_metrics,
    per_user_topk_metrics,
    select_top_k,
)
from advjax.scores import l2_normalize

METHODS = ("rank", "top_k", "chunked")
# "auto" takes the rank path when the padded target pairs of a batch are at most this
# many per batch row, and their [pairs, n_items] comparison block stays this small.
RANK_MAX_PAIRS_PER_ROW = 4
RANK_MAX_ELEMENTS = 64 * 2**20
# Items per chunk of the "chunked" path; "auto" takes it for catalogues of at least
# CHUNKED_MIN_ITEMS items (smaller ones are cheap either way).
CHUNK = 64
CHUNKED_MIN_ITEMS = 8192


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


def _scatter_mask(rows: jax.Array, items: jax.Array, batch_size: int, n_items: int) -> jax.Array:
    """bool [batch_size, n_items] with True at each (row, item); padding hits column n_items."""
    mask = jnp.zeros((batch_size, n_items + 1), bool).at[rows, items].set(True)
    return mask[:, :n_items]


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
    # The exclusion pairs hold no target (make_evaluator removed them).
    excluded = batch.exclude_items * batch_size + batch.exclude_rows
    scores_t = scores_t.reshape(-1).at[excluded].set(-jnp.inf, mode="drop")
    k_max = max(ks)
    top = chunked_top_k(scores_t.reshape(n_items, batch_size), k_max, chunk)  # [batch, K]
    match = top[batch.target_rows] == batch.target_items[:, None]  # [n_pairs, K]
    ranks = jnp.where(match.any(axis=1), jnp.argmax(match, axis=1), k_max)
    real = batch.target_items < n_items
    return per_user_metrics_from_ranks(ranks, real, batch.target_rows, n_users=batch_size, ks=ks)


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
        metrics = _chunked_metrics(user_hat, item_hat, not_candidate, batch, ks, chunk)
        return {name: jnp.where(batch.valid, value, 0.0) for name, value in metrics.items()}
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
    return {name: jnp.where(batch.valid, value, 0.0) for name, value in metrics.items()}


@functools.partial(jax.jit, static_argnames=("ks", "method", "chunk"))
def _evaluate_batches(
    user_emb: jax.Array,
    item_emb: jax.Array,
    not_candidate: jax.Array,
    batches: _Batches,
    ks: tuple[int, ...],
    method: str = "top_k",
    chunk: int = CHUNK,
) -> dict[str, jax.Array]:
    """Per-user metrics for all batches: each float32 [n_batches, batch]."""
    user_hat, item_hat = l2_normalize(user_emb), l2_normalize(item_emb)
    return jax.lax.map(
        lambda batch: _batch_metrics(user_hat, item_hat, not_candidate, batch, ks, method, chunk),
        batches,
    )


@functools.partial(jax.jit, static_argnames=("k",))
def _top_items_batches(
    user_emb: jax.Array,
    item_emb: jax.Array,
    not_candidate: jax.Array,
    batches: _Batches,
    k: int,
) -> jax.Array:
    """int32 [n_batches, batch, k]: each user's ranked list after exclusion."""
    user_hat, item_hat = l2_normalize(user_emb), l2_normalize(item_emb)

    def top_items(batch):
        return select_top_k(*_batch_inputs(user_hat, item_hat, not_candidate, batch), k)

    return jax.lax.map(top_items, batches)


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


def _shard_metrics(
    user_hat: jax.Array,
    item_shard: jax.Array,
    not_candidate: jax.Array,
    batches: _Batches,
    *,
    ks: tuple[int, ...],
    n_items: int,
) -> dict[str, jax.Array]:
    """Per-user metrics of this device's batches (`data`) against this device's items
    (`model`), in a shard_map: each shard ranks its own items, the shards' top K are
    gathered over `model` and merged into the exact top K.

    Ties go to the lower item id, as on one device: the gathered lists are in shard
    order, ids ascending within equal scores, and jax.lax.top_k keeps that order.
    """
    k_max, n_local = max(ks), item_shard.shape[0]
    offset = jax.lax.axis_index("model") * n_local
    ids = offset + jnp.arange(n_local)
    blocked = ids >= n_items  # the zero rows padding the table to the mesh
    if not_candidate.shape[0]:
        blocked = blocked | jax.lax.dynamic_slice(not_candidate, (offset,), (n_local,))

    def one(batch: _Batches):
        batch_size = batch.users.shape[0]
        scores = jnp.matmul(
            user_hat[batch.users], item_shard.T, precision=jax.lax.Precision.HIGHEST
        )  # [batch, n_local]

        def local_mask(rows, items):
            inside = (items >= offset) & (items < offset + n_local) & (items < n_items)
            return _scatter_mask(rows, jnp.where(inside, items - offset, n_local), batch_size,
                                 n_local)  # fmt: skip

        targets = local_mask(batch.target_rows, batch.target_items)
        # Exclusion pairs hold no target (make_evaluator); not_candidate spares targets.
        drop = local_mask(batch.exclude_rows, batch.exclude_items) | (blocked & ~targets)
        drop = drop | (ids >= n_items)[None, :]
        values, local = jax.lax.top_k(jnp.where(drop, -jnp.inf, scores), min(k_max, n_local))
        values = jax.lax.all_gather(values, "model", axis=1, tiled=True)
        candidates = jax.lax.all_gather(local + offset, "model", axis=1, tiled=True)
        top = jnp.take_along_axis(candidates, jax.lax.top_k(values, k_max)[1], axis=1)
        match = top[batch.target_rows] == batch.target_items[:, None]  # [n_pairs, K]
        ranks = jnp.where(match.any(axis=1), jnp.argmax(match, axis=1), k_max)
        real = batch.target_items < n_items
        metrics = per_user_metrics_from_ranks(
            ranks, real, batch.target_rows, n_users=batch_size, ks=ks
        )
        return {name: jnp.where(batch.valid, value, 0.0) for name, value in metrics.items()}

    return jax.lax.map(one, batches)


@functools.partial(jax.jit, static_argnames=("mesh", "ks", "n_items"))
def _evaluate_on_mesh(user_emb, item_emb, not_candidate, batches, *, mesh, ks, n_items):
    """Per-user metrics [n_batches, batch] with batches over `data` and items over
    `model` (item_emb padded to a multiple of the `model` size)."""
    user_hat, item_hat = l2_normalize(user_emb), l2_normalize(item_emb)
    if not_candidate.shape[0]:
        not_candidate = jnp.pad(not_candidate, (0, item_hat.shape[0] - not_candidate.shape[0]))
    spec = jax.sharding.PartitionSpec
    sharded = jax.shard_map(
        functools.partial(_shard_metrics, ks=ks, n_items=n_items),
        mesh=mesh,
        in_specs=(spec(), spec("model"), spec(), spec("data")),
        out_specs=spec("data"),
        # The merged lists are equal on every `model` shard (built from all_gathers),
        # which the checker cannot infer through axis_index.
        check_vma=False,
    )
    return sharded(user_hat, item_hat, not_candidate, batches)


class Evaluator:
    """All-ranking top-K evaluation of one target set (SPEC §4).

    Build with :func:`make_evaluator` or :func:`build_evaluators`.

    Attributes:
      name: the evaluated split ("valid", "test_id", ...).
      n_users, n_items: expected embedding table sizes.
      users: int32 [n_evaluated] ascending ids of the users with at least one target.
      batch_size: users per jitted batch.
      method: "rank", "top_k" or "chunked", the metric path (same results; see the
        module doc).
    """

    def __init__(
        self,
        name: str,
        n_users: int,
        n_items: int,
        users: np.ndarray,
        batch_size: int,
        batches: _Batches,
        not_candidate: jax.Array,
        method: str = "top_k",
        chunk: int = CHUNK,
    ):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.name = name
        self.method = method
        self.chunk = chunk
        self.n_users = n_users
        self.n_items = n_items
        self.users = users
        self.batch_size = batch_size
        self._batches = batches
        self._valid = np.asarray(batches.valid).reshape(-1)
        self._not_candidate = not_candidate

    def __repr__(self) -> str:
        return (
            f"Evaluator({self.name!r}, users={len(self.users)}, items={self.n_items}, "
            f"batch_size={self.batch_size}, method={self.method!r})"
        )

    def _check(self, user_emb: jax.Array, item_emb: jax.Array, ks: Sequence[int]):
        if user_emb.ndim != 2 or item_emb.ndim != 2 or user_emb.shape[1] != item_emb.shape[1]:
            raise ValueError(
                f"user_emb {user_emb.shape} and item_emb {item_emb.shape} must be [n, d]"
                " with the same d"
            )
        if user_emb.shape[0] != self.n_users or item_emb.shape[0] != self.n_items:
            raise ValueError(
                f"{self.name}: expected user_emb [{self.n_users}, d] and item_emb "
                f"[{self.n_items}, d], got {user_emb.shape} and {item_emb.shape}"
            )
        ks = tuple(int(k) for k in ks)
        if not ks or any(k < 1 or k > self.n_items for k in ks):
            raise ValueError(f"every k must be in [1, n_items={self.n_items}], got ks={ks}")
        return ks

    def per_user(
        self, user_emb: ArrayLike, item_emb: ArrayLike, ks: Sequence[int] = (20,)
    ) -> dict[str, np.ndarray]:
        """Per-user metrics of the evaluated users.

        Args:
          user_emb: float [n_users, d] user vectors (L2-normalised here).
          item_emb: float [n_items, d] item vectors (L2-normalised here).
          ks: list lengths.

        Returns:
          ``"recall@K"``, ``"ndcg@K"``, ``"hit_ratio@K"``, ``"precision@K"`` for each K,
          each float32 [n_evaluated], aligned with ``self.users``.
        """
        user_emb, item_emb = jnp.asarray(user_emb), jnp.asarray(item_emb)
        ks = self._check(user_emb, item_emb, ks)
        if not len(self.users):
            return {f"{n}@{k}": np.zeros(0, np.float32) for k in ks for n in METRIC_NAMES}
        out = _evaluate_batches(
            user_emb, item_emb, self._not_candidate, self._batches, ks, self.method, self.chunk
        )
        out = jax.device_get(out)
        return {name: value.reshape(-1)[self._valid] for name, value in out.items()}

    def per_user_on_mesh(
        self, user_emb: jax.Array, item_emb: jax.Array, ks: Sequence[int], mesh
    ) -> dict[str, np.ndarray]:
        """per_user with the work split over a (data, model) mesh (advjax/sharding.py):
        user batches over `data`, items over `model`, each shard's top K merged exactly.

        Args:
          user_emb: float [n_users + padding, d]; rows past n_users are never read.
          item_emb: float [n_items + padding, d], padded to a multiple of the `model`
            size; rows past n_items never rank.
          ks: list lengths.
          mesh: the jax.sharding.Mesh with axes "data" and "model".
        """
        model, data = mesh.shape["model"], mesh.shape["data"]
        if item_emb.shape[0] % model or item_emb.shape[0] < self.n_items:
            raise ValueError(
                f"{self.name}: item_emb {item_emb.shape} must hold the {self.n_items} items "
                f"padded to a multiple of model={model}"
            )
        ks = self._check(user_emb[: self.n_users], item_emb[: self.n_items], ks)
        if not len(self.users):
            return {f"{n}@{k}": np.zeros(0, np.float32) for k in ks for n in METRIC_NAMES}
        n_batches = self._batches.users.shape[0]
        batches = _pad_batches(self._batches, -(-n_batches // data) * data, self.n_items)
        out = _evaluate_on_mesh(
            user_emb, item_emb, self._not_candidate, batches, mesh=mesh, ks=ks,
            n_items=self.n_items,
        )  # fmt: skip
        if jax.process_count() > 1:
            out = multihost_utils.process_allgather(out, tiled=True)
        out = jax.device_get(out)
        return {name: value[:n_batches].reshape(-1)[self._valid] for name, value in out.items()}

    def evaluate(
        self, user_emb: ArrayLike, item_emb: ArrayLike, ks: Sequence[int] = (20,)
    ) -> dict[str, float]:
        """Metrics averaged over the evaluated users (float64 mean on the host).

        Args:
          user_emb: float [n_users, d].
          item_emb: float [n_items, d].
          ks: list lengths.

        Returns:
          ``"recall@K"``, ``"ndcg@K"``, ``"hit_ratio@K"``, ``"precision@K"`` for each K;
          NaN when no user has a target.
        """
        return _averaged(self.per_user(user_emb, item_emb, ks))

    def evaluate_on_mesh(
        self, user_emb: jax.Array, item_emb: jax.Array, ks: Sequence[int], mesh
    ) -> dict[str, float]:
        """evaluate with the work split over a mesh (see per_user_on_mesh)."""
        return _averaged(self.per_user_on_mesh(user_emb, item_emb, ks, mesh))

    def top_items(self, user_emb: ArrayLike, item_emb: ArrayLike, k: int = 20) -> np.ndarray:
        """Each evaluated user's top-``k`` items after exclusion.

        Args:
          user_emb: float [n_users, d].
          item_emb: float [n_items, d].
          k: list length.

        Returns:
          int32 [n_evaluated, k] item ids, best first, aligned with ``self.users``.
        """
        user_emb, item_emb = jnp.asarray(user_emb), jnp.asarray(item_emb)
        (k,) = self._check(user_emb, item_emb, (k,))
        if not len(self.users):
            return np.zeros((0, k), np.int32)
        out = _top_items_batches(user_emb, item_emb, self._not_candidate, self._batches, k)
        return np.asarray(out).reshape(-1, k)[self._valid]


def _averaged(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    """Each metric's float64 mean over the evaluated users (NaN when there are none)."""
    return {
        name: float(np.mean(value, dtype=np.float64)) if len(value) else float("nan")
        for name, value in per_user.items()
    }


def make_evaluator(
    name: str,
    targets: Interactions,
    exclusions: Sequence[Interactions],
    *,
    n_items: int,
    not_candidate: np.ndarray | None = None,
    batch_size: int = 1024,
    method: str = "auto",
    chunk: int = CHUNK,
) -> Evaluator:
    """Builds the evaluator of one target set.

    Args:
      name: label of the target set.
      targets: the pairs to retrieve; users with none are not evaluated.
      exclusions: known positives removed from every ranking, minus the user's own
        targets (SPEC §4).
      n_items: number of items.
      not_candidate: int [m] item ids excluded for every user, or None.
      batch_size: most users per jitted batch; the users are split into the fewest
        batches of equal size that respect it.
      method: "rank", "top_k", "chunked", or "auto": "rank" when the padded target
        pairs per batch number at most ``RANK_MAX_PAIRS_PER_ROW`` per batch row and at
        most ``RANK_MAX_ELEMENTS / n_items``, else "chunked" for at least
        ``CHUNKED_MIN_ITEMS`` items, else "top_k". Results are the same either way.
      chunk: items per chunk of the "chunked" path, a power of two; with fewer than
        K chunks that path runs "top_k" instead.

    Returns:
      The evaluator.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if chunk < 1 or chunk & (chunk - 1):
        raise ValueError(f"chunk must be a power of two, got {chunk}")
    if method not in METHODS + ("auto",):
        raise ValueError(f"method must be 'auto' or one of {METHODS}, got {method!r}")
    n_users = targets.n_users
    for source in exclusions:
        if source.n_users != n_users:
            raise ValueError(
                f"{source.path} has {source.n_users} users, {targets.path} has {n_users}"
            )
    users = np.flatnonzero(targets.degrees() > 0).astype(np.int32)
    # Equal-sized batches: the fewest batches of at most batch_size, which keeps the
    # padding under one row per batch.
    n_batches = max(-(-len(users) // batch_size), 1)
    batch_size = max(-(-len(users) // n_batches), 1)
    padded = np.zeros(n_batches * batch_size, np.int32)
    padded[: len(users)] = users
    valid = np.arange(n_batches * batch_size) < len(users)

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

    if method == "auto":
        width = target_items.shape[1]
        small = width <= RANK_MAX_PAIRS_PER_ROW * batch_size
        if small and width * n_items <= RANK_MAX_ELEMENTS:
            method = "rank"
        else:
            method = "chunked" if n_items >= CHUNKED_MIN_ITEMS else "top_k"

    candidate_mask = np.zeros(n_items, bool)
    if not_candidate is not None:
        candidate_mask[np.asarray(not_candidate)] = True
    if not candidate_mask.any():
        candidate_mask = np.zeros(0, bool)  # static "no such items": the paths skip it
    batches = _Batches(
        users=jnp.asarray(padded.reshape(n_batches, batch_size)),
        valid=jnp.asarray(valid.reshape(n_batches, batch_size)),
        target_rows=jnp.asarray(target_rows),
        target_items=jnp.asarray(target_items),
        exclude_rows=jnp.asarray(exclude_rows),
        exclude_items=jnp.asarray(exclude_items),
    )
    return Evaluator(
        name, n_users, n_items, users, batch_size, batches, jnp.asarray(candidate_mask), method,
        chunk,
    )  # fmt: skip


def build_evaluators(
    data: SplitData, *, batch_size: int = 1024, method: str = "auto", chunk: int = CHUNK
) -> dict[str, Evaluator]:
    """The evaluators of a split (SPEC §4).

    "valid" (if the split has one) excludes train. Each test set excludes train,
    valid and every other test set. ``data.not_candidate`` is excluded for every
    user. A user's own targets are never excluded, whatever the source of the
    exclusion (the KuaiRec files list no target in not_candidate, so there the rule
    changes nothing).

    A target set without pairs gets no evaluator (its metrics would be NaN). The
    loaders already leave such files out, so only a hand-built SplitData meets this;
    an empty set still takes part in the others' exclusions, where it adds nothing.

    Args:
      data: the split.
      batch_size: users per jitted batch.
      method: metric path of every evaluator ("auto", "rank", "top_k" or "chunked"; see
        :func:`make_evaluator`).
      chunk: items per chunk of the "chunked" path (see :func:`make_evaluator`).

    Returns:
      name -> evaluator: "valid" first, then the test sets in ``data.tests`` order.
    """
    common = dict(
        n_items=data.n_items,
        not_candidate=data.not_candidate,
        batch_size=batch_size,
        method=method,
        chunk=chunk,
    )
    evaluators = {}
    known = [data.train] + ([data.valid] if data.valid is not None else [])
    if data.valid is not None and data.valid.nnz:
        evaluators["valid"] = make_evaluator("valid", data.valid, [data.train], **common)
    for name, test in data.tests.items():
        if not test.nnz:
            continue
        others = [other for other_name, other in data.tests.items() if other_name != name]
        evaluators[name] = make_evaluator(name, test, known + others, **common)
    return evaluators
