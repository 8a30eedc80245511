"""Tests of advjax.evaluation: the SPEC §4 protocol on real splits and small cases."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax import evaluation
from advjax.data import Interactions, SplitData, load_dataset
from advjax.evaluation import ranking
from advjax.metrics import per_user_topk_metrics, topk_metrics
from advjax.models.trained import TrainedModel
from tests.helpers import shared_split

KEYS = ("recall@20", "ndcg@20", "hit_ratio@20", "precision@20")
topk_metrics_jit = jax.jit(topk_metrics, static_argnames="k")
per_user_jit = jax.jit(per_user_topk_metrics, static_argnames="ks")


@pytest.fixture(scope="module")
def coat():
    return load_dataset("coat")


@pytest.fixture(scope="module")
def coat_evaluators(coat):
    return evaluation.build_evaluators(coat)


@pytest.fixture(scope="module")
def yahoo():
    return shared_split("yahoo.new")


@pytest.fixture(scope="module")
def yahoo_evaluators(yahoo):
    return evaluation.build_evaluators(yahoo)


def random_embeddings(data, seed=0, dim=16):
    rng = np.random.default_rng(seed)
    user_emb = rng.normal(size=(data.n_users, dim)).astype(np.float32)
    item_emb = rng.normal(size=(data.n_items, dim)).astype(np.float32)
    return user_emb, item_emb


def interactions(rows, n_users):
    """Interactions from {user: [items]}."""
    degrees = np.array([len(rows.get(u, ())) for u in range(n_users)])
    indptr = np.concatenate([[0], np.cumsum(degrees)]).astype(np.int64)
    items = [sorted(rows[u]) for u in range(n_users) if u in rows]
    return Interactions(indptr, np.array(sum(items, []), np.int32), "<test>")


def dense(pairs, n_users, n_items):
    """bool [n_users, n_items] with every pair set."""
    out = np.zeros((n_users, n_items), bool)
    out[pairs.users(), pairs.items] = True
    return out


def dense_protocol(data):
    """name -> (targets, exclude) dense masks, built directly from SPEC §4."""
    shape = (data.n_users, data.n_items)
    train = dense(data.train, *shape)
    valid = dense(data.valid, *shape) if data.valid is not None else np.zeros(shape, bool)
    not_candidate = np.zeros(shape, bool)
    if data.not_candidate is not None:
        not_candidate[:, data.not_candidate] = True
    out = {}
    if data.valid is not None:
        out["valid"] = (valid, train | not_candidate)
    tests = {name: dense(pairs, *shape) for name, pairs in data.tests.items()}
    for name, targets in tests.items():
        exclude = train | valid | not_candidate
        for other_name, other in tests.items():
            if other_name != name:
                exclude |= other
        out[name] = (targets, exclude)
    return out


@jax.jit
def cosine_scores(user_emb, item_emb):
    u = user_emb / jnp.linalg.norm(user_emb, axis=1, keepdims=True)
    i = item_emb / jnp.linalg.norm(item_emb, axis=1, keepdims=True)
    return jnp.matmul(u, i.T, precision=jax.lax.Precision.HIGHEST)


def check_against_dense(data, evaluators, user_emb, item_emb):
    scores = cosine_scores(user_emb, item_emb)
    protocol = dense_protocol(data)
    assert list(evaluators) == list(protocol)
    for name, (targets, exclude) in protocol.items():
        np.testing.assert_array_equal(evaluators[name].users, np.flatnonzero(targets.any(1)))
        got = evaluators[name].evaluate(TrainedModel(user_emb, item_emb))
        want = topk_metrics_jit(scores, targets, exclude, 20)
        for key in KEYS:
            np.testing.assert_allclose(got[key], float(want[key.split("@")[0]]), rtol=2e-5)
        assert got["recall@20"] > 0.0


def test_coat_matches_dense_topk_metrics(coat, coat_evaluators):
    check_against_dense(coat, coat_evaluators, *random_embeddings(coat, seed=1))


def test_yahoo_matches_dense_topk_metrics(yahoo, yahoo_evaluators):
    check_against_dense(yahoo, yahoo_evaluators, *random_embeddings(yahoo, seed=2, dim=64))


def test_results_do_not_depend_on_batch_size(coat, coat_evaluators):
    user_emb, item_emb = random_embeddings(coat, seed=3)
    want = coat_evaluators["test_id"].evaluate(TrainedModel(user_emb, item_emb))  # batch size 1024
    known = [coat.train, coat.valid, coat.tests["test_ood"]]
    for batch_size in (1, 7, 64):
        evaluator = evaluation.make_evaluator(
            "test_id", coat.tests["test_id"], known, n_items=coat.n_items, batch_size=batch_size
        )
        assert evaluator.users.shape == coat_evaluators["test_id"].users.shape
        assert evaluator.evaluate(TrainedModel(user_emb, item_emb)) == want, batch_size  # exactly


def test_test_id_equal_to_test_ood_is_not_hidden(coat, coat_evaluators):
    # The public splits ship byte-identical test_id/test_ood files: each test set
    # "excludes" the other, which must not hide its own targets.
    test_id, test_ood = coat.tests["test_id"], coat.tests["test_ood"]
    np.testing.assert_array_equal(test_id.indptr, test_ood.indptr)
    np.testing.assert_array_equal(test_id.items, test_ood.items)
    user_emb, item_emb = random_embeddings(coat, seed=4)
    got_id = coat_evaluators["test_id"].evaluate(TrainedModel(user_emb, item_emb))
    got_ood = coat_evaluators["test_ood"].evaluate(TrainedModel(user_emb, item_emb))
    assert got_id == got_ood
    assert all(value > 0.0 for value in got_id.values())


def test_targets_also_in_train_stay_rankable(coat, coat_evaluators):
    train = dense(coat.train, coat.n_users, coat.n_items)
    test = dense(coat.tests["test_id"], coat.n_users, coat.n_items)
    users, items = np.nonzero(train & test)
    assert len(users) > 0  # Coat has such pairs (11 per SPEC §4)
    user_emb, item_emb = random_embeddings(coat, seed=5)
    # Point each such user exactly at one of its train-and-test items: rank 1 if rankable.
    first = {}
    for u, i in zip(users, items, strict=True):
        first.setdefault(u, i)
    for u, i in first.items():
        user_emb[u] = item_emb[i]
    evaluator = coat_evaluators["test_id"]
    top = evaluator.top_items(TrainedModel(user_emb, item_emb), k=20)
    row_of = {u: r for r, u in enumerate(evaluator.users)}
    for u, i in first.items():
        assert top[row_of[u], 0] == i
    # The same items stay excluded where they are not targets: valid ranks without them.
    valid_top = coat_evaluators["valid"].top_items(TrainedModel(user_emb, item_emb), k=20)
    valid_rows = {u: r for r, u in enumerate(coat_evaluators["valid"].users)}
    for u, i in first.items():
        if u in valid_rows:
            assert i not in valid_top[valid_rows[u]]


def test_no_excluded_item_is_ranked(coat):
    rng = np.random.default_rng(0)
    protocol = dense_protocol(coat)
    all_targets = np.zeros(coat.n_items, bool)
    for targets, _ in protocol.values():
        all_targets |= targets.any(axis=0)
    for trial in range(3):
        # A not_candidate list disjoint from every target, as in KuaiRec.
        not_candidate = rng.choice(np.flatnonzero(~all_targets), size=10, replace=False)
        data = dataclasses.replace(coat, not_candidate=np.sort(not_candidate).astype(np.int32))
        evaluators = evaluation.build_evaluators(data)
        user_emb, item_emb = random_embeddings(data, seed=10 + trial)
        # Place not_candidate items near every user: a broken mask would rank them.
        item_emb[not_candidate] = user_emb.mean(axis=0)
        for name, (targets, exclude) in dense_protocol(data).items():
            evaluator = evaluators[name]
            top = evaluator.top_items(TrainedModel(user_emb, item_emb), k=20)
            dropped = exclude & ~targets
            for row, u in enumerate(evaluator.users):
                assert (~dropped[u]).sum() >= 20
                assert not dropped[u, top[row]].any(), (name, u)
                assert not np.isin(top[row], not_candidate).any()


def tiny_split(not_candidate=None):
    """3 users, 8 items; user 2 has no test item and is not evaluated."""
    n_users = 3
    return SplitData(
        name="tiny",
        n_users=n_users,
        n_items=8,
        train=interactions({0: [1, 2], 1: [3], 2: [0]}, n_users),
        valid=interactions({0: [3], 1: [4], 2: [5]}, n_users),
        tests={"test_id": interactions({0: [5, 6], 1: [7]}, n_users)},
        not_candidate=not_candidate,
    )


def test_not_candidate_items_are_never_ranked():
    data = tiny_split(not_candidate=np.array([0, 4], np.int32))
    evaluator = evaluation.build_evaluators(data)["test_id"]
    # Every user looks the same way; items rank by angle, best first 0, 4, 1, 2, 3, 5, 6, 7.
    angles = np.array([0.0, 0.3, 0.4, 0.5, 0.1, 0.6, 0.7, 0.8])
    item_emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    user_emb = np.tile(np.array([[1.0, 0.0]], np.float32), (3, 1))
    top = evaluator.top_items(TrainedModel(user_emb, item_emb), k=3)
    np.testing.assert_array_equal(evaluator.users, [0, 1])
    # Both drop 0 and 4; user 0 also drops train 1, 2 and valid 3, user 1 train 3.
    np.testing.assert_array_equal(top, [[5, 6, 7], [1, 2, 5]])


def test_scores_are_cosine_similarities():
    data = tiny_split()
    evaluator = evaluation.build_evaluators(data)["test_id"]
    user_emb = np.array([[1.0, 0.0]] * 3, np.float32)
    item_emb = np.array([[0.0, 1.0]] * 8, np.float32)
    item_emb[6] = [100.0, 100.0]  # user 0's target: long, at 45 degrees; wins a dot product
    item_emb[7] = [1.0, 0.0]  # user 1's target: short, aligned; wins on cosine
    got = evaluator.per_user(TrainedModel(user_emb, item_emb), ks=(1, 2, 3))
    np.testing.assert_array_equal(got["hit_ratio@1"], [0.0, 1.0])
    # Power-of-two rescaling changes no normalised bit: results are identical.
    scaled = evaluator.per_user(TrainedModel(user_emb * 4.0, item_emb * 0.5), ks=(1, 2, 3))
    for key in got:
        np.testing.assert_array_equal(got[key], scaled[key])


def test_hand_computed_evaluation():
    data = tiny_split()
    evaluator = evaluation.build_evaluators(data)["test_id"]
    angles = np.arange(8) * 0.1  # item i ranks by i: 0 best
    item_emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    user_emb = np.tile(np.array([[1.0, 0.0]], np.float32), (3, 1))
    got = evaluator.evaluate(TrainedModel(user_emb, item_emb), ks=(1, 2, 3))
    # User 0 ranks 0, 4, 5, 6, 7 (1, 2 train, 3 valid): hit at rank 3, targets {5, 6}.
    # User 1 ranks 0, 1, 2, 5, 6, 7 (3 train, 4 valid): no hit in the top 3.
    assert got["recall@2"] == 0.0
    assert got["recall@3"] == pytest.approx((1 / 2 + 0) / 2)
    assert got["precision@3"] == pytest.approx((1 / 3 + 0) / 2)
    assert got["hit_ratio@3"] == pytest.approx(0.5)
    ndcg_user0 = 0.5 / (1.0 + 1.0 / np.log2(3.0))  # DCG 1/log2(4), IDCG 2 ideal hits
    assert got["ndcg@3"] == pytest.approx(ndcg_user0 / 2)


def test_second_call_does_not_retrace(coat, coat_evaluators, monkeypatch):
    # Wraps the traced body so that a second trace fails, and empties the jit cache so
    # that the first call must trace.
    monkeypatch.setattr(
        ranking, "_batch_metrics", chex.assert_max_traces(ranking._batch_metrics, n=1)
    )
    ranking._evaluate_batches.clear_cache()
    user_emb, item_emb = random_embeddings(coat, seed=6)
    first = coat_evaluators["test_id"].evaluate(TrainedModel(user_emb, item_emb))
    user_emb, item_emb = random_embeddings(coat, seed=7)
    second = coat_evaluators["test_id"].evaluate(TrainedModel(user_emb, item_emb))
    # test_ood has the same shapes; jax arrays instead of NumPy change nothing either.
    coat_evaluators["test_ood"].evaluate(TrainedModel(jnp.asarray(user_emb), jnp.asarray(item_emb)))
    assert first != second
    assert ranking._evaluate_batches._cache_size() == 1


def test_memory_is_bounded_by_the_batch(yahoo, yahoo_evaluators):
    evaluator = yahoo_evaluators["valid"]
    user_emb, item_emb = random_embeddings(yahoo, dim=64)
    compiled = ranking._evaluate_batches.lower(
        TrainedModel(user_emb, item_emb),
        evaluator._not_candidate,
        evaluator._batches,
        (20,),
        evaluator.method,
    ).compile()
    temp_bytes = compiled.memory_analysis().temp_size_in_bytes
    batch_bytes = evaluator.batch_size * (yahoo.n_items + 1) * 4  # one float32 score block
    dense_bytes = len(evaluator.users) * yahoo.n_items * 4  # 11 batches' worth
    # About 3.5 score blocks with top-k (scores, masked scores, two masks, top-k). The
    # rank path adds up to one int32 key per (target pair, item): here 3.9 pairs per
    # row, ~6.4 blocks in all, still a fixed multiple of the batch (pairs per row are
    # capped by RANK_MAX_PAIRS_PER_ROW), never the dense matrix.
    assert evaluator.method == "rank"
    width = evaluator._batches.target_items.shape[1]
    pair_bytes = width * yahoo.n_items * 4
    bound = 4 * batch_bytes + pair_bytes
    assert bound <= (4 + evaluation.RANK_MAX_PAIRS_PER_ROW) * batch_bytes
    assert temp_bytes < min(bound, 0.6 * dense_bytes), (temp_bytes, batch_bytes, pair_bytes)
    top_k = ranking._evaluate_batches.lower(
        TrainedModel(user_emb, item_emb),
        evaluator._not_candidate,
        evaluator._batches,
        (20,),
        "top_k",
    ).compile()
    top_k_bytes = top_k.memory_analysis().temp_size_in_bytes
    assert top_k_bytes < min(4 * batch_bytes, dense_bytes / 2), (top_k_bytes, batch_bytes)


def test_bad_shapes_raise(coat, coat_evaluators):
    user_emb, item_emb = random_embeddings(coat)
    evaluator = coat_evaluators["valid"]
    with pytest.raises(ValueError, match="expected model users"):
        evaluator.evaluate(TrainedModel(user_emb[:-1], item_emb))
    with pytest.raises(ValueError, match="same d"):
        evaluator.evaluate(TrainedModel(user_emb, item_emb[:, :-1]))
    with pytest.raises(ValueError, match="k must be"):
        evaluator.evaluate(TrainedModel(user_emb, item_emb), ks=(coat.n_items + 1,))


def test_split_without_valid_and_empty_test():
    data = dataclasses.replace(tiny_split(), valid=None, tests={"test_id": interactions({}, 3)})
    assert evaluation.build_evaluators(data) == {}


def test_sets_without_users_get_no_evaluator():
    # Only a hand-built SplitData can hold empty sets (the loaders leave them out).
    tiny = tiny_split()
    empty = interactions({}, 3)
    data = dataclasses.replace(
        tiny, valid=empty, tests={"test_id": empty, "test_ood": tiny.tests["test_id"]}
    )
    evaluators = evaluation.build_evaluators(data)
    assert list(evaluators) == ["test_ood"]
    user_emb, item_emb = random_embeddings(data)
    got = evaluators["test_ood"].evaluate(TrainedModel(user_emb, item_emb), ks=(2,))
    assert all(np.isfinite(value) for value in got.values())
    # The empty set excludes nothing: test_ood ranks as if it were alone.
    alone = evaluation.build_evaluators(dataclasses.replace(tiny, valid=empty))["test_id"]
    assert alone.evaluate(TrainedModel(user_emb, item_emb), ks=(2,)) == got


def test_make_evaluator_without_users_still_reports_nan():
    data = tiny_split()
    evaluator = evaluation.make_evaluator(
        "test_id", interactions({}, 3), [data.train], n_items=data.n_items
    )
    assert len(evaluator.users) == 0
    got = evaluator.evaluate(TrainedModel(*random_embeddings(data)), ks=(2,))
    assert all(np.isnan(value) for value in got.values())


def quantised_embeddings(data, seed, levels=3, dim=4):
    """Embeddings from a few values: many users and items share vectors, scores tie."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(-1.0, 1.0, levels).astype(np.float32)
    user_emb = grid[rng.integers(levels, size=(data.n_users, dim))]
    item_emb = grid[rng.integers(levels, size=(data.n_items, dim))]
    user_emb[np.all(user_emb == 0, axis=1), 0] = 1.0  # no zero vectors
    item_emb[np.all(item_emb == 0, axis=1), 0] = 1.0
    return user_emb, item_emb


