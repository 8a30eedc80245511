"""Full-ranking evaluators over a split (SPEC §4): what the trainer and the tests call.

:func:`build_evaluators` makes one :class:`Evaluator` per target set of a split, each
built by :func:`make_evaluator`: its users packed once into padded batches
(:mod:`.packing`) and its metric path chosen (:mod:`.ranking`). An evaluator checks the
trained model it is given (advjax.models.trained: representations and how they score;
it knows nothing of backbones), runs its path on one device or on a mesh (:mod:`.mesh`),
and returns per-user metrics aligned with its users, or their means. Per-user metrics are
averaged once in float64 on the host, so results do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from advjax.data.splits import Interactions, SplitData
from advjax.evaluation.mesh import _per_batch_on_mesh
from advjax.evaluation.packing import _Batches, _candidate_mask, _pack_batches
from advjax.evaluation.ranking import (
    CHUNK,
    METHODS,
    _evaluate_batches,
    _pick_method,
    _top_items_batches,
)
from advjax.metrics import METRIC_NAMES
from advjax.models.trained import TrainedModel


class Evaluator:
    """All-ranking top-K evaluation of one target set (SPEC §4).

    Build with :func:`make_evaluator` or :func:`build_evaluators`.

    Attributes:
      name: the evaluated split ("valid", "test_id", ...).
      n_users, n_items: expected embedding table sizes.
      users: int32 [n_evaluated] ascending ids of the users with at least one target.
      batch_size: users per jitted batch.
      method: "rank", "top_k" or "chunked", the metric path (same results; see
        :mod:`advjax.evaluation.ranking`).
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

    def _check(self, model: TrainedModel, ks: Sequence[int], padded: bool = False):
        """ks as a tuple, once the model's shapes fit the split (`padded`: tables may
        hold rows past n_users and n_items, as on a mesh)."""
        users, items = model.users, model.items
        if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
            raise ValueError(
                f"model users {users.shape} and items {items.shape} must be [n, d] with the same d"
            )
        n_users, n_items = users.shape[0], items.shape[0]
        if (
            (n_users < self.n_users or n_items < self.n_items)
            if padded
            else (n_users != self.n_users or n_items != self.n_items)
        ):
            raise ValueError(
                f"{self.name}: expected model users [{self.n_users}, d] and items "
                f"[{self.n_items}, d], got {users.shape} and {items.shape}"
            )
        ks = tuple(int(k) for k in ks)
        if not ks or any(k < 1 or k > self.n_items for k in ks):
            raise ValueError(f"every k must be in [1, n_items={self.n_items}], got ks={ks}")
        return ks

    def _aligned(self, per_batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per-batch metrics (each [n_batches, batch]) -> each [n_evaluated], aligned
        with ``self.users``."""
        return {name: value.reshape(-1)[self._valid] for name, value in per_batch.items()}

    def per_user(self, model: TrainedModel, ks: Sequence[int] = (20,)) -> dict[str, np.ndarray]:
        """Per-user metrics of the evaluated users.

        Args:
          model: users [n_users, d] and items [n_items, d], ranked by their scores
            (advjax.models.trained: the dot products of its score vectors).
          ks: list lengths.

        Returns:
          ``"recall@K"``, ``"ndcg@K"``, ``"hit_ratio@K"``, ``"precision@K"`` for each K,
          each float32 [n_evaluated], aligned with ``self.users``.
        """
        model = _on_device(model)
        ks = self._check(model, ks)
        if not len(self.users):
            return _no_users(ks)
        out = _evaluate_batches(
            model, self._not_candidate, self._batches, ks, self.method, self.chunk
        )
        return self._aligned(jax.device_get(out))

    def per_user_on_mesh(
        self, model: TrainedModel, ks: Sequence[int], mesh
    ) -> dict[str, np.ndarray]:
        """per_user with the work split over a (data, model) mesh (advjax/sharding.py):
        user batches over `data`, items over `model`, each shard's top K merged exactly.

        Args:
          model: users [n_users + padding, d] (rows past n_users are never read), items
            [n_items + padding, d] padded to a multiple of the `model` size (rows past
            n_items never rank).
          ks: list lengths.
          mesh: the jax.sharding.Mesh with axes "data" and "model".
        """
        shards = mesh.shape["model"]
        if model.items.shape[0] % shards or model.items.shape[0] < self.n_items:
            raise ValueError(
                f"{self.name}: model items {model.items.shape} must hold the "
                f"{self.n_items} items padded to a multiple of model={shards}"
            )
        ks = self._check(model, ks, padded=True)
        if not len(self.users):
            return _no_users(ks)
        out = _per_batch_on_mesh(
            model, self._not_candidate, self._batches, mesh=mesh, ks=ks, n_items=self.n_items
        )
        return self._aligned(out)

    def evaluate(self, model: TrainedModel, ks: Sequence[int] = (20,)) -> dict[str, float]:
        """Metrics averaged over the evaluated users (float64 mean on the host).

        Args:
          model: as for per_user.
          ks: list lengths.

        Returns:
          ``"recall@K"``, ``"ndcg@K"``, ``"hit_ratio@K"``, ``"precision@K"`` for each K;
          NaN when no user has a target.
        """
        return _averaged(self.per_user(model, ks))

    def evaluate_on_mesh(self, model: TrainedModel, ks: Sequence[int], mesh) -> dict[str, float]:
        """evaluate with the work split over a mesh (see per_user_on_mesh)."""
        return _averaged(self.per_user_on_mesh(model, ks, mesh))

    def top_items(self, model: TrainedModel, k: int = 20) -> np.ndarray:
        """Each evaluated user's top-``k`` items after exclusion.

        Args:
          model: as for per_user.
          k: list length.

        Returns:
          int32 [n_evaluated, k] item ids, best first, aligned with ``self.users``.
        """
        model = _on_device(model)
        (k,) = self._check(model, (k,))
        if not len(self.users):
            return np.zeros((0, k), np.int32)
        out = _top_items_batches(model, self._not_candidate, self._batches, k)
        return np.asarray(out).reshape(-1, k)[self._valid]


def _on_device(model: TrainedModel) -> TrainedModel:
    """The model with its tables as jax arrays (NumPy tables are accepted)."""
    return model.replace(users=jnp.asarray(model.users), items=jnp.asarray(model.items))


def _no_users(ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The per-user metrics of an evaluator without users: each float32 [0]."""
    return {f"{n}@{k}": np.zeros(0, np.float32) for k in ks for n in METRIC_NAMES}


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
    batches = _pack_batches(targets, exclusions, users, batch_size, n_items)
    if method == "auto":
        method = _pick_method(batches, n_items)
    return Evaluator(
        name, n_users, n_items, users, batches.users.shape[1], batches,
        _candidate_mask(not_candidate, n_items), method, chunk,
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
