"""What a run leaves in its workdir besides checkpoints: scalars, events, clean failures."""

import json
import struct

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from tensorboardX.proto import event_pb2

from advjax.data import load_dataset
from advjax.errors import NonFiniteError
from advjax.train import TrainConfig, train_and_evaluate


@pytest.fixture(scope="module")
def coat():
    return load_dataset("coat")


def _tb_scalars(tb_dir) -> dict[str, dict[int, float]]:
    """Decodes TensorBoard event files: TFRecord frames of Event protos."""
    scalars = {}
    for path in tb_dir.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def test_scalars_as_json_lines_and_tensorboard_events(coat, tmp_path):
    cfg = TrainConfig(lr=1e-2, max_epochs=10, t_adv=5, e_adv=2, eval_every=5)
    lines = []
    results = train_and_evaluate(cfg, str(tmp_path), data=coat, log=lines.append)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    per_epoch, final = records[:-1], records[-1]
    assert [r["epoch"] for r in per_epoch] == list(range(1, 11))
    for r in per_epoch:
        assert r["loss"] > 0 and r["epoch_s"] > 0 and r["samples_per_s"] > 0 and r["kl"] >= 0
    assert [r["epoch"] for r in per_epoch if "adv_loss" in r] == [3, 8]
    assert [r["epoch"] for r in per_epoch if "valid/recall@20" in r] == [5, 10]
    assert final["final"] and final["test_ood/ndcg@20"] == results["test_ood"]["ndcg@20"]
    tb = _tb_scalars(tmp_path / "tb")
    assert sorted(tb["loss"]) == list(range(1, 11))
    np.testing.assert_allclose(tb["loss"][7], per_epoch[6]["loss"], rtol=1e-6)
    assert sorted(tb["valid/recall_20"]) == [5, 10]
    # Progress lines carry throughput, the time to patience's stop and the ETA bound.
    progress = [x for x in lines if x.startswith("epoch ")]
    assert all("/s |" in x for x in progress)
    assert all(" if valid stops improving (epoch 10), <= " in x for x in progress[1:])


def test_non_finite_loss_stops_and_keeps_only_finite_checkpoints(coat, tmp_path):
    # Adam with lr 1e38 overflows the embeddings in the first update.
    cfg = TrainConfig(lr=1e38, max_epochs=10, eval_every=1)
    with pytest.raises(NonFiniteError, match=r"non-finite loss .* epoch 2 \(steps up to 2\)"):
        train_and_evaluate(cfg, str(tmp_path), data=coat, log=lambda s: None)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [1]
    with ocp.CheckpointManager(tmp_path / "checkpoints") as manager:
        restored = manager.restore(1)
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(restored["state"])]
    floats = [x for x in leaves if x.dtype.kind == "f"]
    assert floats and all(np.isfinite(x).all() for x in floats)