def assert_same_per_user(got, want):
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-7, err_msg=key)


METHOD_KS = (1, 5, 20, 50)


@pytest.mark.parametrize("dataset", ["coat", "yahoo"])
@pytest.mark.parametrize("embeddings", ["random", "quantised"])
def test_rank_and_chunked_paths_equal_top_k_path(dataset, embeddings, request):
    data = request.getfixturevalue(dataset)
    # Chunks of 4 items: Coat's 295 items make 74 chunks, enough for K = 50.
    by_method = {
        m: evaluation.build_evaluators(data, method=m, chunk=4) for m in evaluation.METHODS
    }
    if embeddings == "random":
        user_emb, item_emb = random_embeddings(data, seed=11, dim=32)
    else:
        user_emb, item_emb = quantised_embeddings(data, seed=12)
        scores = np.asarray(cosine_scores(user_emb, item_emb))
        assert len(np.unique(scores)) < 200  # heavily tied
    for name, evaluator in by_method["rank"].items():
        assert evaluator.method == "rank" and by_method["top_k"][name].method == "top_k"
        got = evaluator.per_user(TrainedModel(user_emb, item_emb), METHOD_KS)
        want = by_method["top_k"][name].per_user(TrainedModel(user_emb, item_emb), METHOD_KS)
        assert_same_per_user(got, want)
        assert got["recall@20"].mean() > 0.0
        chunked = by_method["chunked"][name].per_user(TrainedModel(user_emb, item_emb), METHOD_KS)
        assert_same_per_user(chunked, want)


