import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax import losses
from advjax.data import load_dataset
from advjax.sampling import bisection_steps, epoch_positives, sample_negatives
from advjax.scores import l2_normalize
from advjax.train import Batch, TrainConfig, setup_run
from advjax.train.step import loss_inputs


@pytest.fixture(scope="module")
def coat():
    return load_dataset("coat")


def _setup(data, **overrides):
    chex.clear_trace_counter()  # counts are per code object, shared across tests
    cfg = TrainConfig(**{"batch_size": 256, "n_neg": 16, **overrides})
    run = setup_run(cfg, data, trace_hook=lambda fn: chex.assert_max_traces(fn, n=1))
    return cfg, run.fns, run.state, run.train_data


def _batch_loss(cfg, state, train_data, user_vecs, item_table, users, pos, negs, key=None):
    """(per-sample loss, diagnostics) of cfg.loss on one batch at the state's parameters."""
    batch = Batch(users, pos, negs, key)
    inputs = loss_inputs(
        state, train_data, batch, user_vecs, item_table, state.cf_params, state.adv_params
    )
    value = cfg.loss_spec.value(cfg, inputs)
    return value.per_sample, value.diagnostics


def _copy(tree):
    return jax.tree_util.tree_map(np.array, tree)


def _fixed_loss(cfg, data, train_data, state, seed=7, n=4096):
    """Mean loss of a fixed sample set, for comparing parameters before and after."""
    key_pos, key_neg = jax.random.split(jax.random.key(seed))
    users, pos = epoch_positives(
        key_pos, train_data.pairs, n_samples=data.train.nnz, n_batches=1,
        batch_size=data.train.nnz,
    )  # fmt: skip
    users, pos = users[0], pos[0]
    steps = bisection_steps(int(data.train.degrees().max()))
    negs = sample_negatives(key_neg, train_data.pairs, users, n_neg=cfg.n_neg,
                            n_items=data.n_items, steps=steps)  # fmt: skip
    user_emb, item_emb = state.cf_params["user"], state.cf_params["item"]
    per, aux = _batch_loss(
        cfg, state, train_data, l2_normalize(user_emb[users]), l2_normalize(item_emb),
        users, pos, negs,
    )  # fmt: skip
    return float(jnp.mean(per)), float(jnp.mean(aux["kl"]))


