import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advjax.augmentations.kmeans import (
    KMeansResult,
    assign_clusters,
    effective_clusters,
    kmeans,
    lloyd_step,
)
from advjax.data import load_dataset

_STATIC = ("n_clusters", "n_iters")


def _np_lloyd_step(x: np.ndarray, centroids: np.ndarray):
    """One Lloyd step in float64 from pairwise differences (not the ||x||^2 expansion)."""
    x, centroids = np.asarray(x, np.float64), np.asarray(centroids, np.float64)
    dist = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    assign = dist.argmin(1)
    inertia = dist[np.arange(len(x)), assign].sum()
    new = centroids.copy()
    for k in range(len(centroids)):
        members = x[assign == k]
        if len(members):
            new[k] = members.mean(0)
    return new, assign, inertia


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two labelings split the rows into the same groups (up to relabeling)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def _blobs(seed: int, n_blobs: int = 4, per_blob: int = 50, dim: int = 8):
    rng = np.random.default_rng(seed)
    centers = 20.0 * np.eye(n_blobs, dim)  # pairwise 28 apart, spread 0.3
    labels = np.repeat(np.arange(n_blobs), per_blob)
    x = centers[labels] + 0.3 * rng.normal(size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return x[order].astype(np.float32), labels[order]


def test_lloyd_step_matches_float64_reference():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    centroids = rng.normal(size=(7, 5)).astype(np.float32)
    new, assign, inertia = lloyd_step(jnp.asarray(x), jnp.asarray(centroids))
    want_new, want_assign, want_inertia = _np_lloyd_step(x, centroids)
    assert assign.dtype == jnp.int32 and assign.shape == (60,)
    np.testing.assert_array_equal(np.asarray(assign), want_assign)
    np.testing.assert_allclose(np.asarray(new), want_new, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(inertia), want_inertia, rtol=1e-5)


def test_lloyd_step_empty_clusters_keep_their_centroid():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    centroids = rng.normal(size=(4, 3)).astype(np.float32)
    centroids[1] = 100.0  # far from every row
    centroids[3] = centroids[0]  # a duplicate: ties go to the first, so 3 is empty
    new, assign, _ = lloyd_step(jnp.asarray(x), jnp.asarray(centroids))
    want_new, want_assign, _ = _np_lloyd_step(x, centroids)
    assert not np.isin([1, 3], np.asarray(assign)).any()
    np.testing.assert_array_equal(np.asarray(assign), want_assign)
    np.testing.assert_array_equal(np.asarray(new)[[1, 3]], centroids[[1, 3]])
    np.testing.assert_allclose(np.asarray(new), want_new, rtol=1e-5, atol=1e-6)


def test_inertia_is_non_increasing():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(200, 6)), jnp.float32)
    step = jax.jit(lloyd_step)
    centroids = kmeans(jax.random.key(0), x, n_clusters=12, n_iters=0).centroids
    inertias = []
    for _ in range(15):
        centroids, _, inertia = step(x, centroids)
        inertias.append(float(inertia))
    final = float(assign_clusters(x, centroids)[1])
    inertias.append(final)
    diffs = np.diff(inertias)
    assert (diffs <= 1e-5 * inertias[0]).all(), inertias
    assert inertias[-1] < inertias[0]
    result = jax.jit(kmeans, static_argnames=_STATIC)(jax.random.key(0), x, 12, 15)
    np.testing.assert_allclose(float(result.inertia), final, rtol=1e-5)


def test_kmeans_recovers_separated_blobs():
    x, labels = _blobs(3)
    # A random-row start can put two centroids in one blob (a local optimum Lloyd's
    # keeps), so, as a caller would, run several keys and keep the lowest inertia.
    keys = jax.random.split(jax.random.key(0), 32)
    run = jax.jit(jax.vmap(kmeans, in_axes=(0, None, None, None)), static_argnums=(2, 3))
    results = run(keys, jnp.asarray(x), 4, 10)
    best = int(jnp.argmin(results.inertia))
    assign = np.asarray(results.assign[best])
    assert _same_partition(assign, labels)
    want = np.stack([x[assign == k].mean(0) for k in range(4)])
    np.testing.assert_allclose(np.asarray(results.centroids[best]), want, rtol=1e-5, atol=1e-5)


def test_deterministic_jit_and_traced_once():
    x = jnp.asarray(np.random.default_rng(4).normal(size=(50, 4)), jnp.float32)
    fn = jax.jit(chex.assert_max_traces(kmeans, n=1), static_argnums=(2, 3))
    first = fn(jax.random.key(7), x, 5, 6)
    again = fn(jax.random.key(7), x, 5, 6)
    other = fn(jax.random.key(8), x + 1.0, 5, 6)  # same shapes: no retrace
    assert isinstance(first, KMeansResult)
    chex.assert_trees_all_equal(first, again)
    chex.assert_tree_all_finite(other)
    eager = kmeans(jax.random.key(7), x, 5, 6)
    np.testing.assert_array_equal(np.asarray(eager.assign), np.asarray(first.assign))
    chex.assert_trees_all_close(eager.centroids, first.centroids, rtol=1e-5, atol=1e-6)
    chex.assert_shape([first.centroids, first.assign, first.inertia], [(5, 4), (50,), ()])
    assert first.assign.dtype == jnp.int32


def test_initial_centroids_are_distinct_rows():
    x = jnp.arange(30.0, dtype=jnp.float32).reshape(10, 3)
    centroids = np.asarray(kmeans(jax.random.key(0), x, 10, 0).centroids)
    assert sorted(centroids[:, 0].tolist()) == np.asarray(x)[:, 0].tolist()


def test_no_gradient_flows():
    x = jnp.asarray(np.random.default_rng(5).normal(size=(20, 3)), jnp.float32)
    grad = jax.grad(lambda x: kmeans(jax.random.key(0), x, 3, 4).inertia)(x)
    np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_errors():
    x = jnp.zeros((5, 2))
    with pytest.raises(ValueError, match="n_clusters=6"):
        kmeans(jax.random.key(0), x, 6, 3)
    with pytest.raises(ValueError, match="n_clusters=0"):
        kmeans(jax.random.key(0), x, 0, 3)
    with pytest.raises(ValueError, match="n_iters"):
        kmeans(jax.random.key(0), x, 2, -1)
    with pytest.raises(ValueError, match=r"\[N, d\]"):
        kmeans(jax.random.key(0), jnp.zeros(5), 2, 3)
    assert effective_clusters(2000, 295) == 295
    assert effective_clusters(10, 295) == 10


def test_coat_sized_embeddings():
    data = load_dataset("coat")
    run = jax.jit(kmeans, static_argnames=_STATIC)
    keys = jax.random.split(jax.random.key(0), 2)
    for key, n_rows in zip(keys, (data.n_users, data.n_items), strict=True):
        emb = jax.random.normal(jax.random.fold_in(key, 1), (n_rows, 64))
        k = effective_clusters(2000, n_rows)
        assert k == n_rows  # NCL's 2000 prototypes clamp to Coat's 290 users / 295 items
        full = run(key, emb, n_clusters=k, n_iters=20)
        # K = N: every row is its own centroid.
        np.testing.assert_array_equal(np.bincount(full.assign, minlength=k), 1)
        np.testing.assert_allclose(float(full.inertia), 0.0, atol=1e-3)
        some = run(key, emb, n_clusters=20, n_iters=20)
        counts = np.bincount(np.asarray(some.assign), minlength=20)
        assert counts.sum() == n_rows and len(counts) == 20
        chex.assert_tree_all_finite(some)
    assert (data.n_users, data.n_items) == (290, 295)
