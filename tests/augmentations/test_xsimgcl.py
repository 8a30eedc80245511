"""XSimGCL: the noise, the eps = 0 identity, and a short training run."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.augmentations.contrastive import nodes_infonce
from advjax.augmentations.xsimgcl import sign_noise
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


def test_noise_has_norm_eps_and_the_layers_signs():
    layer = jax.random.normal(jax.random.key(0), (50, 16))
    noisy = sign_noise(jax.random.key(1), layer, 0.2)
    noise = np.asarray(noisy - layer)
    np.testing.assert_allclose(np.linalg.norm(noise, axis=1), 0.2, rtol=1e-5)
    assert np.all(noise * np.asarray(layer) >= 0)  # same sign, component-wise
    np.testing.assert_array_equal(np.asarray(sign_noise(jax.random.key(1), layer, 0.0)), layer)


def _forward(cfg, run, batch):
    inputs = augment_inputs(cfg, run.state, run.train_data, batch, run.state.cf_params)
    return cfg.augment_spec.forward(cfg, inputs)


@pytest.mark.parametrize("method", ["bcoo", "host_csr"])
def test_eps_zero_is_lightgcn_and_its_layer_view(coat, method):
    cfg = TrainConfig(n_layers=2, loss="infonce", augment="xsimgcl", xsimgcl_eps=0.0,
                      propagation=method)  # fmt: skip
    run = setup_run(cfg, coat)
    users, pos = jnp.array([0, 5, 5, 9]), jnp.array([1, 2, 3, 4])
    batch = Batch(users, pos, jnp.zeros((4, 2), jnp.int32), jax.random.key(3))
    out = _forward(cfg, run, batch)
    params, graph = run.state.cf_params, run.train_data.graph
    rows, items = lightgcn_rows(params, graph, users, n_layers=2, method=method)
    np.testing.assert_allclose(np.asarray(out.user_rows), np.asarray(rows), atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.item_emb), np.asarray(items), atol=1e-6)
    nodes = jnp.concatenate([params["user"], params["item"]])
    layers = propagate_layers(nodes, graph, 2, method)
    final, view, n = sum(layers) / 3, layers[1], coat.n_users
    cl = nodes_infonce(final[:n], view[:n], users, 0.15) + nodes_infonce(
        final[n:], view[n:], pos, 0.15
    )
    np.testing.assert_allclose(float(out.loss), 0.2 * float(cl), rtol=1e-5)
    assert float(out.diagnostics["cl_loss"]) == pytest.approx(float(cl), rel=1e-5)


def test_noise_moves_the_step_and_depends_on_the_key(coat):
    cfg = TrainConfig(n_layers=2, loss="infonce", augment="xsimgcl")
    run = setup_run(cfg, coat)
    batch = Batch(jnp.array([0, 1]), jnp.array([2, 3]), jnp.zeros((2, 2), jnp.int32),
                  jax.random.key(3))  # fmt: skip
    a, b = _forward(cfg, run, batch), _forward(cfg, run, batch._replace(key=jax.random.key(4)))
    assert not np.allclose(np.asarray(a.item_emb), np.asarray(b.item_emb))
    chex.assert_trees_all_equal(a, _forward(cfg, run, batch))


def test_settings_are_checked():
    with pytest.raises(
        ConfigError,
        match=r"acts on propagation layers: needs a backbone with them \(lightgcn\), not mf",
    ):
        TrainConfig(n_layers=0, augment="xsimgcl")
    with pytest.raises(ConfigError, match="xsimgcl_layer_cl 3 exceeds n_layers 2"):
        TrainConfig(n_layers=2, augment="xsimgcl", xsimgcl_layer_cl=3)
    with pytest.raises(ConfigError, match="unknown augment 'simgcl'"):
        TrainConfig(n_layers=2, augment="simgcl")
    with pytest.raises(ConfigError, match="cl_tau must be > 0"):
        TrainConfig(n_layers=2, augment="xsimgcl", cl_tau=0.0)