@pytest.mark.parametrize("n_layers", [0, 2])
def test_epochs_never_retrace_and_counters_advance(coat, n_layers):
    cfg, fns, state, train_data = _setup(coat, n_layers=n_layers)
    for _ in range(3):
        state, stats = fns.adv_epoch(state, train_data)
        state, stats = fns.cf_epoch(state, train_data)
    assert np.isfinite(float(stats["loss"]))
    assert int(state.epoch) == 3 and int(state.adv_epochs) == 3
    assert int(state.step) == 3 * (coat.train.nnz // cfg.batch_size)


def test_cf_epoch_freezes_hardness_and_adv_epoch_freezes_cf(coat):
    cfg, fns, state, train_data = _setup(coat)
    adv_before, cf_before = _copy(state.adv_params), _copy(state.cf_params)
    state, _ = fns.cf_epoch(state, train_data)
    chex.assert_trees_all_equal(_copy(state.adv_params), adv_before)
    assert not np.allclose(state.cf_params["user"], cf_before["user"])
    cf_before = _copy(state.cf_params)
    state, _ = fns.adv_epoch(state, train_data)
    chex.assert_trees_all_equal(_copy(state.cf_params), cf_before)
    assert not np.allclose(state.adv_params["user"], adv_before["user"])


def test_adversary_raises_the_loss_and_cf_lowers_it(coat):
    cfg, fns, state, train_data = _setup(coat, lr_adv=0.05, lr=0.01)
    loss0, kl0 = _fixed_loss(cfg, coat, train_data, state)
    for _ in range(5):
        state, _ = fns.adv_epoch(state, train_data)
    loss1, kl1 = _fixed_loss(cfg, coat, train_data, state)
    assert loss1 > loss0 + 0.05 and kl1 > kl0  # gradient ascent, hardness moves off uniform
    for _ in range(10):
        state, _ = fns.cf_epoch(state, train_data)
    loss2, _ = _fixed_loss(cfg, coat, train_data, state)
    assert loss2 < loss1 - 0.05


def test_mlp_hardness_trains_without_touching_cf(coat):
    cfg, fns, state, train_data = _setup(coat, hardness="mlp", lr_adv=0.05)
    cf_before = _copy(state.cf_params)
    state, stats = fns.adv_epoch(state, train_data)
    chex.assert_trees_all_equal(_copy(state.cf_params), cf_before)
    assert np.isfinite(float(stats["loss"]))


def test_infonce_has_no_adversary(coat):
    cfg, fns, state, train_data = _setup(coat, loss="infonce")
    assert state.adv_params == {}
    state, stats = fns.cf_epoch(state, train_data)
    # No hardness, so no hardness divergence among its diagnostics.
    assert set(stats) == {"loss"} and np.isfinite(float(stats["loss"]))


def test_reverse_adversary_lowers_the_loss(coat):
    cfg, fns, state, train_data = _setup(coat, hardness_strategy="reverse", lr_adv=0.05)
    loss0, kl0 = _fixed_loss(cfg, coat, train_data, state)
    for _ in range(5):
        state, _ = fns.adv_epoch(state, train_data)
    loss1, kl1 = _fixed_loss(cfg, coat, train_data, state)
    assert loss1 < loss0 - 0.05 and kl1 > kl0  # descent: easy negatives weigh more


def test_no_hardness_is_adv_infonce_with_zero_delta(coat):
    cfg, fns, state, train_data = _setup(coat, hardness_strategy="none")
    assert state.adv_params == {}
    users, pos = jnp.arange(8), jnp.arange(8)
    negs = jnp.arange(8 * 16).reshape(8, 16) % coat.n_items
    u, i = l2_normalize(state.cf_params["user"][users]), l2_normalize(state.cf_params["item"])
    per, aux = _batch_loss(cfg, state, train_data, u, i, users, pos, negs)
    kl = aux["kl"]
    expected = losses.infonce(
        jnp.sum(u * i[pos], -1) / cfg.tau,
        jnp.einsum("bd,bnd->bn", u, i[negs]) / cfg.tau + jnp.log(cfg.k_neg),
    )
    np.testing.assert_allclose(np.asarray(per), np.asarray(expected), rtol=1e-5)
    assert float(jnp.max(kl)) == 0.0


def test_random_hardness_draws_per_key_and_trains_no_adversary(coat):
    cfg, fns, state, train_data = _setup(coat, hardness_strategy="random")
    assert state.adv_params == {}
    users, pos = jnp.arange(8), jnp.arange(8)
    negs = jnp.arange(8 * 16).reshape(8, 16) % coat.n_items
    u, i = l2_normalize(state.cf_params["user"][users]), l2_normalize(state.cf_params["item"])

    def loss(seed):
        key = jax.random.key(seed)
        return _batch_loss(cfg, state, train_data, u, i, users, pos, negs, key)

    (a, aux_a), (b, _), (c, _) = loss(0), loss(0), loss(1)
    kl_a = aux_a["kl"]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))
    assert 0.0 < float(jnp.mean(kl_a)) < 0.1  # logits in [0, 1): mild, non-uniform weights
    state, stats = fns.cf_epoch(state, train_data)
    assert float(stats["kl"]) > 0.0 and np.isfinite(float(stats["loss"]))


def test_bc_loss_trains_the_popularity_branch_first_then_only_the_cf_tables(coat):
    cfg, fns, state, train_data = _setup(coat, loss="bc_loss", bc_pop_epochs=1, lr=0.01)
    n_user_levels = int(np.unique(coat.train.degrees()).size)
    assert state.cf_params["pop_user"].shape == (n_user_levels, cfg.emb_dim)
    before = _copy(state.cf_params)
    state, _ = fns.cf_epoch(state, train_data)  # epoch 0: popularity branch only
    after = _copy(state.cf_params)
    for name in ("user", "item"):
        np.testing.assert_array_equal(after[name], before[name])
    assert not np.allclose(after["pop_user"], before["pop_user"])
    state, stats = fns.cf_epoch(state, train_data)  # epoch 1: CF tables only
    later = _copy(state.cf_params)
    for name in ("pop_user", "pop_item"):
        np.testing.assert_array_equal(later[name], after[name])  # Adam momentum masked too
    assert not np.allclose(later["user"], after["user"]) and np.isfinite(float(stats["loss"]))


