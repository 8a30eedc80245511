"""VGAE (advjax/models/vgae.py): the KL term against its closed form in float64 and a
Monte-Carlo estimate, the reparameterisation's gradient, the step's sampled rows, its
limit without noise (LightGCN's step), and a Coat run through the normal entry point."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.data import load_dataset
from advjax.errors import ConfigError
from advjax.models import lightgcn, vgae
from advjax.train import Batch, TrainConfig, cf_step, setup_run, train_and_evaluate


def _normal_log_density(z, mu, sigma):
    return np.sum(-0.5 * ((z - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi), -1)


def test_kl_matches_the_closed_form_in_float64_and_a_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    mu, log_sig = rng.normal(size=(3, 4)), 0.5 * rng.normal(size=(3, 4))
    sigma = np.exp(log_sig)
    with jax.enable_x64(True):
        got = np.asarray(vgae.kl_per_node(jnp.asarray(mu), jnp.asarray(log_sig)))
    # KL(N(mu, s^2) || N(0, 1)) per dimension: log(1 / s) + (s^2 + mu^2) / 2 - 1 / 2.
    closed = np.sum(-log_sig + (sigma**2 + mu**2) / 2 - 0.5, -1)
    np.testing.assert_allclose(got, closed, rtol=1e-12)
    z = mu + sigma * rng.normal(size=(400_000, 3, 4))
    zeros, ones = np.zeros_like(mu), np.ones_like(mu)
    monte_carlo = np.mean(
        _normal_log_density(z, mu, sigma) - _normal_log_density(z, zeros, ones), axis=0
    )
    np.testing.assert_allclose(got, monte_carlo, rtol=0.02)


def test_the_reparameterisations_gradient_is_the_expectations():
    """E ||z||^2 = ||mu||^2 + sum sigma^2: its gradient in (mu, log sigma) is
    (2 mu, 2 sigma^2), which the sampled mean's gradient must estimate."""
    mu = jnp.array([[0.3, -1.2, 0.5]])
    log_sig = jnp.array([[-0.5, 0.2, 0.0]])
    keys = jax.random.split(jax.random.key(0), 100_000)

    def sampled(mu, log_sig):
        draws = jax.vmap(lambda key: vgae.reparameterize(mu, log_sig, key))(keys)
        return jnp.mean(jnp.sum(draws**2, axis=(-2, -1)))

    grad_mu, grad_log_sig = jax.grad(sampled, argnums=(0, 1))(mu, log_sig)
    np.testing.assert_allclose(grad_mu, 2 * mu, atol=0.02)
    np.testing.assert_allclose(grad_log_sig, 2 * jnp.exp(2 * log_sig), rtol=0.02)


def test_sample_draws_z_from_the_head_and_weighs_the_mean_kl():
    cfg = TrainConfig(backbone="vgae", n_layers=2, emb_dim=3, vgae_beta=0.25)
    params = vgae.init_params(cfg, jax.random.key(1), 4, 5)
    head = {"w": 0.1 * jnp.arange(9.0).reshape(3, 3), "b": jnp.array([-1.0, 0.0, 11.0])}
    params["vgae_sigma"] = head
    user_mu = jax.random.normal(jax.random.key(2), (2, 3))
    item_mu = jax.random.normal(jax.random.key(3), (5, 3))
    key = jax.random.key(4)
    user_z, item_z, term, stats = vgae.sample(cfg, params, user_mu, item_mu, key)
    user_log_sig = np.minimum(np.asarray(user_mu) @ np.asarray(head["w"]) + head["b"], 10.0)
    assert user_log_sig.max() == 10.0  # the third bias is past the clamp
    np.testing.assert_allclose(vgae.log_sigma(head, user_mu), user_log_sig, rtol=1e-6)
    user_key, item_key = jax.random.split(key)
    eps = jax.random.normal(user_key, (2, 3))
    np.testing.assert_allclose(user_z, user_mu + eps * np.exp(user_log_sig), rtol=1e-5)
    assert item_z.shape == (5, 3)
    nodes = jnp.concatenate(
        [
            vgae.kl_per_node(user_mu, vgae.log_sigma(head, user_mu)),
            vgae.kl_per_node(item_mu, vgae.log_sigma(head, item_mu)),
        ]  # fmt: skip
    )
    np.testing.assert_allclose(stats["kl"], jnp.mean(nodes), rtol=1e-6)
    np.testing.assert_allclose(term, 0.25 * jnp.mean(nodes), rtol=1e-6)