def test_auto_picks_the_rank_path_for_few_targets(coat_evaluators, yahoo_evaluators):
    for evaluator in [*coat_evaluators.values(), *yahoo_evaluators.values()]:
        assert evaluator.method == "rank", evaluator
        width = evaluator._batches.target_items.shape[1]
        assert width <= evaluation.RANK_MAX_PAIRS_PER_ROW * evaluator.batch_size


def test_auto_picks_top_k_for_many_targets():
    data = tiny_split()
    # 2 users with 8 targets each: 16 pairs for 2 rows.
    dense_targets = interactions({0: list(range(8)), 1: list(range(8))}, data.n_users)
    evaluator = evaluation.make_evaluator("t", dense_targets, [data.train], n_items=8)
    assert evaluator.method == "top_k"
    with pytest.raises(ValueError, match="method"):
        evaluation.make_evaluator("t", dense_targets, [], n_items=8, method="sort")


@pytest.mark.parametrize("embeddings", ["random", "quantised"])
def test_rank_path_does_not_depend_on_batch_size(coat, embeddings):
    if embeddings == "random":
        user_emb, item_emb = random_embeddings(coat, seed=13)
    else:
        user_emb, item_emb = quantised_embeddings(coat, seed=14)
    known = [coat.train, coat.valid, coat.tests["test_ood"]]
    results = []
    for batch_size in (1, 7, 64, 1024):
        evaluator = evaluation.make_evaluator(
            "test_id",
            coat.tests["test_id"],
            known,
            n_items=coat.n_items,
            batch_size=batch_size,
            method="rank",
        )
        results.append(evaluator.per_user(TrainedModel(user_emb, item_emb), METHOD_KS))
    for got in results[1:]:
        for key in results[0]:
            np.testing.assert_array_equal(got[key], results[0][key], err_msg=key)  # exactly


