"""NCL: its two terms against float64 NumPy, the start epoch, the per-epoch k-means."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.augmentations.contrastive import target_infonce
from advjax.augmentations.kmeans import kmeans
from advjax.augmentations.ncl import KMEANS_ITERS
from advjax.augmentations.spec import EpochInputs
from advjax.data import load_dataset
from advjax.errors import ConfigError
from advjax.models import lightgcn_rows
from advjax.models.propagation import propagate_layers
from advjax.train import TrainConfig
from advjax.train.setup import setup_run
from advjax.train.step import Batch, augment_inputs


@pytest.fixture(scope="module")
def coat():
    return load_dataset("coat")


def _target_reference(queries, keys, targets, tau):
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    k = keys / np.linalg.norm(keys, axis=1, keepdims=True)
    logits = q @ k.T / tau
    lse = np.log(np.exp(logits).sum(axis=1))
    return float(np.mean(lse - logits[np.arange(len(targets)), targets]))


def test_target_infonce_matches_float64_reference():
    rng = np.random.default_rng(0)
    q, k, t = rng.normal(size=(7, 5)), rng.normal(size=(11, 5)), rng.integers(0, 11, 7)
    got = target_infonce(jnp.asarray(q), jnp.asarray(k), jnp.asarray(t), 0.2)
    np.testing.assert_allclose(float(got), _target_reference(q, k, t, 0.2), rtol=1e-5)


def _epoch_inputs(run, state, epoch):
    data = run.train_data
    return EpochInputs(state.cf_params, data.graph, data.propagation, run.cfg.n_layers,
                       jax.random.key(7), jnp.int32(epoch), data.aug_data)  # fmt: skip


def test_clusters_are_fitted_from_the_start_epoch(coat):
    cfg = TrainConfig(n_layers=2, loss="infonce", augment="ncl", ncl_start_epoch=3,
                      ncl_clusters=10)  # fmt: skip
    run = setup_run(cfg, coat)
    spec, state = cfg.augment_spec, run.state
    before = spec.epoch_start(cfg, state.aug_state, _epoch_inputs(run, state, 2))
    chex.assert_trees_all_equal(before, state.aug_state)  # not fitted yet
    fitted = spec.epoch_start(cfg, state.aug_state, _epoch_inputs(run, state, 3))
    expected = kmeans(jax.random.fold_in(jax.random.key(7), 0), state.cf_params["user"], 10,
                      KMEANS_ITERS)  # fmt: skip
    np.testing.assert_allclose(np.asarray(fitted["user_centroids"]),
                               np.asarray(expected.centroids), atol=1e-6)  # fmt: skip
    np.testing.assert_array_equal(np.asarray(fitted["user_assign"]), np.asarray(expected.assign))
    assert fitted["item_centroids"].shape == (10, 64) and fitted["item_assign"].shape == (295,)
    # 2000 clusters are capped at the number of nodes.
    assert TrainConfig(n_layers=2, augment="ncl").ncl_clusters == 2000
    capped = setup_run(TrainConfig(n_layers=2, loss="infonce", augment="ncl"), coat)
    assert capped.state.aug_state["user_centroids"].shape == (290, 64)


@pytest.mark.parametrize("method", ["bcoo", "host_csr"])
def test_terms_match_float64_reference_and_wait_for_the_start(coat, method):
    cfg = TrainConfig(n_layers=2, loss="infonce", augment="ncl", ncl_start_epoch=3,
                      ncl_clusters=10, ncl_proto_weight=0.5, propagation=method)  # fmt: skip
    run = setup_run(cfg, coat)
    spec = cfg.augment_spec
    aug = spec.epoch_start(cfg, run.state.aug_state, _epoch_inputs(run, run.state, 3))
    users, pos = jnp.array([2, 9, 9, 40]), jnp.array([1, 5, 6, 1])
    batch = Batch(users, pos, jnp.zeros((4, 2), jnp.int32), jax.random.key(1))
    params, graph = run.state.cf_params, run.train_data.graph
    rows, items = lightgcn_rows(params, graph, users, n_layers=2, method=method)
    for epoch, on in ((2, 0.0), (3, 1.0)):
        state = run.state.replace(aug_state=aug, epoch=jnp.int32(epoch))
        out = spec.forward(cfg, augment_inputs(cfg, state, run.train_data, batch, params))
        np.testing.assert_allclose(np.asarray(out.user_rows), np.asarray(rows), atol=1e-6)
        np.testing.assert_allclose(np.asarray(out.item_emb), np.asarray(items), atol=1e-6)
        nodes = jnp.concatenate([params["user"], params["item"]])
        layers = [np.asarray(x, np.float64) for x in propagate_layers(nodes, graph, 2, method)]
        n, u, i = coat.n_users, np.asarray(users), np.asarray(pos)
        ego, ctx = layers[0], layers[2]
        # Structural: the batch's distinct nodes against each other.
        du, di = np.unique(u), np.unique(i)
        structural = _target_reference(
            ctx[:n][du], ego[:n][du], np.arange(len(du)), 0.15
        ) + _target_reference(ctx[n:][di], ego[n:][di], np.arange(len(di)), 0.15)
        a = {k: np.asarray(v, np.float64) for k, v in aug.items()}
        prototype = _target_reference(
            ego[:n][u], a["user_centroids"], a["user_assign"][u].astype(int), 0.15
        ) + _target_reference(
            ego[n:][i], a["item_centroids"], a["item_assign"][i].astype(int), 0.15
        )
        np.testing.assert_allclose(float(out.diagnostics["cl_loss"]), structural, rtol=1e-4)
        np.testing.assert_allclose(float(out.diagnostics["proto_loss"]), prototype, rtol=1e-4)
        np.testing.assert_allclose(float(out.loss), on * (0.2 * structural + 0.5 * prototype),
                                   rtol=1e-4, atol=1e-9)  # fmt: skip


def test_needs_two_layers():
    with pytest.raises(ConfigError, match="needs n_layers >= 2"):
        TrainConfig(n_layers=1, augment="ncl")