def test_without_noise_or_kl_a_step_is_lightgcns_and_the_scores_are_mu():
    data = load_dataset("coat")
    batch = Batch(
        users=jnp.array([0, 1, 2, 3]),
        pos=jnp.array([1, 2, 3, 5]),
        negs=jnp.array([[2, 3, 4], [0, 4, 5], [0, 1, 5], [0, 1, 2]]),
        key=jax.random.key(0),
    )
    common = {"loss": "infonce", "n_neg": 3, "batch_size": 4, "emb_dim": 8, "n_layers": 2}
    light = TrainConfig(backbone="lightgcn", **common)
    quiet = TrainConfig(backbone="vgae", vgae_beta=0.0, vgae_log_sigma_init=-40.0, **common)
    steps, runs = {}, {}
    for cfg in (light, quiet):
        run = runs[cfg.backbone] = setup_run(cfg, data)
        steps[cfg.backbone] = cf_step(cfg, run.state, run.train_data, batch)
        model = run.model(run.state.cf_params)
        expected = lightgcn.lightgcn_embed(run.state.cf_params, run.train_data.graph, n_layers=2,
                                           method=run.train_data.propagation)  # fmt: skip
        np.testing.assert_array_equal(model.users, expected[0])
    (light_state, light_stats), (vgae_state, vgae_stats) = steps["lightgcn"], steps["vgae"]
    np.testing.assert_allclose(vgae_stats["loss"], light_stats["loss"], rtol=1e-6)
    for group in ("user", "item"):
        np.testing.assert_allclose(
            vgae_state.cf_params[group], light_state.cf_params[group], rtol=1e-5, atol=1e-8
        )
    assert float(vgae_stats["kl"]) > 0
    # With noise, the step's draws are the batch key's (its BACKBONE_BATCH stream).
    run = runs["vgae"]
    head = {**run.state.cf_params["vgae_sigma"], "b": jnp.zeros(8)}
    noisy = run.state.replace(cf_params={**run.state.cf_params, "vgae_sigma": head})
    step = jax.jit(cf_step, static_argnums=0)
    loss = [step(quiet, noisy, run.train_data, batch._replace(key=jax.random.key(k)))[1]["loss"]
            for k in (0, 0, 1)]  # fmt: skip
    assert loss[0] == loss[1] != loss[2]
    assert abs(float(loss[0]) - float(vgae_stats["loss"])) > 1e-3


def test_bad_configurations_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"--backbone=vgae needs --n_layers >= 1"):
        TrainConfig(backbone="vgae")
    with pytest.raises(ConfigError, match=r"--augment=sgl builds others"):
        TrainConfig(backbone="vgae", n_layers=2, augment="sgl")
    with pytest.raises(ConfigError, match=r"--vgae_beta=0.1 is a setting of --backbone=vgae"):
        TrainConfig(backbone="lightgcn", n_layers=2, vgae_beta=0.1)
    with pytest.raises(ConfigError, match=r"vgae_log_sigma_init must be < 10"):
        TrainConfig(backbone="vgae", n_layers=2, vgae_log_sigma_init=10.0)


def test_trains_on_coat_through_the_entry_point(tmp_path):
    cfg = TrainConfig(backbone="vgae", n_layers=2, loss="infonce", tau=0.75, n_neg=64,
                      max_epochs=20, eval_every=10)  # fmt: skip
    lines = []
    results = train_and_evaluate(cfg, str(tmp_path / "vgae"), data=load_dataset("coat"),
                                 log=lines.append)  # fmt: skip
    # Random embeddings give about 0.07 test Recall@20 on Coat (tests/train/test_loop.py).
    assert results["test_ood"]["recall@20"] > 0.12
    assert results["flags"]["backbone"] == "vgae"
    assert any("VGAE-2 + infonce" in line for line in lines)
    assert any(" kl " in line for line in lines)
    changed = dataclasses.replace(cfg, max_epochs=20)
    again = train_and_evaluate(changed, str(tmp_path / "vgae"), data=load_dataset("coat"),
                               test_only=True)  # fmt: skip
    assert again["test_ood"] == results["test_ood"]
