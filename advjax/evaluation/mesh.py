"""The metric path of an evaluator on a (data, model) mesh (advjax/sharding.py).

A shard_map splits the user batches over `data` and the items over `model`: each shard
ranks its own items, and the shards' top K are gathered over `model` and merged into
the exact top K, so the metrics equal those of one device.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from advjax.evaluation.packing import _Batches, _pad_batches, _scatter_mask
from advjax.evaluation.ranking import _metrics_of_top, _valid_only
from advjax.models.trained import TrainedModel


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
        # Exclusion pairs hold no target (packing._pack_batches); not_candidate spares
        # targets.
        drop = local_mask(batch.exclude_rows, batch.exclude_items) | (blocked & ~targets)
        drop = drop | (ids >= n_items)[None, :]
        values, local = jax.lax.top_k(jnp.where(drop, -jnp.inf, scores), min(k_max, n_local))
        values = jax.lax.all_gather(values, "model", axis=1, tiled=True)
        candidates = jax.lax.all_gather(local + offset, "model", axis=1, tiled=True)
        top = jnp.take_along_axis(candidates, jax.lax.top_k(values, k_max)[1], axis=1)
        return _valid_only(_metrics_of_top(top, batch, ks, n_items), batch)

    return jax.lax.map(one, batches)


@functools.partial(jax.jit, static_argnames=("mesh", "ks", "n_items"))
def _evaluate_on_mesh(model: TrainedModel, not_candidate, batches, *, mesh, ks, n_items):
    """Per-user metrics [n_batches, batch] with batches over `data` and items over
    `model` (model.items padded to a multiple of the `model` size)."""
    user_hat, item_hat = model.score_vectors()
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


def _per_batch_on_mesh(
    model: TrainedModel,
    not_candidate: jax.Array,
    batches: _Batches,
    *,
    mesh: jax.sharding.Mesh,
    ks: tuple[int, ...],
    n_items: int,
) -> dict[str, np.ndarray]:
    """Per-user metrics of every batch, computed on ``mesh`` and brought to the host.

    Args:
      model: its users [n_users + padding, d], its items [n_items + padding, d] padded
        to a multiple of the mesh's `model` size.
      not_candidate: bool [n_items] or [0] (:func:`.packing._candidate_mask`).
      batches: the evaluator's batches; empty ones are added here up to a multiple of
        the `data` size.
      mesh: the mesh with axes "data" and "model".
      ks: list lengths.
      n_items: number of items.

    Returns:
      Each metric float32 [n_batches, batch], zero on padding rows; gathered from every
      process when there are several.
    """
    n_batches, data = batches.users.shape[0], mesh.shape["data"]
    batches = _pad_batches(batches, -(-n_batches // data) * data, n_items)
    out = _evaluate_on_mesh(model, not_candidate, batches, mesh=mesh, ks=ks, n_items=n_items)
    if jax.process_count() > 1:
        out = multihost_utils.process_allgather(out, tiled=True)
    out = jax.device_get(out)
    return {name: value[:n_batches] for name, value in out.items()}
