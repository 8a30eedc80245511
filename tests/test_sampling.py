import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.data import Interactions, load_dataset
from advjax.sampling import bisection_steps, epoch_positives, make_train_pairs, sample_negatives
from tests.helpers import shared_split


def _draw_negatives(train, users, n_neg, n_items, seed):
    pairs = make_train_pairs(train)
    steps = bisection_steps(int(train.degrees().max()))
    fn = jax.jit(
        lambda key, users: sample_negatives(key, pairs, users, n_neg=n_neg, n_items=n_items,
                                            steps=steps)
    )  # fmt: skip
    return np.asarray(fn(jax.random.key(seed), jnp.asarray(users, jnp.int32)))


def _train_sets(train):
    return [set(train.items[train.indptr[u] : train.indptr[u + 1]].tolist())
            for u in range(train.n_users)]  # fmt: skip


@pytest.mark.parametrize("name", ["coat", "yahoo.new", "kuairec2"])
def test_negatives_never_training_items_on_real_data(name):
    data = load_dataset("coat") if name == "coat" else shared_split(name)
    train = data.train
    sets = _train_sets(train)
    active = np.flatnonzero(train.degrees() > 0)
    rng = np.random.default_rng(0)
    # Many draws, weighted towards the users with the most training items.
    heavy = active[np.argsort(train.degrees()[active])[-64:]]
    users = np.concatenate([rng.choice(active, 2048), heavy])
    negs = _draw_negatives(train, users, 128, data.n_items, seed=1)
    assert negs.min() >= 0 and negs.max() < data.n_items
    train_pairs = set(zip(train.users().tolist(), train.items.tolist(), strict=True))
    drawn = set(zip(np.repeat(users, negs.shape[1]).tolist(), negs.ravel().tolist(), strict=True))
    assert not drawn & train_pairs
    # Heavy users still reach their free items: every free item turns up over many draws.
    u = int(heavy[-1])
    many = _draw_negatives(train, np.full(64, u), 512, data.n_items, seed=2).ravel()
    free = set(range(data.n_items)) - sets[u]
    if len(free) <= 2000:
        assert set(many.tolist()) == free


def test_negatives_uniform_over_free_items():
    # 3 users over 10 items; chi-square of 60k draws against the uniform law on free items.
    sets = [[0, 3, 4, 9], [], [1, 2, 3, 4, 5, 6, 7, 8]]
    indptr = np.cumsum([0] + [len(s) for s in sets])
    train = Interactions(indptr, np.concatenate(sets).astype(np.int32), "synthetic")
    negs = _draw_negatives(train, np.repeat([0, 1, 2], 20), 1000, 10, seed=3)
    for row, u in enumerate([0, 1, 2]):
        block = negs[row * 20 : (row + 1) * 20].ravel()
        free = sorted(set(range(10)) - set(sets[u]))
        assert set(block.tolist()) == set(free)
        counts = np.bincount(block, minlength=10)[free]
        expected = block.size / len(free)
        chi2 = float(np.sum((counts - expected) ** 2 / expected))
        assert chi2 < 30.0, (u, counts)  # df <= 9: p < 1e-3 beyond 27.9


def test_epoch_positives_are_user_balanced_training_pairs():
    data = load_dataset("coat")
    train = data.train
    pairs = make_train_pairs(train)
    n = train.nnz
    users, items = epoch_positives(jax.random.key(0), pairs, n_samples=n, n_batches=1,
                                   batch_size=n)  # fmt: skip
    users, items = np.asarray(users).ravel(), np.asarray(items).ravel()
    sets = _train_sets(train)
    assert all(i in sets[u] for u, i in zip(users, items, strict=True))
    active = np.flatnonzero(train.degrees() > 0)
    counts = np.bincount(users, minlength=train.n_users)[active]
    # Users drawn evenly (k mod |U|), not in proportion to their interactions.
    assert counts.min() >= n // len(active) and counts.max() <= -(-n // len(active))
    # Different epochs, different orders.
    users2, _ = epoch_positives(jax.random.key(1), pairs, n_samples=n, n_batches=1, batch_size=n)
    assert not np.array_equal(users, np.asarray(users2).ravel())


def test_epoch_positives_drop_incomplete_batch():
    pairs = make_train_pairs(load_dataset("coat").train)
    users, items = epoch_positives(jax.random.key(0), pairs, n_samples=1363, n_batches=2,
                                   batch_size=512)  # fmt: skip
    assert users.shape == items.shape == (2, 512)