def test_adap_tau_counts_each_sample_and_personalises_temperatures(coat):
    cfg, fns, state, train_data = _setup(coat, loss="adap_tau", adap_tau_warm_up=0)
    np.testing.assert_array_equal(state.loss_state["tau_user"], cfg.tau)
    state, _ = fns.cf_epoch(state, train_data)
    n_batches = coat.train.nnz // cfg.batch_size
    assert float(state.loss_state["loss_count"].sum()) == n_batches * cfg.batch_size
    state, stats = fns.cf_epoch(state, train_data)
    tau_user = np.asarray(state.loss_state["tau_user"])
    assert np.all(np.isfinite(tau_user)) and np.all(tau_user > 0)
    seen = np.asarray(state.loss_state["loss_count"]) > 0
    assert tau_user[seen].std() > 0  # users with different losses, different temperatures
    assert np.isfinite(float(stats["loss"]))


def test_frozen_negatives_repeat_and_fresh_ones_do_not(coat):
    from advjax.train.epochs import negatives_key

    root = jax.random.key(3)
    epoch_a, epoch_b = jax.random.fold_in(root, 10), jax.random.fold_in(root, 11)
    users = jnp.arange(64) % coat.n_users
    pairs = setup_run(TrainConfig(), coat).train_data.pairs
    steps = bisection_steps(int(coat.train.degrees().max()))

    def draw(cfg, epoch_key, index):
        key = negatives_key(cfg, root, epoch_key, index)
        return np.asarray(
            sample_negatives(key, pairs, users, n_neg=16, n_items=coat.n_items, steps=steps)
        )

    frozen, fresh = TrainConfig(negatives="frozen"), TrainConfig(negatives="fresh")
    # Frozen: the same draws at a batch position in every epoch and pass.
    np.testing.assert_array_equal(draw(frozen, epoch_a, 0), draw(frozen, epoch_b, 0))
    assert not np.array_equal(draw(frozen, epoch_a, 0), draw(frozen, epoch_a, 1))
    # Fresh: new draws every epoch.
    assert not np.array_equal(draw(fresh, epoch_a, 0), draw(fresh, epoch_b, 0))
    # Either way, never a training item of the user, and uniform over the others.
    for cfg in (frozen, fresh):
        counts = np.zeros(coat.n_items)
        user = 0
        allowed = np.setdiff1d(np.arange(coat.n_items), coat.train.items[
            coat.train.indptr[user] : coat.train.indptr[user + 1]
        ])  # fmt: skip
        for index in range(40):
            draws = draw(cfg, jax.random.fold_in(root, 100 + index), index)
            for row, u in zip(draws, np.asarray(users), strict=True):
                items = coat.train.items[coat.train.indptr[u] : coat.train.indptr[u + 1]]
                assert not np.isin(row, items).any()
            counts += np.bincount(draws[0], minlength=coat.n_items)  # user 0's rows
        assert counts[np.setdiff1d(np.arange(coat.n_items), allowed)].sum() == 0
        # 640 draws over the allowed items: a chi-square test of uniformity.
        expected = counts.sum() / allowed.size
        chi2 = float(((counts[allowed] - expected) ** 2 / expected).sum())
        assert chi2 < allowed.size + 5 * np.sqrt(2 * allowed.size), chi2


def test_frozen_negatives_train_and_differ_from_fresh(coat):
    cfg, fns, state, train_data = _setup(coat, negatives="frozen")
    state, stats = fns.cf_epoch(state, train_data)
    assert np.isfinite(float(stats["loss"]))
    _, fresh_fns, fresh_state, _ = _setup(coat)
    fresh_state, fresh_stats = fresh_fns.cf_epoch(fresh_state, train_data)
    assert float(stats["loss"]) != float(fresh_stats["loss"])
