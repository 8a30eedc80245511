"""Tests of advjax.metrics against a float64 NumPy reference (SPEC §4)."""

import math

import jax
import numpy as np
import pytest

from advjax.metrics import (
    chunked_top_k,
    per_user_rank_metrics,
    per_user_topk_metrics,
    select_top_k,
    target_ranks,
    topk_metrics,
)

# Jitted once per shape and k: eager mode would compile every primitive separately.
topk_metrics_jit = jax.jit(topk_metrics, static_argnames="k")
per_user_jit = jax.jit(per_user_topk_metrics, static_argnames="ks")
select_top_k_jit = jax.jit(select_top_k, static_argnames="k")
per_user_rank_jit = jax.jit(per_user_rank_metrics, static_argnames="ks")
target_ranks_jit = jax.jit(target_ranks)
chunked_top_k_jit = jax.jit(chunked_top_k, static_argnames=("k", "chunk"))


def reference_user_metrics(scores, targets, exclude, k):
    """float64 metrics of one user by sorting, or None when the user has no target."""
    target_items = set(np.flatnonzero(targets).tolist())
    if not target_items:
        return None
    # Rankable: everything not excluded, plus every target (targets are never excluded).
    rankable = [i for i in range(len(scores)) if not exclude[i] or i in target_items]
    ranked = sorted(rankable, key=lambda i: (-float(scores[i]), i))[:k]
    hit_ranks = [r for r, i in enumerate(ranked, start=1) if i in target_items]
    dcg = sum(1.0 / math.log2(r + 1) for r in hit_ranks)
    idcg = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(target_items), k) + 1))
    return {
        "recall": len(hit_ranks) / len(target_items),
        "ndcg": dcg / idcg,
        "hit_ratio": float(bool(hit_ranks)),
        "precision": len(hit_ranks) / k,
    }


def reference_metrics(scores, targets, exclude, k):
    """Mean over users with targets of reference_user_metrics."""
    rows = [
        reference_user_metrics(s, t, e, k) for s, t, e in zip(scores, targets, exclude, strict=True)
    ]
    rows = [r for r in rows if r is not None]
    return {name: float(np.mean([r[name] for r in rows])) for name in rows[0]}