@pytest.mark.parametrize("method", evaluation.METHODS)
def test_target_also_excluded_still_counts(coat, method):
    # Coat's train-and-test pairs: point each such user at one, which must rank first.
    train = dense(coat.train, coat.n_users, coat.n_items)
    test = dense(coat.tests["test_id"], coat.n_users, coat.n_items)
    users, items = np.nonzero(train & test)
    user_emb, item_emb = random_embeddings(coat, seed=15)
    first = {}
    for u, i in zip(users, items, strict=True):
        first.setdefault(u, i)
    for u, i in first.items():
        user_emb[u] = item_emb[i]
    evaluator = evaluation.build_evaluators(coat, method=method)["test_id"]
    assert evaluator.method == method
    got = evaluator.per_user(TrainedModel(user_emb, item_emb), ks=(1,))
    row_of = {u: r for r, u in enumerate(evaluator.users)}
    for u in first:
        assert got["hit_ratio@1"][row_of[u]] == 1.0
        assert got["ndcg@1"][row_of[u]] == 1.0


@pytest.mark.parametrize("method", evaluation.METHODS)
def test_not_candidate_items_never_beat_a_target(method):
    data = tiny_split(not_candidate=np.array([0, 4], np.int32))
    # Items 0 and 4 score highest, then 5, 6, 7 (tied, so in that order): user 0's
    # targets 5, 6 rank 1, 2; user 1's target 7 ranks 3 (5 and 6 are not its targets).
    angles = np.array([0.0, 0.5, 0.5, 0.5, 0.0, 0.1, 0.1, 0.1])
    item_emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    user_emb = np.tile(np.array([[1.0, 0.0]], np.float32), (3, 1))
    evaluator = evaluation.build_evaluators(data, method=method)["test_id"]
    assert evaluator.method == method
    got = evaluator.per_user(TrainedModel(user_emb, item_emb), ks=(1, 2, 3))
    np.testing.assert_array_equal(got["hit_ratio@1"], [1.0, 0.0])
    np.testing.assert_array_equal(got["recall@2"], [1.0, 0.0])
    np.testing.assert_array_equal(got["recall@3"], [1.0, 1.0])
    np.testing.assert_allclose(got["ndcg@3"], [1.0, 0.5], rtol=1e-6)


