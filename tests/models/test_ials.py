"""iALS against an independent float64 NumPy solve: each half-step, the objective, descent
and stationarity of exact alternation, block sizes, compilation, and Coat in float32."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.data import Interactions, load_dataset
from advjax.models import ials
from advjax.models.fitted import fit_data

# Exactly the fields ials reads; frozen, so hashable like TrainConfig.
Config = dataclasses.make_dataclass(
    "Config",
    [("emb_dim", int, 4)] + [(s.name, type(s.default), s.default) for s in ials.SETTINGS],
    frozen=True,
)

N_USERS, N_ITEMS, EMPTY_USER, EMPTY_ITEM = 12, 9, 3, 5


def _tiny_matrix() -> np.ndarray:
    """[12, 9] random 0/1 with user 3 and item 5 empty, every other row and column not."""
    x = np.random.default_rng(0).random((N_USERS, N_ITEMS)) < 0.35
    x[np.arange(N_USERS), np.arange(N_USERS) % N_ITEMS] = True
    x[EMPTY_USER], x[:, EMPTY_ITEM] = False, False
    return x


def _fit_data(x: np.ndarray):
    indptr = np.concatenate([[0], np.cumsum(x.sum(1))]).astype(np.int64)
    items = np.nonzero(x)[1].astype(np.int32)  # row-major: ascending within each user
    return fit_data(Interactions(indptr, items, "tiny"), x.shape[1])


def _tables(d: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "user": jnp.asarray(0.5 * rng.normal(size=(N_USERS, d))),
        "item": jnp.asarray(0.5 * rng.normal(size=(N_ITEMS, d))),
    }


def _confidences(x: np.ndarray, cfg) -> np.ndarray:
    """[U, I] the weight of every pair: c on observed ones, w0 elsewhere."""
    return np.where(x, 1.0 + cfg.ials_alpha, cfg.ials_unobserved_weight)


def _reference_solve(x: np.ndarray, other: np.ndarray, cfg) -> np.ndarray:
    """Each row's argmin of sum_j C_rj (x_rj - w . y_j)^2 + lam_r |w|^2, solved densely."""
    conf = _confidences(x, cfg)
    out = np.zeros((x.shape[0], other.shape[1]))
    for r in range(x.shape[0]):
        lam = cfg.ials_reg * conf[r].sum() ** cfg.ials_reg_exponent
        a = other.T @ (conf[r][:, None] * other) + lam * np.eye(other.shape[1])
        out[r] = np.linalg.solve(a, other.T @ (conf[r] * x[r]))
    return out


def _reference_objective(x: np.ndarray, w: np.ndarray, h: np.ndarray, cfg) -> float:
    conf = _confidences(x, cfg)
    lam_u = cfg.ials_reg * conf.sum(1) ** cfg.ials_reg_exponent
    lam_i = cfg.ials_reg * conf.sum(0) ** cfg.ials_reg_exponent
    fit = np.sum(conf * (x - w @ h.T) ** 2)
    return fit + lam_u @ np.sum(w**2, 1) + lam_i @ np.sum(h**2, 1)


@pytest.mark.parametrize("nu", [0.0, 1.0])
@pytest.mark.parametrize("solver,rtol", [("cholesky", 1e-10), ("cg", 1e-8)])
def test_half_steps_match_float64_reference(solver, rtol, nu):
    x = _tiny_matrix()
    d = 4
    cfg = Config(emb_dim=d, ials_alpha=2.5, ials_unobserved_weight=0.3, ials_reg=0.05,
                 ials_reg_exponent=nu, ials_solver=solver, ials_cg_steps=2 * d)  # fmt: skip
    with jax.enable_x64(True):
        data, params = _fit_data(x), _tables(d)
        W, H = params["user"], params["item"]
        users = ials.solve_users(cfg, W, H, data)
        items = ials.solve_items(cfg, W, H, data)
        assert users.dtype == items.dtype == jnp.float64
    expected_users = _reference_solve(x, np.asarray(H), cfg)
    expected_items = _reference_solve(x.T, np.asarray(W), cfg)
    assert not expected_users[EMPTY_USER].any() and not expected_items[EMPTY_ITEM].any()
    assert np.abs(expected_users).min(initial=1, where=x.any(1)[:, None]) > 1e-4
    chex.assert_trees_all_close(np.asarray(users), expected_users, rtol=rtol, atol=rtol)
    chex.assert_trees_all_close(np.asarray(items), expected_items, rtol=rtol, atol=rtol)


def test_cg_is_warm_started_and_inexact_with_few_steps():
    x = _tiny_matrix()
    cfg = Config(emb_dim=4, ials_alpha=2.5, ials_solver="cg", ials_cg_steps=1)
    with jax.enable_x64(True):
        data, params = _fit_data(x), _tables(4)
        exact = _reference_solve(x, np.asarray(params["item"]), cfg)
        once = ials.solve_users(cfg, params["user"], params["item"], data)
        from_exact = ials.solve_users(cfg, jnp.asarray(exact), params["item"], data)
    assert np.max(np.abs(np.asarray(once) - exact)) > 1e-3  # one step is not the solve
    np.testing.assert_allclose(np.asarray(from_exact), exact, rtol=1e-10, atol=1e-12)


def test_objective_matches_dense_float64():
    x = _tiny_matrix()
    cfg = Config(emb_dim=3, ials_alpha=2.5, ials_unobserved_weight=0.3, ials_reg=0.05,
                 ials_reg_exponent=1.0)  # fmt: skip
    with jax.enable_x64(True):
        params = _tables(3)
        got = ials.objective(cfg, params, _fit_data(x))
        assert got.dtype == jnp.float64
    expected = _reference_objective(x, np.asarray(params["user"]), np.asarray(params["item"]), cfg)
    np.testing.assert_allclose(float(got), expected, rtol=1e-12)


