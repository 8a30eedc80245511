"""SGL: dropout 0 gives identical views and the closed-form term; views per epoch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.augmentations.spec import EpochInputs
from advjax.data import load_dataset
from advjax.models import lightgcn_rows
from advjax.models.propagation import propagate
from advjax.train import TrainConfig
from advjax.train.setup import setup_run
from advjax.train.step import Batch, augment_inputs
from tests.float64 import dense_adjacency, layer_mean, view_infonce


@pytest.fixture(scope="module")
def coat():
    return load_dataset("coat")


def _epoch_inputs(run, key, epoch=0):
    data = run.train_data
    return EpochInputs(run.state.cf_params, data.graph, data.propagation, run.cfg.n_layers,
                       key, jnp.int32(epoch), data.aug_data)  # fmt: skip


def _closed_form(embeddings: np.ndarray, tau: float) -> float:
    """InfoNCE of identical views: mean_i log sum_j exp(c_ij / tau) - 1 / tau, float64."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(unit @ unit.T / tau).sum(axis=1)) - 1 / tau))


@pytest.mark.parametrize("method", ["bcoo", "host_csr"])
def test_dropout_zero_gives_identical_views_and_the_closed_form(coat, method):
    cfg = TrainConfig(n_layers=2, loss="infonce", augment="sgl", sgl_drop_rate=0.0,
                      propagation=method)  # fmt: skip
    run = setup_run(cfg, coat)
    spec = cfg.augment_spec
    state = spec.epoch_start(cfg, run.state.aug_state, _epoch_inputs(run, jax.random.key(0)))
    weights = np.asarray(state["view_weights"])
    np.testing.assert_array_equal(weights[0], np.asarray(run.train_data.graph.weights))
    np.testing.assert_array_equal(weights[1], weights[0])
    users, pos = jnp.array([3, 1, 3, 8]), jnp.array([0, 0, 4, 7])
    batch = Batch(users, pos, jnp.zeros((4, 2), jnp.int32), jax.random.key(1))
    inputs = augment_inputs(cfg, run.state.replace(aug_state=state), run.train_data, batch,
                            run.state.cf_params)  # fmt: skip
    out = spec.forward(cfg, inputs)
    params, graph = run.state.cf_params, run.train_data.graph
    rows, items = lightgcn_rows(params, graph, users, n_layers=2, method=method)
    np.testing.assert_allclose(np.asarray(out.user_rows), np.asarray(rows), atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.item_emb), np.asarray(items), atol=1e-6)
    final = np.asarray(
        propagate(jnp.concatenate([params["user"], params["item"]]), graph, 2, method), np.float64
    )
    n = coat.n_users
    expected = _closed_form(final[[1, 3, 8]], 0.15) + _closed_form(
        final[n + np.array([0, 4, 7])], 0.15
    )
    np.testing.assert_allclose(float(out.diagnostics["cl_loss"]), expected, rtol=1e-4)
    np.testing.assert_allclose(float(out.loss), 0.2 * expected, rtol=1e-4)


def test_views_differ_between_views_and_epochs_and_drop_the_share(coat):
    cfg = TrainConfig(n_layers=2, loss="infonce", augment="sgl", sgl_drop_rate=0.3)
    run = setup_run(cfg, coat)
    spec = cfg.augment_spec
    first = spec.epoch_start(cfg, run.state.aug_state, _epoch_inputs(run, jax.random.key(0)))
    second = spec.epoch_start(cfg, first, _epoch_inputs(run, jax.random.key(1), epoch=1))
    a, b = np.asarray(first["view_weights"])
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, np.asarray(second["view_weights"])[0])
    kept = np.mean(a > 0)
    assert abs(kept - 0.7) < 5 * np.sqrt(0.21 / (a.size / 2))


def _view_reference(graph, weights, params, users, pos, n_layers, tau) -> float:
    """SGL's contrast in float64 NumPy: each view's dense adjacency, its layer mean, the
    InfoNCE of the two views over the distinct users and the distinct positive items."""
    x0 = np.concatenate([params["user"], params["item"]]).astype(np.float64)
    views = [
        layer_mean(dense_adjacency(graph._replace(weights=w)), x0, n_layers)
        for w in np.asarray(weights, np.float64)
    ]
    n_users = params["user"].shape[0]

    def infonce(ids):
        return view_infonce(views[0][ids], views[1][ids], np.ones(len(ids), bool), tau)

    return infonce(np.unique(users)) + infonce(n_users + np.unique(pos))


@pytest.mark.parametrize("method", ["bcoo", "host_csr"])
def test_views_match_a_float64_reference_value_and_gradient(coat, method):
    # Dropout 0.3: each view's dense float64 adjacency, layer mean and InfoNCE, against
    # the term SGL adds, and its gradient against central differences of the reference.
    cfg = TrainConfig(n_layers=2, loss="infonce", augment="sgl", sgl_drop_rate=0.3,
                      propagation=method)  # fmt: skip
    run = setup_run(cfg, coat)
    spec, graph = cfg.augment_spec, run.train_data.graph
    state = spec.epoch_start(cfg, run.state.aug_state, _epoch_inputs(run, jax.random.key(0)))
    users, pos = jnp.array([3, 1, 3, 8, 250]), jnp.array([0, 0, 4, 7, 290])
    batch = Batch(users, pos, jnp.zeros((5, 2), jnp.int32), jax.random.key(1))
    with_views = run.state.replace(aug_state=state)

    def cl_loss(params):
        inputs = augment_inputs(cfg, with_views, run.train_data, batch, params)
        return spec.forward(cfg, inputs).diagnostics["cl_loss"]

    params = run.state.cf_params
    value, grads = jax.value_and_grad(cl_loss)(params)
    host = jax.tree.map(np.asarray, params)
    expected = _view_reference(graph, state["view_weights"], host, users, pos, 2, cfg.cl_tau)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    # The gradient against central differences of the float64 reference, along a
    # random direction over both tables.
    key_u, key_i = jax.random.split(jax.random.key(2))
    direction = {"user": np.asarray(jax.random.normal(key_u, host["user"].shape)),
                 "item": np.asarray(jax.random.normal(key_i, host["item"].shape))}  # fmt: skip
    eps = 1e-4
    moved = [
        _view_reference(graph, state["view_weights"],
                        {k: host[k].astype(np.float64) + s * eps * direction[k] for k in host},
                        users, pos, 2, cfg.cl_tau)
        for s in (1, -1)
    ]  # fmt: skip
    numeric = (moved[0] - moved[1]) / (2 * eps)
    analytic = sum(float(np.sum(np.asarray(grads[k]) * direction[k])) for k in host)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3)
