"""K-means (Lloyd's algorithm) of embedding rows, for NCL's prototype contrast.

NCL re-clusters the layer-0 user and item embeddings every epoch and contrasts each row
with its cluster's centroid. The clustering is a fixed number of Lloyd iterations from K
distinct rows drawn with a key, so it is pure, jit-able (`n_clusters` and `n_iters`
static) and vmappable over keys. It never differentiates: inputs are wrapped in
`jax.lax.stop_gradient`.

Empty clusters: a centroid that no row is nearest to keeps its previous value. This
keeps the objective non-increasing (faiss, which NCL's reference code calls, splits a
large cluster instead); such a centroid may be reused by later iterations.

Random-row initialisation can start two centroids in one natural cluster and stay in
that local optimum (as faiss's can); callers that need the best partition run several
keys (`jax.vmap` over keys) and keep the lowest inertia.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class KMeansResult(NamedTuple):
    """The outcome of :func:`kmeans`.

    Attributes:
      centroids: [K, d] the centroids after the last iteration.
      assign: int32 [N] index of each row's nearest centroid in `centroids`.
      inertia: [] sum over rows of the squared distance to that centroid.
    """

    centroids: jax.Array
    assign: jax.Array
    inertia: jax.Array


def effective_clusters(n_clusters: int, n_rows: int) -> int:
    """min(n_clusters, n_rows): the number of clusters callers pass to :func:`kmeans`.

    NCL's default is 2000 prototypes, more than the rows of small datasets (Coat: 290
    users, 295 items); :func:`kmeans` refuses K > N, so callers clamp with this helper.
    """
    return min(int(n_clusters), int(n_rows))


def squared_distances(x: jax.Array, centroids: jax.Array) -> jax.Array:
    """Squared Euclidean distances ||x_n - c_k||^2 = ||x_n||^2 - 2 x_n.c_k + ||c_k||^2.

    Args:
      x: [N, d].
      centroids: [K, d].

    Returns:
      [N, K], clamped at 0 (the expansion can round slightly below it).
    """
    x_sq = jnp.sum(x * x, axis=1, keepdims=True)
    c_sq = jnp.sum(centroids * centroids, axis=1)
    return jnp.maximum(x_sq - 2.0 * (x @ centroids.T) + c_sq[None, :], 0.0)


def assign_clusters(x: jax.Array, centroids: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each row's nearest centroid (the first on ties) and the resulting inertia.

    Args:
      x: [N, d].
      centroids: [K, d].

    Returns:
      (assign int32 [N], inertia []): the sum of each row's squared distance to its
      nearest centroid.
    """
    x, centroids = jax.lax.stop_gradient(x), jax.lax.stop_gradient(centroids)
    dist = squared_distances(x, centroids)
    assign = jnp.argmin(dist, axis=1).astype(jnp.int32)
    inertia = jnp.sum(jnp.take_along_axis(dist, assign[:, None], axis=1))
    return assign, inertia


def lloyd_step(x: jax.Array, centroids: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One Lloyd iteration: assign rows to the nearest centroid, then move each centroid
    to the mean of its rows; a centroid with no rows keeps its value.

    Args:
      x: [N, d].
      centroids: [K, d].

    Returns:
      (new_centroids [K, d], assign int32 [N], inertia_before []): `assign` and
      `inertia_before` are with respect to the input `centroids`, i.e. the objective
      before the update.
    """
    x, centroids = jax.lax.stop_gradient(x), jax.lax.stop_gradient(centroids)
    n_clusters = centroids.shape[0]
    assign, inertia = assign_clusters(x, centroids)
    sums = jax.ops.segment_sum(x, assign, num_segments=n_clusters)
    counts = jax.ops.segment_sum(jnp.ones_like(x[:, 0]), assign, num_segments=n_clusters)
    means = sums / jnp.maximum(counts, 1.0)[:, None]
    new_centroids = jnp.where((counts > 0)[:, None], means, centroids)
    return new_centroids, assign, inertia


def init_centroids(key: jax.Array, x: jax.Array, n_clusters: int) -> jax.Array:
    """K distinct rows of x [N, d], drawn uniformly without replacement: [K, d]."""
    rows = jax.random.choice(key, x.shape[0], shape=(n_clusters,), replace=False)
    return jax.lax.stop_gradient(x)[rows]


def kmeans(key: jax.Array, x: jax.Array, n_clusters: int, n_iters: int) -> KMeansResult:
    """K-means of the rows of x by a fixed number of Lloyd iterations.

    Jit with `static_argnames=("n_clusters", "n_iters")`. The centroids start at
    `n_clusters` distinct rows drawn with `key`; each of the `n_iters` iterations is
    :func:`lloyd_step` (an empty cluster keeps its previous centroid). The returned
    assignment and inertia are those of the final centroids, so `n_iters=0` gives the
    initial rows and their assignment.

    Args:
      key: PRNG key for the initial rows.
      x: [N, d] rows to cluster (gradient stopped).
      n_clusters: K, 1 <= K <= N; clamp with :func:`effective_clusters`.
      n_iters: number of Lloyd iterations, >= 0.

    Returns:
      KMeansResult(centroids [K, d], assign int32 [N], inertia []).

    Raises:
      ValueError: x is not 2-D, K is outside [1, N], or n_iters < 0.

    References:
      Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf. Theory 1982.
      Lin et al., "Improving Graph Collaborative Filtering with Neighborhood-enriched
      Contrastive Learning" (NCL), WWW 2022: the E-step of its prototype contrast.
    """
    if x.ndim != 2:
        raise ValueError(f"kmeans needs x of shape [N, d]; got shape {x.shape}")
    n_rows = x.shape[0]
    if not 1 <= n_clusters <= n_rows:
        raise ValueError(
            f"kmeans needs 1 <= n_clusters <= number of rows; got n_clusters={n_clusters} "
            f"for x of shape {x.shape} (clamp with effective_clusters(n_clusters, {n_rows}))"
        )
    if n_iters < 0:
        raise ValueError(f"kmeans needs n_iters >= 0; got {n_iters}")
    x = jax.lax.stop_gradient(x)
    centroids = jax.lax.fori_loop(
        0, n_iters, lambda _, c: lloyd_step(x, c)[0], init_centroids(key, x, n_clusters)
    )
    assign, inertia = assign_clusters(x, centroids)
    return KMeansResult(centroids, assign, inertia)
