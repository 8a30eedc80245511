"""EASE against a float64 NumPy reference, its optimality conditions, and as a fitted
model on Coat."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.data import load_dataset
from advjax.data.interactions import Interactions
from advjax.models import ease
from advjax.models.fitted import fit_data, padded_sizes
from advjax.train import TrainConfig


def _tiny(seed=0, n_users=14, n_items=9):
    """A random binary matrix as Interactions (one empty user, one empty item)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n_users, n_items)) < 0.35
    x[3] = False
    x[:, 5] = False
    indptr = np.concatenate([[0], np.cumsum(x.sum(1))]).astype(np.int64)
    items = np.concatenate([np.flatnonzero(row) for row in x]).astype(np.int32)
    return x.astype(np.float64), Interactions(indptr, items, "tiny")


def _reference_b(x: np.ndarray, l2: float) -> np.ndarray:
    """Steck's closed form in float64, column by column: B[:, j] is the ridge regression
    of X[:, j] on the other columns (B_jj = 0)."""
    n = x.shape[1]
    b = np.zeros((n, n))
    for j in range(n):
        others = [k for k in range(n) if k != j]
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + l2 * np.eye(n - 1), a.T @ x[:, j])
    return b


@pytest.mark.parametrize("l2", [0.5, 3.0, 50.0])
def test_item_item_matches_per_column_ridge_regressions_float64(l2):
    x, train = _tiny()
    data = fit_data(train, x.shape[1])
    with jax.enable_x64(True):
        b = np.asarray(ease.item_item(ease.gram(data, jnp.float64), l2))
    np.testing.assert_allclose(b, _reference_b(x, l2), rtol=1e-9, atol=1e-12)
    assert np.all(np.diag(b) == 0)


def test_b_is_a_stationary_point_of_the_constrained_objective_float64():
    """Off the diagonal, the objective's gradient -2Xᵀ(X - XB) + 2λB vanishes at B; the
    diagonal is held at 0 by the constraint, so its gradient there is the multiplier."""
    x, train = _tiny(seed=1)
    data = fit_data(train, x.shape[1])
    l2 = 2.0
    with jax.enable_x64(True):
        b = ease.item_item(ease.gram(data, jnp.float64), l2)
        grad = jax.grad(lambda m: ease.objective(data, m, l2))(b)
        perturbed = b + 1e-3 * (1 - jnp.eye(b.shape[0])) * jax.random.normal(
            jax.random.key(0), b.shape, jnp.float64
        )
        worse = ease.objective(data, perturbed, l2) - ease.objective(data, b, l2)
    off_diagonal = np.asarray(grad) * (1 - np.eye(b.shape[0]))
    assert np.abs(off_diagonal).max() < 1e-9 * np.abs(np.asarray(grad)).max() + 1e-12
    assert float(worse) > 0


def test_the_host_gram_is_the_dense_product():
    x, train = _tiny(seed=3)
    data = fit_data(train, x.shape[1])
    np.testing.assert_array_equal(ease.host_gram(data), x.T @ x)
    np.testing.assert_array_equal(np.asarray(ease.gram(data)), x.T @ x)


def test_fit_data_holds_the_matrix_both_ways_round():
    x, train = _tiny(seed=2)
    data = fit_data(train, x.shape[1])
    np.testing.assert_array_equal(np.asarray(data.dense()), x)
    users = np.asarray(data.entry_users)[np.asarray(data.by_item)]
    items = np.asarray(data.entry_items)[np.asarray(data.by_item)]
    ptr = np.asarray(data.item_ptr)
    for i in range(x.shape[1]):
        assert np.all(items[ptr[i] : ptr[i + 1]] == i)
        np.testing.assert_array_equal(users[ptr[i] : ptr[i + 1]], np.flatnonzero(x[:, i]))
    np.testing.assert_array_equal(np.asarray(data.user_degrees()), x.sum(1))
    np.testing.assert_array_equal(np.asarray(data.item_degrees()), x.sum(0))
    for blocks, matrix in ((data.user_blocks, x), (data.item_blocks, x.T)):
        rebuilt, previous = np.zeros(matrix.shape, bool), 0
        for block in blocks:
            rows, cols = np.asarray(block.rows), np.asarray(block.cols)
            assert np.all(np.diff(rows) > 0)
            degrees = matrix[rows].sum(1)
            assert degrees.min() > previous and degrees.max() <= cols.shape[1]
            previous = cols.shape[1]
            for row, padded in zip(rows, cols, strict=True):
                real = padded[padded < matrix.shape[1]]
                assert np.all(padded[len(real) :] == matrix.shape[1]) and np.all(np.diff(real) > 0)
                rebuilt[row, real] = True
        np.testing.assert_array_equal(rebuilt, matrix)  # every pair once; empty rows in none


def test_padded_widths_grow_by_a_square_root_of_two():
    sizes = padded_sizes(1000)
    assert sizes[:11] == [1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45]
    assert sizes[-2] < 1000 <= sizes[-1]
    # A row of degree one past a width is padded by under 42 % in the next.
    assert max(k / (prev + 1) for prev, k in zip(sizes, sizes[1:], strict=False)) < 1.42


def test_fitted_on_coat_its_scores_are_x_times_b_and_seeds_change_nothing():
    split = load_dataset("coat")
    data = fit_data(split.train, split.n_items)
    cfg = TrainConfig(backbone="ease", ease_l2=30.0)
    params, stats = ease.sweep(cfg, ease.init(cfg, jax.random.key(0), data), data)
    b = params["item_item"]
    chex.assert_shape(b, (split.n_items, split.n_items))
    users, items = ease.represent(cfg, params, data)
    x = np.asarray(data.dense())
    np.testing.assert_allclose(np.asarray(users @ items.T), x @ np.asarray(b), rtol=1e-5, atol=1e-6)
    again, _ = ease.sweep(cfg, {}, data)
    np.testing.assert_array_equal(np.asarray(again["item_item"]), np.asarray(b))
    assert ease.MODEL.deterministic and not ease.MODEL.iterative
    assert stats["mean_abs_weight"] > 0
    assert ease.bytes_needed(cfg, 290, 295, 1363) == 4 * (290 * 295 + 4 * 295 * 295)