def random_case(seed, n_users=40, n_items=30, target_rate=0.1, exclude_rate=0.3):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    targets = rng.random((n_users, n_items)) < target_rate
    targets[: n_users // 5] = False  # some users without targets, to be ignored
    exclude = rng.random((n_users, n_items)) < exclude_rate  # overlaps targets on purpose
    return scores, targets, exclude


@pytest.mark.parametrize("k", [1, 5, 20, 30])
def test_topk_metrics_matches_numpy_reference(k):
    for seed in range(3):
        scores, targets, exclude = random_case(seed)
        got = topk_metrics_jit(scores, targets, exclude, k)
        want = reference_metrics(scores, targets, exclude, k)
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_allclose(float(got[name]), want[name], rtol=1e-5, err_msg=name)


def test_per_user_metrics_match_reference_for_several_k():
    scores, targets, exclude = random_case(3)
    ks = (1, 3, 10, 20)
    got = per_user_jit(scores, targets, exclude, ks)
    for u in range(len(scores)):
        for k in ks:
            want = reference_user_metrics(scores[u], targets[u], exclude[u], k)
            for name in ("recall", "ndcg", "hit_ratio", "precision"):
                value = float(got[f"{name}@{k}"][u])
                if want is None:
                    assert value == 0.0
                else:
                    np.testing.assert_allclose(value, want[name], rtol=1e-5, atol=1e-7)


def test_hand_computed_case():
    # Ranking by score: items 4, 0, 2, 5, 1, 3. Targets 0, 5, 3 sit at ranks 2, 4, 6;
    # item 4 is excluded, so the ranked list is 0, 2, 5, 1, 3 and the hits are at 1 and 3.
    scores = np.array([[0.9, 0.3, 0.8, 0.1, 1.0, 0.5]], np.float32)
    targets = np.array([[1, 0, 0, 1, 0, 1]], bool)
    exclude = np.array([[0, 0, 0, 0, 1, 0]], bool)
    got = topk_metrics_jit(scores, targets, exclude, k=4)
    dcg = 1.0 + 1.0 / 2.0  # ranks 1 and 3: 1/log2(2) + 1/log2(4)
    idcg = 1.0 + 1.0 / math.log2(3) + 1.0 / 2.0  # min(3 targets, k=4) = 3 ideal hits
    np.testing.assert_allclose(float(got["ndcg"]), dcg / idcg, rtol=1e-6)
    np.testing.assert_allclose(float(got["recall"]), 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(float(got["precision"]), 2 / 4, rtol=1e-6)
    assert float(got["hit_ratio"]) == 1.0


def test_ndcg_is_one_for_a_perfect_ranking():
    scores = np.array([[3.0, 2.0, 1.0, 0.0]], np.float32)
    targets = np.array([[1, 1, 0, 0]], bool)
    got = topk_metrics_jit(scores, targets, np.zeros_like(targets), k=3)
    assert float(got["ndcg"]) == pytest.approx(1.0)
    assert float(got["recall"]) == pytest.approx(1.0)
    assert float(got["precision"]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(5))
def test_no_excluded_item_reaches_the_top_k(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 64, 50, 10
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    targets = rng.random((n_users, n_items)) < 0.1
    # Favour excluded items with high scores, so a broken mask would show.
    exclude = rng.random((n_users, n_items)) < 0.5
    scores = np.where(exclude, scores + 3.0, scores)
    top = np.asarray(select_top_k_jit(scores, targets, exclude, k))
    dropped = exclude & ~targets
    for u in range(n_users):
        assert (~dropped[u]).sum() >= k  # enough rankable items for the check to hold
        assert not dropped[u, top[u]].any()
        assert len(set(top[u].tolist())) == k


def test_targets_are_never_excluded():
    # The only target also sits in the exclusion set (e.g. train): it must stay rankable.
    scores = np.array([[5.0, 1.0, 2.0, 3.0]], np.float32)
    targets = np.array([[1, 0, 0, 0]], bool)
    exclude = np.array([[1, 0, 1, 0]], bool)
    got = topk_metrics_jit(scores, targets, exclude, k=1)
    assert float(got["recall"]) == 1.0
    assert float(got["ndcg"]) == pytest.approx(1.0)
    assert np.asarray(select_top_k_jit(scores, targets, exclude, 2)).tolist() == [[0, 3]]


def test_excluding_the_targets_themselves_changes_nothing():
    # test_id == test_ood: the "other" test set equals the targets, and must not hide them.
    scores, targets, exclude = random_case(4)
    plain = topk_metrics_jit(scores, targets, exclude, 10)
    both = topk_metrics_jit(scores, targets, exclude | targets, 10)
    for name in plain:
        assert float(plain[name]) == float(both[name])
        assert float(plain[name]) > 0.0


def test_users_without_targets_are_ignored():
    scores, targets, exclude = random_case(5)
    has = targets.any(axis=1)
    all_users = topk_metrics_jit(scores, targets, exclude, 5)
    only = topk_metrics_jit(scores[has], targets[has], exclude[has], 5)
    for name in all_users:
        np.testing.assert_allclose(float(all_users[name]), float(only[name]), rtol=1e-6)


def test_no_user_with_targets_gives_nan():
    scores, _, exclude = random_case(6)
    got = topk_metrics_jit(scores, np.zeros_like(exclude), exclude, 5)
    assert all(np.isnan(float(v)) for v in got.values())


def test_eager_matches_jit():
    scores, targets, exclude = random_case(7)
    eager = np.asarray(select_top_k(scores, targets, exclude, 10))
    np.testing.assert_array_equal(eager, np.asarray(select_top_k_jit(scores, targets, exclude, 10)))


def test_larger_k_slices_the_same_ranking():
    scores, targets, exclude = random_case(8)
    together = per_user_jit(scores, targets, exclude, (3, 12))
    alone = per_user_jit(scores, targets, exclude, (3,))
    for name in ("recall@3", "ndcg@3", "hit_ratio@3", "precision@3"):
        np.testing.assert_array_equal(np.asarray(together[name]), np.asarray(alone[name]))


@pytest.mark.parametrize(
    "shapes, ks",
    [
        (((4, 5), (4, 5), (4, 6)), (2,)),
        (((4, 5), (3, 5), (4, 5)), (2,)),
        (((20,), (20,), (20,)), (2,)),
        (((4, 5), (4, 5), (4, 5)), (6,)),
        (((4, 5), (4, 5), (4, 5)), (0,)),
        (((4, 5), (4, 5), (4, 5)), ()),
    ],
)
def test_bad_inputs_raise(shapes, ks):
    scores, targets, exclude = (np.zeros(s, np.float32) for s in shapes)
    with pytest.raises(ValueError):
        per_user_topk_metrics(scores, targets > 0, exclude > 0, ks)


def pairs_of(targets, pad_to=None, pad_item=None):
    """(rows, items) int32 of every target in row-major order, padded with pad_item."""
    rows, items = np.nonzero(targets)
    if pad_to is not None:
        n_pad = pad_to - len(rows)
        rows = np.concatenate([rows, np.zeros(n_pad, rows.dtype)])
        items = np.concatenate([items, np.full(n_pad, pad_item, items.dtype)])
    return rows.astype(np.int32), items.astype(np.int32)


def tied_case(seed, n_users=40, n_items=30):
    """random_case with scores from a handful of values, +0.0 and -0.0 among them."""
    scores, targets, exclude = random_case(seed, n_users, n_items, target_rate=0.3)
    rng = np.random.default_rng(seed + 100)
    values = np.array([-1.0, -0.0, 0.0, 0.5, 0.5, 1.0], np.float32)
    return values[rng.integers(len(values), size=scores.shape)], targets, exclude


def test_top_k_breaks_ties_by_lower_index_in_total_order():
    # The order target_ranks reproduces: equal scores go to the lower index, and
    # lax.top_k ranks +0.0 above -0.0 (IEEE total order, not <).
    scores = np.array([[1.0, 2.0, 1.0, 2.0, 1.0], [-0.0, 0.0, -0.0, 0.0, -1.0]], np.float32)
    np.testing.assert_array_equal(jax.lax.top_k(scores, 5)[1], [[1, 3, 0, 2, 4], [1, 3, 0, 2, 4]])


@pytest.mark.parametrize("case", [random_case, tied_case])
def test_target_ranks_are_positions_in_top_k(case):
    for seed in range(3):
        scores, targets, exclude = case(seed)
        rows, items = pairs_of(targets)
        ranks = np.asarray(target_ranks_jit(scores, targets, exclude, rows, items))
        order = np.asarray(select_top_k_jit(scores, targets, exclude, scores.shape[1]))
        position = np.argsort(order, axis=1)  # position[u, i]: rank of item i for user u
        np.testing.assert_array_equal(ranks, position[rows, items])


@pytest.mark.parametrize("case", [random_case, tied_case])
def test_rank_metrics_equal_topk_metrics(case):
    ks = (1, 3, 10, 30)
    for seed in range(3):
        scores, targets, exclude = case(seed)
        # Padding pairs (item n_items) at the end, as the evaluators send them.
        rows, items = pairs_of(targets, pad_to=targets.sum() + 7, pad_item=scores.shape[1])
        got = per_user_rank_jit(scores, targets, exclude, rows, items, ks)
        want = per_user_jit(scores, targets, exclude, ks)
        assert list(got) == list(want)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-7, err_msg=key)
            if not key.startswith("ndcg"):  # integer counts: exact
                np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_rank_metrics_count_excluded_targets():
    # Targets 0 and 2 of user 0 are also excluded; the others' exclusions drop items
    # 1 and 3, which would otherwise beat the targets.
    scores = np.array([[0.9, 1.0, 0.8, 0.95, 0.1]], np.float32)
    targets = np.array([[True, False, True, False, False]])
    exclude = np.array([[True, True, True, True, False]])
    got = per_user_rank_metrics(scores, targets, exclude, [0, 0], [0, 2], ks=(2,))
    assert float(got["recall@2"][0]) == 1.0
    assert float(got["ndcg@2"][0]) == pytest.approx(1.0)


@pytest.mark.parametrize("case", [random_case, tied_case])
@pytest.mark.parametrize("chunk", [1, 2, 4, 8])
def test_chunked_top_k_equals_top_k(case, chunk):
    # 30 items: chunk 4 and 8 leave a shorter last chunk. Tied cases hold +0.0, -0.0
    # and repeated values, so both the chunk choice and the final order meet ties.
    for seed in range(3):
        scores, _, exclude = case(seed)
        scores = np.where(exclude, -np.inf, scores).astype(np.float32)
        n_chunks = -(-scores.shape[1] // chunk)
        for k in sorted({1, 3, n_chunks}):
            got = chunked_top_k_jit(scores.T, k=k, chunk=chunk)
            np.testing.assert_array_equal(got, jax.lax.top_k(scores, k)[1], err_msg=f"k={k}")


def test_chunked_top_k_prefers_the_lower_chunk_on_tied_maxima():
    # Chunks {0,1}, {2,3}, {4,5} all peak at 1.0: top 2 must be items 0 and 2.
    scores = np.array([[1.0, 0.0, 1.0, 0.0, 1.0, 0.5]], np.float32)
    np.testing.assert_array_equal(chunked_top_k_jit(scores.T, k=2, chunk=2), [[0, 2]])


@pytest.mark.parametrize(
    ("shape", "dtype", "k", "chunk"),
    [((30, 2), np.float32, 3, 3), ((30, 2), np.float32, 9, 4), ((30, 2), np.float16, 3, 4)],
)
def test_chunked_top_k_rejects_bad_arguments(shape, dtype, k, chunk):
    with pytest.raises(ValueError, match="chunk"):
        chunked_top_k(np.zeros(shape, dtype), k, chunk)
