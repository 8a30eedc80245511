"""iALS: implicit-feedback alternating least squares, a fitted model (advjax.models.fitted).

The binary training matrix X [U, I] with observed set S is fitted by scores
s_ui = w_u . h_i (user table W [U, d], item table H [I, d], d = --emb_dim) minimising

  L(W, H) = sum_{(u,i) in S} c (1 - s_ui)^2 + w0 sum_{(u,i) not in S} s_ui^2
            + sum_u lam_u |w_u|^2 + sum_i lam_i |h_i|^2,

  c     = 1 + alpha                                  (Hu's confidence of a binary r = 1),
  w0    = the unobserved weight,
  lam_u = lam (c |I_u| + w0 (|I| - |I_u|)) ** nu     (the row's total weight to the nu),
  lam_i = lam (c |U_i| + w0 (|U| - |U_i|)) ** nu.

nu = 0 is Hu et al.'s plain lam; nu = 1 is Rendle et al.'s frequency-scaled
regularisation. Rendle's own objective, a weight-1 fit to 1 on S plus a0 times the sum of
s^2 over all pairs, is this one with c = 1 + a0 and w0 = a0 (so a row's total weight is
his |I_u| + a0 |I|) but with target 1 / (1 + a0) in place of 1. With target t and lam
the minimisers are sqrt(t) times those with target 1 and lam / t, so his objective with
lam ranks items as this one with lam (1 + a0). The library `implicit`'s
AlternatingLeastSquares(alpha=a, regularization=r) is this one with c = a
(alpha = a - 1), w0 = 1, lam = r, nu = 0.

A sweep is a user half-step then an item half-step. The user half-step solves, for
every user at once,

  A_u w_u = b_u,  A_u = w0 HᵀH + (c - w0) sum_{i in I_u} h_i h_iᵀ + lam_u Id,
                  b_u = c sum_{i in I_u} h_i,

the exact minimiser of L over W for fixed H (A_u = sum_i C_ui h_i h_iᵀ + lam_u Id, every
weight C_ui in {c, w0} positive, is positive definite);
the item half-step is the same with the roles swapped. --ials_solver picks how:

  cholesky  exact. Rows in blocks of --ials_block; a block's A is assembled from the
            outer products of its pairs, --ials_block pairs at a pass, and factored.
            Memory is bounded by the block, whatever the degrees.
  cg        --ials_cg_steps conjugate-gradient steps per half-step, warm-started at the
            current table and matrix-free (A_u x from HᵀH and the row's pairs), as
            `implicit` does (Takács et al.). Rows go in blocks of like degree, each row's
            pairs padded to its block's width (FitData's PaddedRows), so a CG step is
            dense reductions over [rows, width, d] with no gather or scatter per pair.

A user or item without pairs gets b = 0, so a zero row (cg sets it, its exact solve).

Compilation: the jitted functions take the sizes of the training matrix, the solver, the
CG steps and the block as their static arguments and everything else (the tables, the
pairs, alpha, w0, lam, nu) as arrays and scalars, so sweep after sweep, and runs that
differ only in those four weights, reuse one compilation. They read these fields of the
configuration: emb_dim and the ials_* settings below, nothing else.

References:
  Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets",
  ICDM 2008, eq. (3)-(4).
  Rendle, Krichene, Zhang & Koren, "Revisiting the Performance of iALS on Item
  Recommendation Benchmarks", RecSys 2022 (the unobserved weight a0 and the
  frequency-scaled regularisation nu).
  Takács, Pilászy & Tikk, "Applications of the Conjugate Gradient Method for Implicit
  Feedback Collaborative Filtering", RecSys 2011.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from advjax.models.fitted import FitData, Fitted
from advjax.settings import Setting, non_negative, one_of, positive

SOLVERS = ("cholesky", "cg")

SETTINGS = (
    Setting(
        "ials_alpha",
        1.0,
        "iALS: confidence of an observed pair is 1 + alpha (Hu et al.'s convention; "
        "implicit's alpha=a is a - 1).",
        non_negative,
    ),
    Setting(
        "ials_unobserved_weight",
        1.0,
        "iALS: weight w0 of the squared score of an unobserved pair (Rendle et al.'s a0 "
        "is --ials_unobserved_weight=a0 --ials_alpha=a0).",
        positive,
    ),
    Setting("ials_reg", 0.01, "iALS: L2 regularisation lam of every row.", positive),
    Setting(
        "ials_reg_exponent",
        0.0,
        "iALS: nu; a row's regularisation is lam * (its total weight) ** nu (0: Hu et "
        "al.'s plain lam; 1: Rendle et al.'s frequency-scaled one).",
        non_negative,
    ),
    Setting(
        "ials_init_std",
        0.01,
        "iALS: standard deviation of the normal initial user and item tables.",
        positive,
    ),
    Setting(
        "ials_solver",
        "cholesky",
        "iALS: half-step solver, cholesky (exact) or cg (--ials_cg_steps conjugate-"
        "gradient steps from the current tables).",
        one_of(*SOLVERS),
    ),
    Setting(
        "ials_cg_steps",
        3,
        "iALS: conjugate-gradient steps per half-step of --ials_solver=cg.",
        positive,
    ),
    Setting(
        "ials_block",
        1024,
        "iALS: rows solved together, and pairs assembled at a pass, by "
        "--ials_solver=cholesky (device memory grows with it as block * emb_dim^2).",
        positive,
    ),
)


class Weights(NamedTuple):
    """The objective's scalars (traced, so new values do not recompile).

    Attributes:
      confidence: c = 1 + alpha, the weight of an observed pair.
      unobserved: w0, the weight of an unobserved pair.
      reg: lam.
      reg_exponent: nu.
    """

    confidence: float
    unobserved: float
    reg: float
    reg_exponent: float


def read_weights(cfg) -> Weights:
    """The Weights of a configuration's ials_* settings."""
    return Weights(
        confidence=1.0 + cfg.ials_alpha,
        unobserved=cfg.ials_unobserved_weight,
        reg=cfg.ials_reg,
        reg_exponent=cfg.ials_reg_exponent,
    )