def test_cholesky_sweeps_descend_to_a_stationary_point():
    x = _tiny_matrix()
    cfg = Config(emb_dim=3, ials_alpha=2.5, ials_unobserved_weight=0.3, ials_reg=0.05,
                 ials_reg_exponent=1.0)  # fmt: skip
    with jax.enable_x64(True):
        data, params = _fit_data(x), _tables(3)
        grad = jax.grad(lambda p: ials.objective(cfg, p, data))
        start = float(jnp.linalg.norm(grad(params)["user"]))
        losses = [float(ials.objective(cfg, params, data))]
        for _ in range(200):
            params, stats = ials.sweep(cfg, params, data)
            losses.append(float(stats["loss"]))
        end = {name: float(jnp.linalg.norm(g)) for name, g in grad(params).items()}
        np.testing.assert_allclose(losses[-1], float(ials.objective(cfg, params, data)), rtol=1e-12)
    assert np.all(np.diff(losses[:11]) <= 1e-12 * losses[0]), losses[:11]
    assert losses[-1] < 0.5 * losses[0]
    # The last half-step zeroes the item gradient; the user one is zero only at a fixed point.
    assert start > 1.0
    assert end["user"] < 1e-10 * start and end["item"] < 1e-10 * start


@pytest.mark.parametrize("solver", ials.SOLVERS)
def test_a_sweeps_loss_is_the_objective_of_its_tables(solver):
    x = _tiny_matrix()  # degrees 1 to 6: rows in several padded blocks, one empty each way
    cfg = Config(emb_dim=3, ials_alpha=2.5, ials_unobserved_weight=0.3, ials_reg=0.05,
                 ials_reg_exponent=1.0, ials_solver=solver)  # fmt: skip
    with jax.enable_x64(True):
        data, params = _fit_data(x), _tables(3)
        params, stats = ials.sweep(cfg, params, data)
        W, H = np.asarray(params["user"]), np.asarray(params["item"])
    np.testing.assert_allclose(float(stats["loss"]), _reference_objective(x, W, H, cfg), rtol=1e-12)


@pytest.mark.parametrize("block", [1, 5])
def test_cholesky_blocks_do_not_change_the_solve(block):
    x = _tiny_matrix()
    one = Config(emb_dim=4, ials_alpha=2.5, ials_unobserved_weight=0.3, ials_reg_exponent=1.0)
    split = dataclasses.replace(one, ials_block=block)  # 12 users, 9 items: a ragged last block
    with jax.enable_x64(True):
        data, params = _fit_data(x), _tables(4)
        got, _ = ials.sweep(split, params, data)
        expected, _ = ials.sweep(one, params, data)
    chex.assert_trees_all_close(got, expected, rtol=1e-12, atol=1e-12)


def test_sweep_compiles_once_across_sweeps_and_weights():
    x = _tiny_matrix()
    cfg = Config(emb_dim=4)
    data = _fit_data(x)
    params = ials.init(cfg, jax.random.key(0), data)
    params, _ = ials.sweep(cfg, params, data)
    compiled = ials._sweep._cache_size()
    for alpha in (2.0, 3.0):
        params, _ = ials.sweep(dataclasses.replace(cfg, ials_alpha=alpha), params, data)
    assert ials._sweep._cache_size() == compiled


@pytest.mark.parametrize("solver", ials.SOLVERS)
def test_float32_fit_on_coat_descends(solver):
    split = load_dataset("coat")
    data = fit_data(split.train, split.n_items)
    cfg = Config(emb_dim=16, ials_solver=solver, ials_init_std=0.1)
    params = ials.init(cfg, jax.random.key(0), data)
    chex.assert_shape((params["user"], params["item"]),
                      [(split.n_users, 16), (split.n_items, 16)])  # fmt: skip
    assert params["user"].dtype == params["item"].dtype == jnp.float32
    losses = [float(ials.objective(cfg, params, data))]
    for _ in range(3):
        params, stats = ials.sweep(cfg, params, data)
        losses.append(float(stats["loss"]))
    chex.assert_tree_all_finite(params)
    assert np.all(np.diff(losses) < 0), losses
    user, item = ials.represent(cfg, params, data)
    assert user is params["user"] and item is params["item"]
    needed = ials.MODEL.bytes_needed(cfg, split.n_users, split.n_items, data.nnz)
    assert isinstance(needed, int)
    assert needed > 4 * (split.n_users + split.n_items) * 16


def test_settings_defaults_and_checks():
    by_name = {s.name: s for s in ials.SETTINGS}
    assert all(name.startswith("ials_") for name in by_name)
    for name in ("ials_alpha", "ials_unobserved_weight", "ials_reg", "ials_reg_exponent",
                 "ials_init_std"):  # fmt: skip
        assert type(by_name[name].default) is float
    assert all(s.check(s.default) is None for s in ials.SETTINGS)
    assert by_name["ials_alpha"].check(-0.5) is not None
    assert by_name["ials_reg"].check(0.0) is not None
    assert by_name["ials_unobserved_weight"].check(0.0) is not None
    assert by_name["ials_solver"].check("lu") is not None
    assert by_name["ials_cg_steps"].check(0) is not None
    assert ials.MODEL.settings is ials.SETTINGS and ials.MODEL.iterative
