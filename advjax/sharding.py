"""Training on a device mesh: which arrays are sharded how, and the epochs that keep them so.

The mesh has two axes. `data` splits each batch's rows (its users, positives and
negatives); `model` splits the row tables: every array of the CF model, the hardness
model, their Adam moments and the loss's per-user state whose leading axis counts users
or items. Everything else (the training pairs, the graph, counters, keys) is replicated.
The epochs are the single-device ones (advjax/train/epochs.py), partitioned by XLA's
SPMD partitioner from the shardings of their arguments and results and from one
constraint on each batch: no step is written twice.

A jax.Array must split evenly over its mesh axis, and Coat's 290 users do not split over
8 devices, so a placed state holds each row table padded with zero rows to a multiple
of the `model` size. The epoch slices the padding off before the step and puts it back
after: the step sees the logical shapes, and the padding never reaches a gradient, a
sample (`host_state` and `host_params` return unpadded host arrays). Checkpoints keep
it: each process writes its shards, and a restore reads them into another mesh's
padding (`abstract_state`; RunCheckpoints.restore_latest).

Evaluation on a mesh (Evaluator.evaluate_on_mesh) splits the user batches over `data`
and the items over `model`, each shard ranking its own items; diagnostics run on the
placed state inside one jit. No step gathers the tables onto one device.

Negatives stay exact under any mesh: every draw comes from a key folded from the run's
counters and `jax_threefry_partitionable` (on by default) makes a sharded draw give the
bits of the unsharded one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from advjax.errors import ConfigError

AXES = ("data", "model")
# --mesh=auto shards the tables over `model` only when a device's copy of them would
# exceed this many bytes (the tables are every copy: parameters and Adam moments).
AUTO_TABLE_BUDGET_BYTES = 2 * 2**30
# TrainState fields whose per-user / per-item arrays are row-sharded over `model`.
_ROW_FIELDS = ("cf_params", "cf_opt", "adv_params", "adv_opt", "loss_state")


def parse_mesh(spec: str, n_devices: int) -> tuple[int, int] | str | None:
    """--mesh as (data, model) sizes, "auto", or None for one device (the default path).

    Args:
      spec: "" (one device), "auto", or "data:D,model:M" (either part may be left out:
        its size is 1).
      n_devices: devices available; D * M may not exceed it.
    """
    spec = spec.strip()
    if spec in ("", "none"):
        return None
    if spec == "auto":
        return "auto"
    sizes = {}
    for part in spec.split(","):
        name, sep, value = (s.strip() for s in part.partition(":"))
        if not sep or name not in AXES or name in sizes or not value.isdigit() or int(value) < 1:
            raise ConfigError(
                f"--mesh={spec!r}: expected 'auto' or 'data:D,model:M' with positive sizes, "
                "each axis at most once"
            )
        sizes[name] = int(value)
    data, model = sizes.get("data", 1), sizes.get("model", 1)
    if data * model > n_devices:
        raise ConfigError(
            f"--mesh={spec!r} needs {data * model} devices; {n_devices} are visible "
            f"({jax.default_backend()})"
        )
    return data, model


def auto_mesh_shape(n_devices: int, table_bytes: int, budget: int = AUTO_TABLE_BUDGET_BYTES):
    """(data, model) for --mesh=auto: every device on `data` while one device holds all
    `table_bytes`; otherwise the smallest `model` dividing n_devices that brings each
    device's share under `budget` (all of them when none does)."""
    for model in range(1, n_devices + 1):
        if n_devices % model == 0 and table_bytes / model <= budget:
            return n_devices // model, model
    return 1, n_devices


def make_mesh(data: int, model: int) -> Mesh:
    """A (data, model) mesh over the first data * model devices, in automatic
    (GSPMD) mode: shardings are hints the partitioner completes."""
    devices = np.asarray(jax.devices()[: data * model]).reshape(data, model)
    return Mesh(devices, AXES, axis_types=(AxisType.Auto, AxisType.Auto))