def _solver_args(cfg) -> dict:
    return {"solver": cfg.ials_solver, "cg_steps": cfg.ials_cg_steps, "block": cfg.ials_block}


def row_reg(w: Weights, degrees: jax.Array, n_other: int, dtype) -> jax.Array:
    """[R] each row's lam_r = lam (c n_r + w0 (n_other - n_r)) ** nu.

    Args:
      w: the objective's scalars.
      degrees: int [R] n_r, the row's observed pairs.
      n_other: the number of columns (items for user rows, users for item rows).
      dtype: the result's float dtype.
    """
    n = degrees.astype(dtype)
    return w.reg * (w.confidence * n + w.unobserved * (n_other - n)) ** w.reg_exponent


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    """num / den where den > 0, else 0 (a converged CG row has 0 / 0)."""
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), 0)


def _cg_rows(X, Yc, lam, gram, w: Weights, steps: int) -> jax.Array:
    """`steps` CG iterations on A_r x = b_r from x = X, for rows of like degree.

    Args:
      X: [n, d] the rows' warm start.
      Yc: [n, K, d] each row's pairs' rows of the other table, zero past its degree.
      lam: [n] the rows' lam_r.
      gram: [d, d] the other table's Gram matrix.
      w: the objective's scalars.
      steps: CG iterations.

    Returns:
      [n, d] the rows after `steps` iterations.
    """

    def apply(P):  # A_r p_r of every row, the pairs' term as reductions over K (no scatter)
        along = jnp.einsum("nkd,nd->nk", Yc, P)
        return (
            w.unobserved * (P @ gram)
            + (w.confidence - w.unobserved) * jnp.einsum("nk,nkd->nd", along, Yc)
            + lam[:, None] * P
        )

    b = w.confidence * jnp.sum(Yc, axis=1)
    r = b - apply(X)

    def step(_, state):
        x, r, p, rs = state
        Ap = apply(p)
        size = _safe_div(rs, jnp.sum(p * Ap, axis=-1))[:, None]
        x = x + size * p
        r = r - size * Ap
        rs_new = jnp.sum(r * r, axis=-1)
        p = r + _safe_div(rs_new, rs)[:, None] * p
        return x, r, p, rs_new

    x, *_ = lax.fori_loop(0, steps, step, (X, r, r, jnp.sum(r * r, axis=-1)))
    return x


