"""The augmentations' shared contrastive term against float64 NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from advjax.augmentations.contrastive import distinct, nodes_infonce, view_infonce
from tests.float64 import view_infonce as view_infonce_f64


def test_view_infonce_matches_float64_reference_with_padding():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 8)), rng.normal(size=(12, 8))
    mask = np.array([True] * 9 + [False] * 3)
    got = view_infonce(
        jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), jnp.asarray(mask), 0.15
    )
    np.testing.assert_allclose(float(got), view_infonce_f64(a, b, mask, 0.15), rtol=1e-5)


def test_identical_views_give_the_closed_form():
    # With b = a (SGL at dropout 0): loss_i = log sum_j exp(<a_i, a_j> / tau) - 1 / tau.
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 4))
    unit = a / np.linalg.norm(a, axis=1, keepdims=True)
    closed = np.mean(np.log(np.exp(unit @ unit.T / 0.5).sum(axis=1)) - 1 / 0.5)
    got = view_infonce(jnp.asarray(a), jnp.asarray(a), jnp.ones(6, bool), 0.5)
    np.testing.assert_allclose(float(got), closed, rtol=1e-6)


def test_padding_gets_no_gradient_and_no_nan():
    a = jax.random.normal(jax.random.key(0), (5, 3))
    mask = jnp.array([True, True, True, False, False])
    grad = jax.grad(lambda a: view_infonce(a, a * 2.0, mask, 0.2))(a)
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_array_equal(np.asarray(grad[3:]), 0.0)


def test_gradients_by_finite_differences():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    mask = jnp.array([True, True, True, True, False])
    with jax.enable_x64(True):
        check_grads(lambda a, b: view_infonce(a, b, mask, 0.3), (jnp.asarray(a), jnp.asarray(b)),
                    order=1, modes=("rev",))  # fmt: skip


def test_nodes_infonce_counts_each_node_once():
    rng = np.random.default_rng(3)
    view_a, view_b = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    ids = jnp.array([7, 2, 7, 7, 5, 2])  # three distinct nodes, repeated
    rows, mask = distinct(ids)
    assert sorted(np.asarray(rows)[np.asarray(mask)].tolist()) == [2, 5, 7]
    got = nodes_infonce(jnp.asarray(view_a), jnp.asarray(view_b), ids, 0.15)
    keep = [2, 5, 7]
    expected = view_infonce_f64(view_a[keep], view_b[keep], np.ones(3, bool), 0.15)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