def padded_rows(n: int, model: int) -> int:
    """n rounded up to a multiple of `model`."""
    return -(-n // model) * model


def _is_row_table(path, leaf, n_users: int, n_items: int) -> bool:
    """A per-user or per-item array of a row-sharded field."""
    field = getattr(path[0], "name", None)
    return field in _ROW_FIELDS and np.ndim(leaf) >= 1 and np.shape(leaf)[0] in (n_users, n_items)


@dataclasses.dataclass(frozen=True)
class Placement:
    """How one run's arrays sit on a mesh (see the module doc).

    Attributes:
      mesh: the (data, model) mesh.
      rows: a pytree like the run's TrainState holding, per leaf, its logical number of
        rows when it is a row table (sharded over `model`, padded), else 0 (replicated).
      n_users, n_items: the logical table sizes (the final embeddings' rows).
    """

    mesh: Mesh
    rows: object
    n_users: int
    n_items: int

    @classmethod
    def for_state(cls, mesh: Mesh, state, n_users: int, n_items: int) -> Placement:
        """The placement of a logical state's arrays on `mesh`."""
        rows = jax.tree_util.tree_map_with_path(
            lambda path, x: int(np.shape(x)[0]) if _is_row_table(path, x, n_users, n_items) else 0,
            state,
        )
        return cls(mesh, rows, n_users, n_items)

    @property
    def shape(self) -> dict[str, int]:
        """{"data": D, "model": M}."""
        return dict(self.mesh.shape)

    def describe(self) -> str:
        """The mesh as --mesh spells it."""
        return f"data:{self.shape['data']},model:{self.shape['model']}"

    def _shardings(self, rows):
        table, replicated = NamedSharding(self.mesh, P("model")), NamedSharding(self.mesh, P())
        return jax.tree_util.tree_map(lambda n: table if n else replicated, rows)

    def state_shardings(self):
        """NamedShardings of a placed state: row tables P("model"), the rest replicated."""
        return self._shardings(self.rows)

    def _pad_rows(self, n: int, x):
        """x (n rows, or already padded) padded with zero rows to a multiple of `model`."""
        extra = padded_rows(n, self.shape["model"]) - x.shape[0] if n else 0
        return jnp.pad(x, [(0, extra)] + [(0, 0)] * (x.ndim - 1)) if extra > 0 else x

    def pad(self, state, rows=None):
        """Row tables padded with zero rows to a multiple of the `model` size (`rows`:
        the part of self.rows that `state` is, e.g. self.rows.cf_params)."""
        return jax.tree_util.tree_map(self._pad_rows, self.rows if rows is None else rows, state)

    def unpad(self, state, rows=None):
        """The inverse of pad: each row table cut back to its logical rows."""
        rows = self.rows if rows is None else rows
        return jax.tree_util.tree_map(lambda n, x: x[:n] if n else x, rows, state)

    def place_state(self, state):
        """A logical state (device or host arrays) padded and laid out on the mesh."""
        return jax.tree_util.tree_map(_put, self.pad(state), self.state_shardings())

    def place_params(self, cf_params):
        """CF parameters (logical host arrays, or already placed) laid out on the mesh."""
        rows = self.rows.cf_params
        return jax.tree_util.tree_map(_put, self.pad(cf_params, rows), self._shardings(rows))

    def host_state(self, placed):
        """The unpadded state of a placed one in host memory, its key a device key: the
        whole run's values, gathered from every process, never onto one device (for
        inspection and comparison; checkpoints keep the shards as they are)."""
        host = jax.tree_util.tree_map(_to_host, placed.replace(key=jax.random.key_data(placed.key)))
        host = self.unpad(host)
        return host.replace(key=jax.random.wrap_key_data(host.key))

    def abstract_state(self, state):
        """ShapeDtypeStructs of `state` placed (padded rows, shardings), its key as raw
        data: the target a checkpoint restores into (RunCheckpoints.restore_latest)."""
        tree = state.replace(key=jax.random.key_data(state.key))
        model = self.shape["model"]
        return jax.tree_util.tree_map(
            lambda n, x, sharding: jax.ShapeDtypeStruct(
                (padded_rows(n, model), *np.shape(x)[1:]) if n else np.shape(x), x.dtype,
                sharding=sharding,
            ),
            self.rows, tree, self.state_shardings(),
        )  # fmt: skip

    def host_params(self, cf_params) -> dict:
        """Placed CF parameters as unpadded host arrays (the best parameters)."""
        return self.unpad(jax.tree_util.tree_map(_to_host, cf_params), self.rows.cf_params)

    def place_data(self, data):
        """Arrays (training data, the diagnostics sample) replicated on every device."""
        replicated = NamedSharding(self.mesh, P())
        return jax.tree_util.tree_map(lambda x: _put(x, replicated), data)

    def constrain_batch(self, x: jax.Array) -> jax.Array:
        """A batch array [B, ...] split over `data` by its rows."""
        return jax.lax.with_sharding_constraint(x, NamedSharding(self.mesh, P("data")))

    def epoch(self, pure_epoch: Callable) -> Callable:
        """pure_epoch(state, data) -> (state, stats) jitted on placed states: the padding
        is cut before the epoch and restored after; the state is donated and keeps its
        shardings."""

        def on_placed(state, data):
            state, stats = pure_epoch(self.unpad(state), data)
            return self.pad(state), stats

        out = (self.state_shardings(), NamedSharding(self.mesh, P()))
        return jax.jit(on_placed, donate_argnums=0, out_shardings=out)

    def model(self, model: Callable) -> Callable:
        """model(cf_params, data) -> TrainedModel jitted on placed parameters: its users
        [users padded, d] replicated, its items [items padded, d] over `model` (what
        Evaluator.evaluate_on_mesh reads)."""

        def on_placed(cf_params, data):
            out = model(self.unpad(cf_params, self.rows.cf_params), data)
            users = self._pad_rows(self.n_users, out.users)
            items = self._pad_rows(self.n_items, out.items)
            return out.replace(
                users=jax.lax.with_sharding_constraint(users, NamedSharding(self.mesh, P())),
                items=jax.lax.with_sharding_constraint(items, NamedSharding(self.mesh, P("model"))),
            )

        return jax.jit(on_placed)

    def diagnose(self, diagnose: Callable) -> Callable:
        """diagnose(state, data, sample, model) on a placed state and the padded
        TrainedModel of `model`."""

        def on_placed(state, data, sample, model):
            model = model.replace(users=model.users[: self.n_users],
                                  items=model.items[: self.n_items])  # fmt: skip
            return diagnose(self.unpad(state), data, sample, model)

        return jax.jit(on_placed, out_shardings=NamedSharding(self.mesh, P()))


def _to_host(x) -> np.ndarray:
    """A (possibly multi-process) array's whole value in this process's memory."""
    if x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _put(x, sharding: NamedSharding):
    """x laid out per `sharding`, which may span other processes' devices: each process
    gives the whole value and keeps its devices' parts. A typed PRNG key travels as its
    raw data (device_put cannot lay a key out across processes)."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(jax.device_put(jax.random.key_data(x), sharding))
    return jax.device_put(x, sharding)


def table_bytes(state, n_users: int, n_items: int) -> int:
    """Bytes of the state's row tables (every copy: parameters and optimiser moments)."""
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        if _is_row_table(path, leaf, n_users, n_items):
            total += int(np.prod(np.shape(leaf))) * np.dtype(leaf.dtype).itemsize
    return total


def _requested_mesh(spec: str) -> tuple[int, int] | str | None:
    """parse_mesh's answer for this process's devices, None also for "auto" with one
    device (which keeps the one-device path and its faster propagation)."""
    shape = parse_mesh(spec, jax.device_count())
    return None if shape == "auto" and jax.device_count() == 1 else shape


def uses_mesh(spec: str) -> bool:
    """Whether --mesh asks for a mesh: not for "", and not for "auto" with one device."""
    return _requested_mesh(spec) is not None


def make_placement(spec: str, state, n_users: int, n_items: int) -> Placement | None:
    """The Placement --mesh asks for (None: one device, the default path)."""
    shape = _requested_mesh(spec)
    if shape is None:
        return None
    if shape == "auto":
        shape = auto_mesh_shape(jax.device_count(), table_bytes(state, n_users, n_items))
    return Placement.for_state(make_mesh(*shape), state, n_users, n_items)