def _pairs_fit(scores: jax.Array, w: Weights, observed: jax.Array | bool = True) -> jax.Array:
    """The sum over observed pairs of c (1 - s)^2 - w0 s^2: their part of L's fit term
    beside w0 times every pair's s^2 (which _objective_given adds).

    Args:
      scores: [...] the pairs' scores s.
      w: the objective's scalars.
      observed: bool [...] which entries are pairs (False: padding, not summed).
    """
    terms = w.confidence * (1 - scores) ** 2 - w.unobserved * scores**2
    return jnp.sum(jnp.where(observed, terms, 0))


def _cg(X, Y, blocks, gram, lam, w: Weights, steps: int) -> tuple[jax.Array, jax.Array]:
    """CG on every row, one padded block of rows of like degree at a time (FitData's
    PaddedRows): a block's pairs' rows of Y are gathered once per half-step, and each CG
    step reads them as dense [n, K, d] arrays, with neither a gather nor a scatter over
    the pairs (on a CPU those ran at a fraction of memory bandwidth). Rows without pairs
    are in no block and get their exact solution, zero.

    Returns:
      ([R, d] the new table, _pairs_fit of its scores, from the gathered rows: the
      objective after a sweep without another pass of gathers).
    """
    Y = jnp.concatenate([Y, jnp.zeros((1, Y.shape[1]), Y.dtype)])  # the padding index's row
    out, fit = jnp.zeros_like(X), jnp.zeros((), X.dtype)
    for block in blocks:
        Yc = Y[block.cols]
        solved = _cg_rows(X[block.rows], Yc, lam[block.rows], gram, w, steps)
        out = out.at[block.rows].set(solved, unique_indices=True, indices_are_sorted=True)
        scores = jnp.sum(Yc * solved[:, None, :], axis=-1)
        fit += _pairs_fit(scores, w, observed=block.cols < Y.shape[0] - 1)
    return out, fit


