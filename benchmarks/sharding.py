"""Training on device meshes (advjax/sharding.py) over a synthetic power-law catalogue:
each array family's bytes per device against the model, and steps per second.

  python -m benchmarks.sharding                    # 1M users x 500k items, 8 virtual devices
  python -m benchmarks.sharding --quick            # 20k x 10k: a smoke test
  python -m benchmarks.sharding --meshes="one;model:8" --users=200000 --items=100000

Every mesh runs in a fresh interpreter with XLA_FLAGS asking for --devices virtual
devices (or the host's real ones with --real_devices, e.g. on a GPU host). The
catalogue is generated there from --seed: item popularity and user activity follow
power laws (Zipf exponents --item_alpha, --user_alpha), pairs drawn from both and
de-duplicated.

Memory model: the row tables (CF and hardness embeddings, each with Adam's two moments:
6 copies of (users + items) x dim float32 for AdvInfoNCE) split over `model`, so a device
holds rows(M) x dim x 4 x copies bytes, rows(M) = ceil(users / M) + ceil(items / M);
batches split over `data` and everything else (the training pairs, counters) is
replicated. The table reports the largest device's bytes per family, and the ratio of
the tables' to the model's. A mesh whose devices together would need more than
--max_total_gb is skipped and says so.

Steps per second: one CF epoch of --steps batches, timed after a compiled warm-up
epoch (best of --repeats). The floor is one CF step's FLOPs and bytes
(benchmarks/floor.py's cf_step_terms: at this size the dense Adam over every table row,
(users + items) x dim x 7 words, dominates) at the GEMM and bandwidth rates measured in
the same child. Virtual CPU devices share the host's cores, so on a CPU these show a mesh's
overhead, not a speed-up.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags

from benchmarks.run import RECORD_PREFIX, spawn_record

FLAGS = flags.FLAGS


def define_flags() -> None:
    """This CLI's flags; defined when it runs, not on import (the tests import it beside
    other CLIs' flags)."""
    flags.DEFINE_integer("users", 1_000_000, "Users of the synthetic catalogue.")
    flags.DEFINE_integer("items", 500_000, "Items of the synthetic catalogue.")
    flags.DEFINE_integer("pairs", 5_000_000, "Training pairs drawn (before de-duplication).")
    flags.DEFINE_float("item_alpha", 1.0, "Zipf exponent of item popularity.")
    flags.DEFINE_float("user_alpha", 0.5, "Zipf exponent of user activity.")
    flags.DEFINE_integer("seed", 0, "Seed of the catalogue.")
    flags.DEFINE_string(
        "meshes",
        "one;data:2;data:4;data:8;model:2;model:4;model:8;data:4,model:2",
        "Semicolon-separated --mesh values; 'one' is one device without a mesh.",
    )
    flags.DEFINE_integer("devices", 8, "Virtual CPU devices per child (XLA_FLAGS).")
    flags.DEFINE_bool("real_devices", False, "Use the host's devices as they are (GPU hosts).")
    flags.DEFINE_integer("steps", 8, "Batches per timed epoch.")
    flags.DEFINE_integer("repeats", 2, "Timed epochs per mesh (best counts).")
    flags.DEFINE_float("max_total_gb", 10.0, "Skip a mesh whose devices need more in total.")
    flags.DEFINE_bool("quick", False, "A 20k x 10k catalogue, 4 steps, 3 meshes.")
    flags.DEFINE_string("json", "", "Where the record goes; default benchmarks/results/.")
    flags.DEFINE_string("child", "", "Internal: run this mesh and print its record.")


FAMILIES = ("cf_params", "cf_opt", "adv_params", "adv_opt", "loss_state", "data")
DIM, COPIES = 64, 6  # AdvInfoNCE: CF and hardness tables, each with Adam's mu and nu


def _settings() -> dict:
    """The catalogue and the timing, after --quick."""
    if FLAGS.quick:
        return dict(users=20_000, items=10_000, pairs=200_000, steps=4, meshes="one;data:2;model:2")
    return dict(
        users=FLAGS.users, items=FLAGS.items, pairs=FLAGS.pairs, steps=FLAGS.steps,
        meshes=FLAGS.meshes,
    )  # fmt: skip


