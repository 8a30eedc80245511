"""The floor of a training epoch: the FLOPs and bytes it must move, and the machine's rates.

A CF step (advjax/train/steps.py, cf_epoch) with B users, N negatives, d dims, I items,
U users, L LightGCN layers over 2E directed edges costs, counted term by term:

  scores       3 x (pair_scores of the N negatives + pair_scores of the positive):
               forward + two backward products. pair_scores is the dense [B, I]
               product when I <= 128 n (n = items per row; advjax/scores.py),
               2 B I d FLOPs moving (B d + I d + B I) floats; else a gather of
               [B, n, d] rows, 2 B n d FLOPs moving B n (d + 1) gathered words
               (rows + ids) and B d + B n streamed words (user rows, scores).
  hardness     adv_infonce only: the hardness logits, the same product with the
               hardness tables (dim h), forward only: the CF pass does not
               differentiate the hardness model.
  propagation  LightGCN only, the cheaper of two ways to the step's rows:
               full: L layers x 2 (forward, backward) CSR products over the 2E edges
               and U + I nodes: per edge 2 d FLOPs and 4 + 4 + 4 d gathered bytes
               (column id, weight, source row); per node 4 + 4 d streamed bytes (row
               offset, output row written once). A COO / segment_sum kernel also
               accumulates a row per edge (another 4 d per edge), but SciPy's CSR
               kernel (host_csr, the CPU default) does not, and measured faster than a
               floor that counts it: a floor must bound every path.
               rows (advjax.models.propagation.propagate_rows): per direction one
               product over the E user-item pairs (R^T U0, or R g back) and
               floor(L / 2) + floor((L - 1) / 2) item-side products with G = R^T R,
               each the cheaper of a dense [I, I] GEMM (2 I^2 d FLOPs) and two E-edge
               products; the batch's own rows of R are negligible (B x mean degree).
  adam         dense Adam over the (U + I) d layer-0 parameters: read parameter,
               gradient and both moments, write parameter and moments (7 words each),
               about 12 FLOPs each.
  views, contrast, prototype
               --augment only (SGL's dropped views; every augmentation's contrast of
               the batch's users; NCL's centroids): see cf_step_terms.

A CF epoch with NCL also fits its k-means once (epoch_terms, "kmeans").

An adversarial step (adv_epoch) scores with the frozen CF tables (forward only, x1),
differentiates the hardness logits (x3) and runs Adam over the hardness tables; its
epoch also propagates once, forward only.

Left out as small or implementation-dependent: negative sampling (a few int32 reads per
negative), the L2 penalty, the loss' elementwise work. Every term is a lower bound on
what the step must do, so the floor is a lower bound on the epoch time:

  floor_s = max(flops / gemm_rate, stream_bytes / stream_rate + gather_bytes / gather_rate)

with the rates measured on this machine by ``measure_rates`` (best of a cache-sized and
a memory-sized problem, so the floor stays a floor when the tables fit in cache).
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from advjax.scores import DENSE_ITEMS_PER_NEG

WORD = 4  # bytes of a float32 or an int32
ADAM_FLOPS_PER_PARAM = 12
ADAM_WORDS_PER_PARAM = 7


@dataclasses.dataclass(frozen=True)
class Cost:
    """Work of one piece of a step: FLOPs, streamed bytes and randomly gathered bytes."""

    flops: float = 0.0
    stream_bytes: float = 0.0
    gather_bytes: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.flops + other.flops,
            self.stream_bytes + other.stream_bytes,
            self.gather_bytes + other.gather_bytes,
        )

    def __mul__(self, times: float) -> Cost:
        return Cost(self.flops * times, self.stream_bytes * times, self.gather_bytes * times)

    __rmul__ = __mul__

    @property
    def bytes(self) -> float:
        return self.stream_bytes + self.gather_bytes


def score_cost(batch: int, n_items: int, n_per_row: int, dim: int) -> Cost:
    """Forward cost of pair_scores(user_vecs [B, d], item_table [I, d], items [B, n])."""
    if n_items <= DENSE_ITEMS_PER_NEG * n_per_row:
        return Cost(
            flops=2 * batch * n_items * dim,
            stream_bytes=WORD * (batch * dim + n_items * dim + batch * n_items),
        )
    return Cost(
        flops=2 * batch * n_per_row * dim,
        stream_bytes=WORD * (batch * dim + batch * n_per_row),
        gather_bytes=WORD * batch * n_per_row * (dim + 1),
    )


def propagation_cost(n_edges: int, n_nodes: int, dim: int, n_layers: int, passes: int) -> Cost:
    """L layers of CSR products over n_edges edges and n_nodes rows, `passes` times."""
    products = n_layers * passes
    return Cost(
        flops=products * n_edges * 2 * dim,
        stream_bytes=products * n_nodes * (WORD + WORD * dim),
        gather_bytes=products * n_edges * (WORD + WORD + WORD * dim),
    )


def rows_propagation_cost(n_pairs: int, n_items: int, dim: int, n_layers: int, passes: int) -> Cost:
    """The bipartite rows path: per pass one E-edge product plus the G products."""
    one_side = propagation_cost(n_pairs, n_items, dim, 1, passes=1)  # E edges, I outputs
    n_gram = n_layers // 2 + (n_layers - 1) // 2
    dense_gram = Cost(
        flops=2 * n_items * n_items * dim,
        stream_bytes=WORD * (n_items * n_items + 2 * n_items * dim),
        gather_bytes=0,
    )
    sparse_gram = 2 * one_side
    gram = dense_gram if _seconds_guess(dense_gram) < _seconds_guess(sparse_gram) else sparse_gram
    return passes * (one_side + n_gram * gram)


def _seconds_guess(cost: Cost) -> float:
    """Rough ranking of two costs at typical CPU rates (GEMM 50 GFLOP/s, 10 GB/s)."""
    return cost.flops / 50e9 + (cost.stream_bytes + cost.gather_bytes) / 10e9


def distinct_draws(n: int, draws: int) -> float:
    """n (1 - (1 - 1/n)^draws): the expected distinct values among `draws` uniform draws
    from n with replacement. It bounds a batch's distinct users from below: their slots
    are drawn without replacement from a multiset holding every user about equally often
    (advjax/sampling.py), which repeats less."""
    return n * (1.0 - (1.0 - 1.0 / n) ** draws)


def view_contrast_cost(rows: float, dim: int) -> Cost:
    """view_infonce over `rows` (M) nodes' two views: the [M, M] cosine product and its
    two backward products (6 M^2 d FLOPs); both views' rows gathered, their gradients
    scattered back (4 M d words)."""
    return Cost(flops=6 * rows * rows * dim, gather_bytes=WORD * 4 * rows * dim)


def target_contrast_cost(batch: int, n_keys: int, dim: int) -> Cost:
    """target_infonce of B queries against K fixed keys (NCL's centroids): the [B, K]
    product and the queries' backward product (4 B K d FLOPs); the keys read twice."""
    return Cost(flops=4 * batch * n_keys * dim, stream_bytes=WORD * 2 * n_keys * dim)


def kmeans_cost(n_rows: int, n_clusters: int, dim: int, n_iters: int) -> Cost:
    """advjax.augmentations.kmeans: n_iters Lloyd steps and the final assignment, each a
    distance product (2 N K d FLOPs) reading the rows and centroids; each step also sums
    the rows into their centroids (N d)."""
    products = n_iters + 1
    return Cost(
        flops=products * 2 * n_rows * n_clusters * dim + n_iters * n_rows * dim,
        stream_bytes=products * WORD * (n_rows * dim + n_clusters * dim + n_rows),
    )


def sample_cost(n_rows: int, dim: int) -> Cost:
    """VGAE's sampling of n_rows rows: log sigma = rows @ W [d, d] forward and its two
    backward products, and about 10 elementwise operations per entry (noise, exp, the
    KL term and their gradients) over about 6 [n_rows, d] arrays read or written."""
    return Cost(
        flops=3 * 2 * n_rows * dim * dim + 10 * n_rows * dim,
        stream_bytes=WORD * (6 * n_rows * dim + dim * dim),
    )


def adam_cost(n_params: int) -> Cost:
    """One dense Adam update of n_params float32 parameters."""
    return Cost(
        flops=ADAM_FLOPS_PER_PARAM * n_params,
        stream_bytes=ADAM_WORDS_PER_PARAM * WORD * n_params,
    )


def cf_step_terms(
    *,
    n_users: int,
    n_items: int,
    batch: int,
    n_neg: int,
    dim: int,
    n_layers: int,
    n_edges: int,
    adversarial: bool,
    hardness_dim: int | None = None,
    augment: str = "none",
    n_clusters: int = 0,
    sampled: bool = False,
    item_neighbors: int = 0,
) -> dict[str, Cost]:
    """Named cost terms of one CF step (see the module docstring).

    `sampled`: the backbone samples the step's rows (Backbone.sample; VGAE): its
    log-sigma head over the batch's users and every item, forward and two backward
    products ("sample"), and the noise, the clamp and the KL term's elementwise work.
    `item_neighbors` (UltraGCN's K): its item-item term scores each batch user against
    the K neighbours of its positive item, forward and backward like the loss's scores,
    and its norm penalty reads and differentiates both whole tables ("constraints").

    `augment` (--augment): SGL adds its two views' full propagations, forward and
    backward ("views"); XSimGCL and NCL propagate every node layer by layer instead of
    the rows path. Each adds its contrast between two views of the batch's distinct
    users ("contrast", over `distinct_draws(U, B)` of them; NCL's is its structural
    term). The items' side of those contrasts is left out: how many of the batch's
    positive items are distinct depends on the popularity skew, and an estimate could
    lift the floor above the work. NCL also contrasts every batch user and positive
    item with its type's `n_clusters` centroids ("prototype", clusters capped at the
    nodes); its k-means is once per epoch (`epoch_terms`).
    """
    hardness_dim = dim if hardness_dim is None else hardness_dim
    terms = {
        "scores": 3 * (score_cost(batch, n_items, n_neg, dim) + score_cost(batch, n_items, 1, dim))
    }
    if adversarial:
        terms["hardness"] = score_cost(batch, n_items, n_neg, hardness_dim)
    if n_layers:
        full = propagation_cost(n_edges, n_users + n_items, dim, n_layers, passes=2)
        rows = rows_propagation_cost(n_edges // 2, n_items, dim, n_layers, passes=2)
        terms["propagation"] = min(full, rows, key=_seconds_guess)
        if augment in ("xsimgcl", "ncl"):
            terms["propagation"] = full
        if augment == "sgl":
            terms["views"] = propagation_cost(n_edges, n_users + n_items, dim, n_layers, passes=4)
        if augment in ("sgl", "xsimgcl", "ncl"):
            terms["contrast"] = view_contrast_cost(distinct_draws(n_users, batch), dim)
        if augment == "ncl":
            terms["prototype"] = sum(
                (target_contrast_cost(batch, min(n_clusters, n), dim) for n in (n_users, n_items)),
                Cost(),
            )
    if sampled:
        terms["sample"] = sample_cost(batch + n_items, dim)
    if item_neighbors:
        terms["constraints"] = 3 * score_cost(batch, n_items, item_neighbors, dim) + Cost(
            flops=4 * (n_users + n_items) * dim,
            stream_bytes=WORD * 2 * (n_users + n_items) * dim,
        )
    terms["adam"] = adam_cost((n_users + n_items) * dim)
    return terms


def epoch_terms(
    *, n_users: int, n_items: int, dim: int, augment: str, n_clusters: int, kmeans_iters: int
) -> dict[str, Cost]:
    """Named cost terms a CF epoch pays once, beside its steps: NCL's k-means of the
    user and the item tables (`n_clusters` each, capped at the rows)."""
    if augment != "ncl":
        return {}
    return {
        "kmeans": sum(
            (kmeans_cost(n, min(n_clusters, n), dim, kmeans_iters) for n in (n_users, n_items)),
            Cost(),
        )
    }


def adv_step_terms(
    *,
    n_users: int,
    n_items: int,
    batch: int,
    n_neg: int,
    dim: int,
    hardness_dim: int | None = None,
) -> dict[str, Cost]:
    """Named cost terms of one adversarial step (hardness model "embed")."""
    hardness_dim = dim if hardness_dim is None else hardness_dim
    return {
        "scores": score_cost(batch, n_items, n_neg, dim) + score_cost(batch, n_items, 1, dim),
        "hardness": 3 * score_cost(batch, n_items, n_neg, hardness_dim),
        "adam": adam_cost((n_users + n_items) * hardness_dim),
    }


def total(terms: dict[str, Cost]) -> Cost:
    out = Cost()
    for cost in terms.values():
        out = out + cost
    return out


def floor_seconds(cost: Cost, rates: dict[str, float]) -> float:
    """max(flops / gemm, stream / stream_bw + gather / gather_bw); rates in GFLOP/s, GB/s."""
    compute = cost.flops / (rates["gemm_gflop_s"] * 1e9)
    memory = cost.stream_bytes / (rates["stream_gb_s"] * 1e9) + cost.gather_bytes / (
        rates["gather_gb_s"] * 1e9
    )
    return max(compute, memory)


def floor_formula(cost: Cost, rates: dict[str, float]) -> str:
    """The floor arithmetic as one line a reader can check."""
    compute = cost.flops / (rates["gemm_gflop_s"] * 1e9)
    stream = cost.stream_bytes / (rates["stream_gb_s"] * 1e9)
    gather = cost.gather_bytes / (rates["gather_gb_s"] * 1e9)
    return (
        f"max({cost.flops / 1e9:.3f} GFLOP / {rates['gemm_gflop_s']:.1f} GFLOP/s = {compute:.4f} s,"
        f" {cost.stream_bytes / 1e9:.3f} GB / {rates['stream_gb_s']:.1f} GB/s"
        f" + {cost.gather_bytes / 1e9:.3f} GB / {rates['gather_gb_s']:.1f} GB/s"
        f" = {stream + gather:.4f} s) = {max(compute, stream + gather):.4f} s"
    )


def _best_seconds(fn, *args, repeats: int) -> float:
    """Best wall time of fn(*args) after one untimed call (compilation, first touch)."""
    jax.block_until_ready(fn(*args))
    best = np.inf
    for _ in range(repeats):
        tick = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - tick)
    return best


def _best_seconds_in_place(fn, x: jax.Array, repeats: int) -> float:
    """Best time of x = fn(x) with x donated: no fresh output pages to fault in."""
    x = jax.block_until_ready(fn(x))
    best = np.inf
    for _ in range(repeats):
        tick = time.perf_counter()
        x = jax.block_until_ready(fn(x))
        best = min(best, time.perf_counter() - tick)
    return best


def _gemm_seconds(n: int, *, repeats: int) -> float:
    """Best seconds of a jitted float32 [n, n] @ [n, n]."""
    a = jnp.ones((n, n), jnp.float32)
    b = jnp.full((n, n), 0.5, jnp.float32)
    return _best_seconds(_matmul, a, b, repeats=repeats)


_matmul = jax.jit(jnp.matmul)
_add_one = jax.jit(lambda x: x + 1.0, donate_argnums=0)
_total_sum = jax.jit(jnp.sum)


def _sum_seconds(n_bytes: int, *, repeats: int) -> float:
    """Best seconds of a jitted sum over n_bytes of float32 (one read pass)."""
    x = jnp.ones((n_bytes // WORD,), jnp.float32)
    return _best_seconds(_total_sum, x, repeats=repeats)


def _copy_seconds(n_bytes: int, *, repeats: int) -> float:
    """Best seconds of x + 1 in place over n_bytes of float32 (a read and a write pass)."""
    x = jnp.ones((n_bytes // WORD,), jnp.float32)
    return _best_seconds_in_place(_add_one, x, repeats=repeats)


_take_rows = jax.jit(lambda table, ids: table[ids])


def _xla_gather_seconds(table: jax.Array, rng, n_out: int, *, repeats: int) -> float:
    """Best seconds of a jitted table[ids] of n_out random rows."""
    ids = jnp.asarray(rng.integers(0, table.shape[0], n_out).astype(np.int32))
    return _best_seconds(_take_rows, table, ids, repeats=repeats)


def _numpy_gather_seconds(table: np.ndarray, rng, n_out: int, *, repeats: int) -> float:
    """Best seconds of np.take of n_out random rows into a preallocated buffer."""
    ids = rng.integers(0, table.shape[0], n_out).astype(np.int32)
    out = np.empty((n_out, table.shape[1]), np.float32)
    return _best_seconds(functools.partial(np.take, axis=0, out=out), table, ids, repeats=repeats)


def grow_until(measure, size: int, *, max_size: int, min_seconds: float) -> tuple[int, float]:
    """Doubles size from its start while measure(size) takes under min_seconds.

    A probe that finishes in microseconds (a 1024 GEMM or 128 MB of streaming on a GPU)
    times the launch, not the work, and under-reads the rate; doubling until the probe
    lasts min_seconds, or reaches max_size, fits it to whatever device runs it.

    Args:
      measure: size -> best seconds of the probe at that size.
      size: the first size tried.
      max_size: no size above this is tried.
      min_seconds: the probe time that ends the growth.

    Returns:
      (the last size measured, its seconds).
    """
    seconds = measure(size)
    while seconds < min_seconds and 2 * size <= max_size:
        size *= 2
        seconds = measure(size)
    return size, seconds


def measure_rates(
    *, repeats: int = 5, gemm_size: int = 1024, dim: int = 64, min_seconds: float = 2e-3
) -> dict:
    """The machine's GEMM rate, streaming and random-row-gather bandwidths, best of repeats.

    GEMM: a jitted float32 [n, n] @ [n, n], 2 n^3 FLOPs. Streaming: a jitted x + 1 on
    a donated float32 array (read + write, in place) and a jitted sum (read), at 4 MB
    (cache) and 128 MB (memory). Gather: random [d]-rows of a float32 table by int32 id
    (id + row read + row write per row), from tables of 4 MB and 256 MB, by XLA
    (jitted table[ids]) and by NumPy (np.take into a preallocated buffer): XLA's CPU
    gather is the slower of the two, and the floor is the machine's, not XLA's.

    The GEMM, the memory-sized streams and the XLA gathers' row count grow by doubling
    (grow_until) while a probe lasts under min_seconds: on a CPU the sizes above already
    take milliseconds; on a GPU they would time kernel launches. The GEMM's and the
    streams' names carry the size they ended at.

    Returns:
      {"gemm_gflop_s", "stream_gb_s", "gather_gb_s": the best measured of each kind,
       "measured": every measurement by name}.
    """
    measured = {}
    grow = functools.partial(grow_until, min_seconds=min_seconds)
    n, seconds = grow(
        functools.partial(_gemm_seconds, repeats=repeats), gemm_size, max_size=8 * gemm_size
    )
    measured[f"gemm_{n}_gflop_s"] = 2 * n**3 / seconds / 1e9

    # (name, seconds of one pass over n bytes, bytes moved per byte of the array)
    streams = (("sum", _sum_seconds, 1), ("copy", _copy_seconds, 2))
    for name, measure, passes in streams:
        measure = functools.partial(measure, repeats=repeats)
        n_bytes = 4 << 20  # cache-sized: its size is the point, so it does not grow
        measured[f"{name}_4mb_gb_s"] = passes * n_bytes / measure(n_bytes) / 1e9
        n_bytes, seconds = grow(measure, 128 << 20, max_size=1 << 30)
        measured[f"{name}_{n_bytes >> 20}mb_gb_s"] = passes * n_bytes / seconds / 1e9

    words_per_row = 2 * dim + 1  # id, row read, row written
    n_out = 1 << 15  # 8 MB gathered: small enough for the allocator to reuse
    rng = np.random.default_rng(0)
    for table_bytes in (4 << 20, 256 << 20):
        table = np.ones((table_bytes // (WORD * dim), dim), np.float32)
        label = f"{table_bytes >> 20}mb"
        measure = functools.partial(_xla_gather_seconds, jnp.asarray(table), rng, repeats=repeats)
        grown, seconds = grow(measure, n_out, max_size=1 << 21)
        measured[f"gather_xla_{label}_gb_s"] = grown * WORD * words_per_row / seconds / 1e9
        seconds = _numpy_gather_seconds(table, rng, n_out, repeats=repeats)
        measured[f"gather_numpy_{label}_gb_s"] = n_out * WORD * words_per_row / seconds / 1e9

    def best(prefixes: tuple[str, ...]) -> float:
        return max(v for k, v in measured.items() if k.startswith(prefixes))

    return {
        "gemm_gflop_s": best(("gemm",)),
        "stream_gb_s": best(("copy", "sum")),
        "gather_gb_s": best(("gather",)),
        "measured": measured,
    }