def _cholesky(Y, rows, cols, ptr, gram, lam, w: Weights, block: int) -> jax.Array:
    """Every row's exact A_r^-1 b_r, `block` rows at a time (see the module docstring)."""
    n_rows, d = ptr.shape[0] - 1, Y.shape[1]
    n_pass = block  # pairs assembled at a pass
    block = max(1, min(block, n_rows))
    n_blocks = -(-n_rows // block)
    padded = n_blocks * block
    # Padding rows have no pairs (their offsets repeat the last one) and lam = 1, so a
    # positive definite A even where G is singular; their solutions are dropped.
    ptr = jnp.concatenate([ptr, jnp.full(padded - n_rows, ptr[-1], ptr.dtype)])
    lam = jnp.concatenate([lam, jnp.ones(padded - n_rows, lam.dtype)])
    eye = jnp.eye(d, dtype=Y.dtype)

    def solve_block(args):
        index, lam_block = args
        first = index * block
        lo, hi = ptr[first], ptr[first + block]

        def add_pass(k, acc):
            outer, total = acc
            pair = lo + k * n_pass + jnp.arange(n_pass, dtype=lo.dtype)
            valid = pair < hi
            pair = jnp.where(valid, pair, lo)
            y = Y[cols[pair]] * valid[:, None]
            # Invalid pairs are zero rows added to the last row: the ids stay sorted.
            local = jnp.where(valid, rows[pair] - first, block - 1)
            segsum = functools.partial(
                jax.ops.segment_sum,
                segment_ids=local,
                num_segments=block,
                indices_are_sorted=True,
            )
            return outer + segsum(y[:, :, None] * y[:, None, :]), total + segsum(y)

        zeros = (jnp.zeros((block, d, d), Y.dtype), jnp.zeros((block, d), Y.dtype))
        outer, total = lax.fori_loop(0, (hi - lo + n_pass - 1) // n_pass, add_pass, zeros)
        A = (
            w.unobserved * gram
            + (w.confidence - w.unobserved) * outer
            + lam_block[:, None, None] * eye
        )
        factor = jnp.linalg.cholesky(A)
        return jax.scipy.linalg.cho_solve((factor, True), w.confidence * total[..., None])[..., 0]

    out = lax.map(solve_block, (jnp.arange(n_blocks), lam.reshape(n_blocks, block)))
    return out.reshape(padded, d)[:n_rows]


@functools.partial(jax.jit, static_argnames=("solver", "cg_steps", "block"))
def half_step(
    X: jax.Array,
    Y: jax.Array,
    rows: jax.Array,
    cols: jax.Array,
    ptr: jax.Array,
    blocks: tuple,
    w: Weights,
    *,
    solver: str,
    cg_steps: int,
    block: int,
) -> jax.Array:
    """One side's new table given the other's: the solves A_r x_r = b_r of every row.

    Args:
      X: [R, d] the side's current table (CG's warm start; unread by cholesky).
      Y: [M, d] the other side's table.
      rows: int32 [nnz] each observed pair's row, ascending.
      cols: int32 [nnz] its column (a row of Y).
      ptr: int32 [R + 1] offsets of each row's pairs in rows / cols.
      blocks: the same pairs as FitData's PaddedRows blocks (cg only).
      w: the objective's scalars.
      solver: "cholesky" (exact) or "cg".
      cg_steps: CG iterations (cg only).
      block: rows per block and pairs per pass (cholesky only).

    Returns:
      ([R, d] the new table, X's dtype; _pairs_fit of its scores against Y).
    """
    gram = Y.T @ Y
    lam = row_reg(w, jnp.diff(ptr), Y.shape[0], Y.dtype)
    if solver == "cg":
        return _cg(X, Y, blocks, gram, lam, w, cg_steps)
    table = _cholesky(Y, rows, cols, ptr, gram, lam, w, block)
    return table, _pairs_fit(jnp.sum(table[rows] * Y[cols], axis=-1), w)


def _user_layout(data: FitData) -> tuple:
    """(rows, cols, ptr, blocks) of the pairs by user: users as rows, items as columns."""
    return data.entry_users, data.entry_items, data.user_ptr, data.user_blocks


def _item_layout(data: FitData) -> tuple:
    """(rows, cols, ptr, blocks) of the pairs by item: items as rows, users as columns."""
    rows, cols = data.entry_items[data.by_item], data.entry_users[data.by_item]
    return rows, cols, data.item_ptr, data.item_blocks


def solve_users(cfg, W: jax.Array, H: jax.Array, data: FitData) -> jax.Array:
    """[U, d] the user half-step's table given H [I, d] (W [U, d]: CG's warm start)."""
    return half_step(W, H, *_user_layout(data), read_weights(cfg), **_solver_args(cfg))[0]


def solve_items(cfg, W: jax.Array, H: jax.Array, data: FitData) -> jax.Array:
    """[I, d] the item half-step's table given W [U, d] (H [I, d]: CG's warm start)."""
    return half_step(H, W, *_item_layout(data), read_weights(cfg), **_solver_args(cfg))[0]


def _objective_given(W, H, pairs_fit, data: FitData, w: Weights) -> jax.Array:
    """L(W, H) given the observed pairs' _pairs_fit."""
    every_pair = jnp.sum((W.T @ W) * (H.T @ H))  # sum over all (u, i) of s_ui^2
    lam_u = row_reg(w, data.user_degrees(), data.n_items, W.dtype)
    lam_i = row_reg(w, data.item_degrees(), data.n_users, H.dtype)
    regs = jnp.sum(lam_u * jnp.sum(W**2, axis=-1)) + jnp.sum(lam_i * jnp.sum(H**2, axis=-1))
    return pairs_fit + w.unobserved * every_pair + regs


@jax.jit
def _objective(params: dict, data: FitData, w: Weights) -> jax.Array:
    W, H = params["user"], params["item"]
    scores = jnp.sum(W[data.entry_users] * H[data.entry_items], axis=-1)
    return _objective_given(W, H, _pairs_fit(scores, w), data, w)


def objective(cfg, params: dict, data: FitData) -> jax.Array:
    """The scalar L(W, H) of the module docstring, without a dense [U, I] matrix.

    Args:
      cfg: reads the ials_* weights.
      params: {"user": [U, d], "item": [I, d]}.
      data: the training matrix.
    """
    return _objective(params, data, read_weights(cfg))


@functools.partial(jax.jit, static_argnames=("solver", "cg_steps", "block"))
def _sweep(params: dict, data: FitData, w: Weights, *, solver, cg_steps, block):
    args = {"solver": solver, "cg_steps": cg_steps, "block": block}
    W, H = params["user"], params["item"]
    W, _ = half_step(W, H, *_user_layout(data), w, **args)
    H, pairs_fit = half_step(H, W, *_item_layout(data), w, **args)
    return {"user": W, "item": H}, {"loss": _objective_given(W, H, pairs_fit, data, w)}


def sweep(cfg, params: dict, data: FitData) -> tuple[dict, dict]:
    """One alternation: the user half-step, then the item half-step.

    Args:
      cfg: reads the ials_* settings.
      params: {"user": [U, d], "item": [I, d]}.
      data: the training matrix.

    Returns:
      (the new params, {"loss": the objective L after the sweep}).
    """
    return _sweep(params, data, read_weights(cfg), **_solver_args(cfg))


def init(cfg, key: jax.Array, data: FitData) -> dict:
    """Float32 tables {"user": [U, d], "item": [I, d]}, entries N(0, ials_init_std^2)."""
    user_key, item_key = jax.random.split(key)
    std, d = cfg.ials_init_std, cfg.emb_dim
    return {
        "user": std * jax.random.normal(user_key, (data.n_users, d), jnp.float32),
        "item": std * jax.random.normal(item_key, (data.n_items, d), jnp.float32),
    }


def represent(cfg, params: dict, data: FitData) -> tuple[jax.Array, jax.Array]:
    """(user [U, d], item [I, d]): the tables."""
    return params["user"], params["item"]


def bytes_needed(cfg, n_users: int, n_items: int, nnz: int) -> int:
    """The float32 fit's peak device bytes, counting every intermediate as held (XLA may
    fuse some gathers away): the pairs both ways round, the old and new tables, and the
    larger of the solver's working set and the objective's score gathers.

    cholesky: one block's pass of outer products [block, d, d], its sums, A and its
    factor (4 such), the pass's gathered rows, and the padded output [R + block, d].
    cg: the padded pairs' gathered rows and their products with x, under 1.42 nnz each
    (so 3 nnz in all), and the CG vectors b, r, p, Ap, x [R, d] (5 such), R the larger side.
    """
    d, item, index = cfg.emb_dim, 4, 4
    rows = max(n_users, n_items)
    # FitData (the pairs, the by-item order, both sides' padded blocks under 1.42 nnz
    # each) and the by-item reorder.
    pairs = (8 * nnz + 2 * (n_users + n_items) + 2) * index
    tables = 2 * (n_users + n_items) * d * item
    if cfg.ials_solver == "cg":
        solver = (3 * nnz * d + 5 * rows * d) * item
    else:
        block = cfg.ials_block
        solver = (4 * block * d * d + 2 * block * d + (rows + block) * d) * item
    scores = 2 * nnz * d * item
    return pairs + tables + max(solver, scores) + d * d * item


MODEL = Fitted(
    name="ials",
    init=init,
    sweep=sweep,
    represent=represent,
    bytes_needed=bytes_needed,
    label=lambda cfg: "iALS",
    slug=lambda cfg: "ials",
    iterative=True,
    deterministic=False,
    settings=SETTINGS,
)