def model_table_bytes(users: int, items: int, model: int) -> int:
    """Bytes of the row tables on one device of a mesh with `model` table shards."""
    rows = -(-users // model) + -(-items // model)
    return rows * DIM * 4 * COPIES


def _mesh_sizes(mesh: str) -> tuple[int, int]:
    sizes = dict(part.split(":") for part in mesh.split(",")) if mesh != "one" else {}
    return int(sizes.get("data", 1)), int(sizes.get("model", 1))


def synthetic_split(
    users: int, items: int, pairs: int, seed: int, *, user_alpha: float, item_alpha: float
):
    """A SplitData of power-law pairs (train only): ids drawn from Zipf-like weights."""
    import numpy as np

    from advjax.data import Interactions, SplitData

    rng = np.random.default_rng(seed)

    def draw(n: int, alpha: float, size: int):
        weights = 1.0 / np.arange(1, n + 1) ** alpha
        ids = rng.choice(n, size=size, p=weights / weights.sum())
        return rng.permutation(n)[ids]  # popular ids spread over the id range

    keys = np.unique(
        draw(users, user_alpha, pairs).astype(np.int64) * items + draw(items, item_alpha, pairs)
    )
    user_of, item_of = keys // items, (keys % items).astype(np.int32)
    indptr = np.zeros(users + 1, np.int64)
    np.add.at(indptr, user_of + 1, 1)
    train = Interactions(np.cumsum(indptr), item_of, "<synthetic>")
    return SplitData("synthetic", users, items, train, None, {}, None)


def _bytes_per_device(tree) -> dict[int, int]:
    import jax

    out: dict[int, int] = {}
    for leaf in jax.tree_util.tree_leaves(tree):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        for shard in leaf.addressable_shards:
            out[shard.device.id] = out.get(shard.device.id, 0) + shard.data.nbytes
    return out


def run_child(mesh: str) -> dict:
    """One mesh: generate, place, compile, time; the record."""
    import jax
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # JAX's backend probing stays out of the table

    from advjax.train import TrainConfig
    from advjax.train.setup import setup_run
    from benchmarks import floor

    settings = _settings()
    tick = time.perf_counter()
    data = synthetic_split(
        settings["users"], settings["items"], settings["pairs"], FLAGS.seed,
        user_alpha=FLAGS.user_alpha, item_alpha=FLAGS.item_alpha,
    )  # fmt: skip
    generated_s = time.perf_counter() - tick
    cfg = TrainConfig(loss="adv_infonce", n_layers=0, emb_dim=DIM)
    run = setup_run(cfg, data, mesh="" if mesh == "one" else mesh, max_batches=settings["steps"])
    state, train_data, epoch = run.state, run.train_data, run.fns.cf_epoch
    if run.placement is not None:
        state = run.placement.place_state(state)
    families = {name: getattr(state, name) for name in FAMILIES if name != "data"}
    families["data"] = train_data
    per_device = {name: _bytes_per_device(tree) for name, tree in families.items()}
    largest = {name: max(values.values(), default=0) for name, values in per_device.items()}
    tick = time.perf_counter()
    state, stats = epoch(state, train_data)
    jax.block_until_ready(stats)
    compile_s = time.perf_counter() - tick
    seconds = []
    for _ in range(FLAGS.repeats):
        tick = time.perf_counter()
        state, stats = epoch(state, train_data)
        jax.block_until_ready(stats)
        seconds.append(time.perf_counter() - tick)
    data_shards, model_shards = _mesh_sizes(mesh)
    tables = sum(largest[name] for name in ("cf_params", "cf_opt", "adv_params", "adv_opt"))
    rates = floor.measure_rates(repeats=3)
    terms = floor.cf_step_terms(
        n_users=data.n_users, n_items=data.n_items, batch=cfg.batch_size, n_neg=cfg.n_neg,
        dim=DIM, n_layers=0, n_edges=0, adversarial=True,
    )  # fmt: skip
    step_floor = floor.floor_seconds(floor.total(terms), rates)
    best = min(seconds)
    return {
        "mesh": mesh,
        "data": data_shards,
        "model": model_shards,
        "devices": jax.device_count(),
        "device_kind": jax.devices()[0].device_kind,
        "users": data.n_users,
        "items": data.n_items,
        "train_pairs": int(data.train.nnz),
        "largest_device_bytes": largest,
        "table_bytes_per_device": tables,
        "model_table_bytes": model_table_bytes(data.n_users, data.n_items, model_shards),
        "generated_s": generated_s,
        "compile_s": compile_s,
        "epoch_s": seconds,
        "steps": settings["steps"],
        "steps_per_s": settings["steps"] / best,
        "floor_step_s": step_floor,
        "floor_terms": {n: [c.flops, c.stream_bytes, c.gather_bytes] for n, c in terms.items()},
        "stream_gb_s": rates["stream_gb_s"],
        "loss": float(stats["loss"]),
    }


def spawn(mesh: str) -> dict:
    """run_child(mesh) in a fresh interpreter with the virtual devices."""
    env = dict(os.environ)
    if not FLAGS.real_devices:  # virtual CPU devices, even on a GPU host
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={FLAGS.devices}"
        ).strip()
        env["JAX_PLATFORMS"] = "cpu"
    args = [a for a in sys.argv[1:] if not a.startswith("--child")]
    command = [sys.executable, "-m", "benchmarks.sharding", *args, f"--child={mesh}"]
    record, status = spawn_record(command, env=env)
    if record is None:
        return {"mesh": mesh, "error": f"child exited with status {status}"}
    return record