@pytest.mark.parametrize("name", ["kuairec2", "gowalla"])
def test_chunked_path_equals_top_k_on_large_catalogues(name):
    # KuaiRec brings not_candidate items; Gowalla (40,981 items) is where auto picks
    # chunked. Gowalla runs on its first 2,000 evaluated users to keep the suite quick.
    data = shared_split(name)
    target = "test_ood" if "test_ood" in data.tests else next(iter(data.tests))
    known = [data.train] + ([data.valid] if data.valid is not None else [])
    targets = data.tests[target]
    if name == "gowalla":
        # Users past the first 2,000 with targets keep none: they are not evaluated.
        cut = targets.indptr[np.flatnonzero(targets.degrees() > 0)[2000]]
        indptr = np.minimum(targets.indptr, cut)
        targets = Interactions(indptr, targets.items[:cut], targets.path)
    by_method = {
        method: evaluation.make_evaluator(
            target,
            targets,
            known,
            n_items=data.n_items,
            not_candidate=data.not_candidate,
            method=method,
        )  # fmt: skip
        for method in ("top_k", "chunked")
    }
    if name == "gowalla":
        assert (
            evaluation.make_evaluator(target, targets, known, n_items=data.n_items).method
            == "chunked"
        )
    user_emb, item_emb = random_embeddings(data, seed=21, dim=32)
    got = by_method["chunked"].per_user(TrainedModel(user_emb, item_emb), METHOD_KS)
    want = by_method["top_k"].per_user(TrainedModel(user_emb, item_emb), METHOD_KS)
    assert_same_per_user(got, want)
    for key in want:
        if not key.startswith("ndcg"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
