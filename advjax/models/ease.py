"""EASE (Steck, WWW 2019): a linear item-item model in closed form.

With the binary training matrix X [U, I] and the Gram matrix G = XᵀX, EASE solves

    min_B ||X - X B||_F^2 + λ ||B||_F^2   subject to diag(B) = 0,

whose solution is B = I - P diag(1 / diag(P)) with P = (G + λ I)⁻¹, i.e.
B_ij = -P_ij / P_jj off the diagonal and 0 on it. A user's scores are X_u · B, so as a
`TrainedModel` (dot scoring) the user representations are the rows of X and the item
representations the columns of B: users [U, I] = X, items [I, I] = Bᵀ.

A fitted model (advjax/models/fitted.py), one-shot and deterministic: `--backbone=ease`
fits once (--max_epochs, --patience, --eval_every and --seed are not read), its only
setting is λ (`--ease_l2`), chosen on validation. The fit holds X, G + λI, its Cholesky
factor, P and B: about U·I + 4·I² floats, so it is refused up front where a dense item × item
matrix does not fit (`bytes_needed`; advjax/train/fit.py says what it would need).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from jax.scipy.linalg import cho_factor, cho_solve

from advjax.models.fitted import FitData, Fitted
from advjax.settings import Setting, positive

FLOAT_BYTES = 4

SETTINGS = (
    Setting(
        "ease_l2",
        500.0,
        "EASE's L2 weight λ on the item-item matrix (--backbone=ease); chosen on validation.",
        positive,
    ),
)


def gram(data: FitData, dtype=jnp.float32) -> jax.Array:
    """[I, I] G = XᵀX: item co-occurrence counts (the diagonal: item degrees), as a dense
    product on the device (the reference for host_gram; 2·U·I² multiply-adds)."""
    x = data.dense(dtype)
    return jnp.matmul(x.T, x, precision=jax.lax.Precision.HIGHEST)


def host_gram(data: FitData) -> np.ndarray:
    """float32 [I, I] G = XᵀX as SciPy's sparse product on the host: Σ_u |I_u|²
    multiply-adds instead of the dense 2·U·I² (Yahoo!R3: 0.05 s against 0.3 s for the
    dense product on this CPU; KuaiRec: 3.4 s against about 30 s). Counts are exact
    integers in float32 below 2^24."""
    users, items = np.asarray(data.entry_users), np.asarray(data.entry_items)
    ones = np.ones(users.shape[0], np.float32)
    x = scipy.sparse.csr_matrix((ones, (users, items)), shape=(data.n_users, data.n_items))
    return (x.T @ x).toarray()


def item_item(g: jax.Array, l2: float) -> jax.Array:
    """[I, I] EASE's B from the Gram matrix g [I, I] and λ: B = I - P diag(1/diag P),
    P = (g + λI)⁻¹ by a Cholesky solve (g + λI is symmetric positive definite)."""
    n = g.shape[0]
    eye = jnp.eye(n, dtype=g.dtype)
    factor = cho_factor(g + l2 * eye, lower=True)
    p = cho_solve(factor, eye)
    b = -p / jnp.diag(p)[None, :]
    return b * (1 - eye)  # exactly 0 on the diagonal (there -P_jj/P_jj = -1, plus I)


def objective(data: FitData, b: jax.Array, l2: float) -> jax.Array:
    """[] ||X - XB||_F^2 + λ||B||_F^2 (tests; the fit does not compute it: it costs a
    U x I x I product)."""
    x = data.dense(b.dtype)
    residual = x - jnp.matmul(x, b, precision=jax.lax.Precision.HIGHEST)
    return jnp.sum(residual**2) + l2 * jnp.sum(b**2)


def init(cfg, key: jax.Array, data: FitData) -> dict:
    """Nothing before the solve (one-shot)."""
    return {}


_item_item = jax.jit(item_item)


def sweep(cfg, params: dict, data: FitData) -> tuple[dict, dict]:
    """The closed-form fit: {"item_item": B [I, I]} (the Gram matrix on the host, the
    solve on the device), and B's size as its statistic (the objective would cost
    another U x I x I product)."""
    b = _item_item(jnp.asarray(host_gram(data)), jnp.float32(cfg.ease_l2))
    return {"item_item": b}, {"mean_abs_weight": jnp.mean(jnp.abs(b))}


def represent(cfg, params: dict, data: FitData) -> tuple[jax.Array, jax.Array]:
    """(X [U, I], Bᵀ [I, I]): user u's score of item i is X_u · B[:, i]."""
    return data.dense(params["item_item"].dtype), params["item_item"].T


def bytes_needed(cfg, n_users: int, n_items: int, nnz: int) -> int:
    """The fit's peak device bytes: X, G + λI, its Cholesky factor, P and B, float32."""
    return FLOAT_BYTES * (n_users * n_items + 4 * n_items * n_items)


MODEL = Fitted(
    name="ease",
    init=init,
    sweep=sweep,
    represent=represent,
    bytes_needed=bytes_needed,
    label=lambda cfg: "EASE",
    slug=lambda cfg: "ease",
    iterative=False,
    deterministic=True,
    settings=SETTINGS,
)
