"""Trains one case on one device and on meshes of virtual CPU devices; prints a JSON
comparison. Run by tests/train/test_sharding.py in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (the device count is fixed when JAX
starts, so the rest of the suite keeps its one device).

  python tests/train/mesh_worker.py CASE EPOCHS "data:8;data:4,model:2;model:8"
  python tests/train/mesh_worker.py evaluation 0 "data:8;model:8"
  python tests/train/mesh_worker.py checkpoint 0 "model:8;model:4;WORKDIR"

Each run takes EPOCHS CF epochs with an adversarial epoch before every fifth (the 3rd,
8th, ...), from the same seed. Output, per mesh: the largest absolute difference of
every state array from the one-device run, whether all are bit-identical, the
validation metrics, and each device's rows of the user table.
"""

import json
import sys

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from advjax.data import Interactions, SplitData, load_split_dir
from advjax.train import TrainConfig
from advjax.train.setup import setup_run
from tests.helpers import SHARED_DATA

CASES = {
    "coat_mf": TrainConfig(lr=0.01, t_adv=5),
    "coat_lightgcn": TrainConfig(lr=0.01, t_adv=5, n_layers=2, propagation="bcoo"),
    "yahoo_lightgcn": TrainConfig(
        lr=0.005, t_adv=5, n_layers=2, propagation="bcoo", data_dir=str(SHARED_DATA / "yahoo.new")
    ),
}
YAHOO_USERS = 1000  # the slice: Yahoo!R3's first users, all their pairs, every item


def _rows(pairs: Interactions, n: int) -> Interactions:
    return Interactions(pairs.indptr[: n + 1], pairs.items[: pairs.indptr[n]], pairs.path)


def yahoo_slice() -> SplitData:
    data = load_split_dir(SHARED_DATA / "yahoo.new")
    n = YAHOO_USERS
    return SplitData(
        name="yahoo_slice",
        n_users=n,
        n_items=data.n_items,
        train=_rows(data.train, n),
        valid=_rows(data.valid, n),
        tests={name: _rows(pairs, n) for name, pairs in data.tests.items()},
        not_candidate=data.not_candidate,
    )


def train(case: str, epochs: int, mesh: str, data):
    """(unpadded state after `epochs`, valid metrics evaluated where the state lives,
    rows per device of the user table)."""
    run = setup_run(CASES[case], data, mesh=mesh)
    state = run.state if run.placement is None else run.placement.place_state(run.state)
    shard_rows = [s.data.shape[0] for s in state.cf_params["user"].addressable_shards]
    for epoch in range(epochs):
        if epoch % 5 == 2:
            state, _ = run.fns.adv_epoch(state, run.train_data)
        state, _ = run.fns.cf_epoch(state, run.train_data)
    valid = run.evaluate(state.cf_params, ["valid"])["valid"]  # on a mesh: sharded
    return _unplaced(run, state), valid, shard_rows


def _unplaced(run, state):
    """`state` as one device holds it: on a mesh, unpadded in host memory."""
    return state if run.placement is None else run.placement.host_state(state)


def _arrays(state) -> dict[str, np.ndarray]:
    tree = state.replace(key=jax.random.key_data(state.key))
    leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(tree))
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def evaluation_report(meshes: list[str]) -> dict:
    """Per mesh and Coat evaluator (and one with not-candidate items): the largest
    difference of Evaluator.per_user_on_mesh from per_user, for random embeddings with
    an exact tie."""
    from advjax.data import load_dataset
    from advjax.evaluation import build_evaluators, make_evaluator
    from advjax.models.trained import TrainedModel
    from advjax.sharding import make_mesh, padded_rows, parse_mesh

    data = load_dataset("coat")
    rng = np.random.default_rng(0)
    user = rng.normal(size=(data.n_users, 16)).astype(np.float32)
    item = rng.normal(size=(data.n_items, 16)).astype(np.float32)
    item[7] = item[5]  # a tie, broken by the lower id on one device
    evaluators = build_evaluators(data, batch_size=64)
    blocked = np.arange(0, data.n_items, 7)
    evaluators["not_candidate"] = make_evaluator(
        "not_candidate", data.valid, [data.train], n_items=data.n_items, batch_size=50,
        not_candidate=blocked,
    )  # fmt: skip
    report = {}
    for spec in meshes:
        mesh = make_mesh(*parse_mesh(spec, jax.device_count()))
        padded = np.zeros((padded_rows(data.n_items, mesh.shape["model"]), 16), np.float32)
        padded[: data.n_items] = item
        on_mesh = (
            jax.device_put(user, NamedSharding(mesh, PartitionSpec())),
            jax.device_put(padded, NamedSharding(mesh, PartitionSpec("model"))),
        )
        report[spec] = {}
        for name, evaluator in evaluators.items():
            alone = evaluator.per_user(TrainedModel(user, item), (5, 20))
            split = evaluator.per_user_on_mesh(TrainedModel(*on_mesh), (5, 20), mesh)
            report[spec][name] = {m: float(np.max(np.abs(split[m] - alone[m]))) for m in alone}
    return report


def checkpoint_report(saved_on: str, restored_on: str, workdir: str) -> dict:
    """A Coat state trained 3 epochs on mesh `saved_on`, checkpointed, and restored on
    `restored_on` and on one device: their padded rows, and whether each restored
    state, unpadded, equals the saved one."""
    from advjax.train.checkpoints import RunCheckpoints

    cfg = CASES["coat_mf"]
    run = setup_run(cfg, mesh=saved_on)
    state = run.placement.place_state(run.state)
    for _ in range(3):
        state, _ = run.fns.cf_epoch(state, run.train_data)
    ckpt = RunCheckpoints(workdir, cfg, log=lambda line: print(line, file=sys.stderr))
    ckpt.save(state, {"best_epoch": 0})
    saved = _arrays(run.placement.host_state(state))
    report = {"saved_user_rows": int(state.cf_params["user"].shape[0])}
    rows, equal = {}, {}
    for mesh in (restored_on, "one"):
        other = setup_run(cfg, mesh="" if mesh == "one" else mesh)
        target = other.placement.abstract_state(other.state) if other.placement else None
        restored, _ = ckpt.restore_latest(other.state, target)
        rows[mesh] = int(restored.cf_params["user"].shape[0])
        got = _arrays(_unplaced(other, restored))
        equal[mesh] = got.keys() == saved.keys() and all(
            np.array_equal(got[name], saved[name]) for name in saved
        )
    ckpt.close()
    return {**report, "restored_user_rows": rows, "equal": equal}


def main(case: str, epochs: int, meshes: list[str]) -> None:
    if case == "checkpoint":
        print(json.dumps(checkpoint_report(*meshes)))
        return
    if case == "evaluation":
        print(json.dumps(evaluation_report(meshes)))
        return
    data = yahoo_slice() if case.startswith("yahoo") else None
    base, base_valid, _ = train(case, epochs, "", data)
    base = _arrays(base)
    report = {"devices": jax.device_count(), "one_device": {"valid": base_valid}}
    for mesh in meshes:
        state, valid, shard_rows = train(case, epochs, mesh, data)
        arrays = _arrays(state)
        assert arrays.keys() == base.keys(), (sorted(arrays), sorted(base))
        diff = {
            name: float(np.max(np.abs(arrays[name].astype(np.float64) - base[name]), initial=0))
            for name in base
        }
        report[mesh] = {
            "max_abs_diff": diff,
            "bitwise": all(np.array_equal(arrays[n], base[n]) for n in base),
            "valid": valid,
            "user_rows_per_device": shard_rows,
            "adv_epochs": int(state.adv_epochs),
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3].split(";"))
