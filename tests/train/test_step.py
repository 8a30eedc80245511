"""cf_step and adversary_step called alone on tiny hand-made batches."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from advjax.data import Interactions, SplitData
from advjax.train import Batch, TrainConfig, adversary_step, cf_step, setup_run
from advjax.train.step import FrozenTables

# 4 users, 6 items: every user has two training items.
_TRAIN = [[0, 1], [1, 2], [3, 4], [4, 5]]


def _tiny_split() -> SplitData:
    indptr = np.cumsum([0] + [len(items) for items in _TRAIN]).astype(np.int64)
    items = np.concatenate(_TRAIN).astype(np.int32)
    train = Interactions(indptr=indptr, items=items, path="tiny/train.txt")
    return SplitData("tiny", 4, 6, train, valid=None, tests={}, not_candidate=None)


def _setup(**overrides):
    cfg = TrainConfig(**{"batch_size": 4, "n_neg": 3, "emb_dim": 8, "l2_reg": 1e-3, **overrides})
    run = setup_run(cfg, _tiny_split())
    batch = Batch(
        users=jnp.array([0, 1, 2, 3]),
        pos=jnp.array([1, 2, 3, 5]),
        negs=jnp.array([[2, 3, 4], [0, 4, 5], [0, 1, 5], [0, 1, 2]]),
        key=jax.random.key(0),
    )
    return cfg, run, batch


def _infonce_objective_f64(cfg, params, batch) -> float:
    """mean InfoNCE at cfg.tau + l2 penalty, in float64 NumPy (SPEC §2)."""
    user = np.asarray(params["user"], np.float64)
    item = np.asarray(params["item"], np.float64)
    u_hat = user / np.linalg.norm(user, axis=-1, keepdims=True)
    i_hat = item / np.linalg.norm(item, axis=-1, keepdims=True)
    users, pos, negs = (np.asarray(x) for x in (batch.users, batch.pos, batch.negs))
    pos_logit = np.sum(u_hat[users] * i_hat[pos], -1) / cfg.tau
    neg_logit = np.einsum("bd,bnd->bn", u_hat[users], i_hat[negs]) / cfg.tau
    logits = np.concatenate([pos_logit[:, None], neg_logit], axis=1)
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    loss = np.mean(log_z - pos_logit)
    sq = (user[users] ** 2).sum() + (item[pos] ** 2).sum() + (item[negs] ** 2).sum()
    return loss + cfg.l2_reg * sq / 2 / len(users)


def test_cf_step_is_one_adam_step_on_the_objective():
    cfg, run, batch = _setup(loss="infonce")
    state = run.state
    new, stats = cf_step(cfg, state, run.train_data, batch)
    assert float(stats["loss"]) == pytest.approx(
        _infonce_objective_f64(cfg, state.cf_params, batch), rel=1e-5
    )

    # The same Adam step from a gradient written independently of advjax's losses.
    def objective(params):
        u = params["user"] / jnp.linalg.norm(params["user"], axis=-1, keepdims=True)
        i = params["item"] / jnp.linalg.norm(params["item"], axis=-1, keepdims=True)
        pos = jnp.sum(u[batch.users] * i[batch.pos], -1) / cfg.tau
        neg = jnp.einsum("bd,bnd->bn", u[batch.users], i[batch.negs]) / cfg.tau
        nll = jax.nn.logsumexp(jnp.concatenate([pos[:, None], neg], 1), axis=1) - pos
        sq = (
            jnp.sum(params["user"][batch.users] ** 2)
            + jnp.sum(params["item"][batch.pos] ** 2)
            + jnp.sum(params["item"][batch.negs] ** 2)
        )
        return jnp.mean(nll) + cfg.l2_reg * sq / 2 / 4

    grads = jax.grad(objective)(state.cf_params)
    tx = optax.adam(cfg.lr)
    updates, _ = tx.update(grads, tx.init(state.cf_params), state.cf_params)
    expected = optax.apply_updates(state.cf_params, updates)
    for name in ("user", "item"):
        np.testing.assert_allclose(new.cf_params[name], expected[name], rtol=1e-5, atol=1e-7)
    assert int(new.step) == int(state.step) + 1 and int(new.epoch) == int(state.epoch)


def test_cf_step_leaves_the_adversary_and_adversary_step_the_cf_model():
    cfg, run, batch = _setup(loss="adv_infonce", lr_adv=0.1)
    state = run.state
    adv_before = jax.device_get(state.adv_params)
    after_cf, stats = cf_step(cfg, state, run.train_data, batch)
    assert set(stats) == {"loss", "kl"}
    jax.tree_util.tree_map(np.testing.assert_array_equal, after_cf.adv_params, adv_before)

    model = run.fns.model(state.cf_params, run.train_data)
    user, item = model.users, model.items
    frozen = FrozenTables(
        state.cf_params, user / jnp.linalg.norm(user, axis=-1, keepdims=True),
        item / jnp.linalg.norm(item, axis=-1, keepdims=True),
    )  # fmt: skip
    after_adv, _ = adversary_step(cfg, state, run.train_data, batch, frozen)
    jax.tree_util.tree_map(np.testing.assert_array_equal, after_adv.cf_params, state.cf_params)
    assert int(after_adv.step) == int(state.step)
    assert not np.allclose(after_adv.adv_params["user"], adv_before["user"])


@pytest.mark.parametrize("strategy, sign", [("adversarial", 1.0), ("reverse", -1.0)])
def test_adversary_step_ascends_or_descends_the_loss(strategy, sign):
    cfg, run, batch = _setup(loss="adv_infonce", hardness_strategy=strategy, lr_adv=0.05)
    state = run.state
    model = run.fns.model(state.cf_params, run.train_data)
    user, item = model.users, model.items
    normalize = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    frozen = FrozenTables(state.cf_params, normalize(user), normalize(item))
    losses = []
    for _ in range(3):
        state, stats = adversary_step(cfg, state, run.train_data, batch, frozen)
        losses.append(float(stats["loss"]))
    assert sign * (losses[-1] - losses[0]) > 0, losses
    assert int(state.adv_epochs) == 0  # epochs count passes; a step is not one


def test_a_resting_parameter_group_gets_no_update():
    cfg, run, batch = _setup(loss="bc_loss", bc_pop_epochs=1)
    state = run.state
    in_phase, _ = cf_step(cfg, state, run.train_data, batch)  # epoch 0: the branch trains
    np.testing.assert_array_equal(in_phase.cf_params["user"], state.cf_params["user"])
    assert not np.allclose(in_phase.cf_params["pop_user"], state.cf_params["pop_user"])
    later = state.replace(epoch=jnp.ones((), jnp.int32))  # epoch 1: the main tables train
    after, _ = cf_step(cfg, later, run.train_data, batch)
    np.testing.assert_array_equal(after.cf_params["pop_item"], state.cf_params["pop_item"])
    assert not np.allclose(after.cf_params["item"], state.cf_params["item"])


def test_cf_step_adds_the_batch_to_the_loss_state():
    cfg, run, batch = _setup(loss="adap_tau")
    new, _ = cf_step(cfg, run.state, run.train_data, batch)
    np.testing.assert_array_equal(new.loss_state["loss_count"], [1.0, 1.0, 1.0, 1.0])
    assert np.all(np.asarray(new.loss_state["loss_sum"]) > 0)
    np.testing.assert_array_equal(new.loss_state["tau_user"], run.state.loss_state["tau_user"])