def table(records: list[dict]) -> str:
    """The printed table: per mesh, largest device's MB per family, tables against the
    model, steps/s and their ratio to one device, and the Adam floor."""
    head = (
        f"{'mesh':<16}" + "".join(f"{name + ' MB':>14}" for name in FAMILIES)
        + f"{'tables/model':>14}{'steps/s':>10}{'vs one':>8}{'floor steps/s':>15}"
    )  # fmt: skip
    lines = [head]
    one = next(
        (r["steps_per_s"] for r in records if r.get("mesh") == "one" and "error" not in r), None
    )
    for r in records:
        if "error" in r or "skipped" in r:
            lines.append(f"{r['mesh']:<16}{r.get('error') or r['skipped']}")
            continue
        sizes = "".join(f"{r['largest_device_bytes'][n] / 2**20:>14.1f}" for n in FAMILIES)
        ratio = r["table_bytes_per_device"] / r["model_table_bytes"]
        versus = f"{r['steps_per_s'] / one:>8.2f}" if one else f"{'':>8}"
        lines.append(
            f"{r['mesh']:<16}{sizes}{ratio:>14.3f}{r['steps_per_s']:>10.2f}{versus}"
            f"{1 / r['floor_step_s']:>15.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.child:
        print(RECORD_PREFIX + json.dumps(run_child(FLAGS.child)), flush=True)
        return
    settings = _settings()
    records = []
    for mesh in settings["meshes"].split(";"):
        data_shards, model_shards = _mesh_sizes(mesh)
        need = (
            data_shards
            * model_shards
            * model_table_bytes(settings["users"], settings["items"], model_shards)
        )
        if need > FLAGS.max_total_gb * 2**30:
            records.append({"mesh": mesh, "skipped": f"skipped: needs {need / 2**30:.1f} GB"})
            continue
        print(f"mesh {mesh}", flush=True)
        records.append(spawn(mesh))
    print(table(records))
    print(
        "steps/s on virtual CPU devices share the host's cores: a mesh's overhead, not "
        "a speed-up. floor: one CF step's FLOPs and bytes (benchmarks/floor.py; the dense "
        "Adam over every table row dominates at scale) at the rates measured in the child."
    )
    from advjax.files import write_atomically
    from advjax.provenance import git_commit

    path = FLAGS.json or os.path.join(
        "benchmarks", "results", f"{time.strftime('%Y-%m-%d')}-sharding"
        + ("-quick" if FLAGS.quick else "") + ".json",
    )  # fmt: skip
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    record = {"settings": settings, "commit": git_commit(), "records": records}
    write_atomically(path, json.dumps(record, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
