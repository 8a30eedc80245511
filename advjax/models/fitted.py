"""What a fitted model declares: a model trained by its own solver, not by SGD steps of a
loss (EASE's closed form, iALS's alternating least squares).

`--backbone` names one like a backbone (advjax/models/registry.py's `FITTED`), and the
fit loop (advjax/train/fit.py) runs it: `init` once, then `sweep` after `sweep`, each a
jitted pure function of the parameters and the training matrix (`FitData`), with a
validation every --eval_every sweeps, early stopping on valid Recall@20 after
--patience validations without a better one, and at most --max_epochs sweeps. A
one-shot solver (`iterative=False`, EASE) sweeps once and reads none of those three.
The trainer's other notions do not apply: there is no loss (--loss and its settings
are not read), no negative sampling, no batches, no adversary and no augmentation.
The trained model is a `TrainedModel` (`represent`, scored by dot product), so the
evaluator, results.json, --seeds, search and reproduce treat it as any other run's.

A fitted model's spec declares:

  settings       its own flags (TrainConfig fields with help text and checks);
  check          what is wrong with a whole configuration of it;
  init           (cfg, key, FitData) -> its parameters before the first sweep (a dict
                 of arrays; {} for a one-shot solver);
  sweep          (cfg, params, FitData) -> (params, stats): one solve (EASE) or one
                 alternation (iALS); stats {"loss": the objective after it, ...};
  represent      (cfg, params, FitData) -> (user [U, d], item [I, d]) whose dot
                 products are the scores;
  bytes_needed   (cfg, n_users, n_items, nnz) -> the device bytes a fit holds at its
                 peak (printed before it starts; a fit that cannot fit is refused in
                 one line);
  iterative      whether it sweeps more than once;
  deterministic  whether the seed is read (EASE: no; its seeds are the same run);
  label, slug    its name in progress lines and default workdirs.

Everything it holds that a sweep calls is pure and jit-able.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advjax.data.interactions import Interactions
from advjax.settings import Setting, nothing_wrong


class PaddedRows(NamedTuple):
    """The rows whose degree lies in (the previous size, K], each row's columns padded to K.

    Attributes:
      rows: int32 [n] the rows, ascending.
      cols: int32 [n, K] each row's columns, ascending, then the padding index (the other
        side's size: one past its last row, so a gather from the other side's table with a
        zero row appended reads zeros there).
    """

    rows: jax.Array
    cols: jax.Array


def padded_sizes(max_degree: int) -> list[int]:
    """The widths K of the padded blocks: round(2 ** (k / 2)) up to the first >= max_degree
    (1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, ...), so a row is padded by under 42 %."""
    sizes, k = [], 0
    while not sizes or sizes[-1] < max_degree:
        size = round(2 ** (k / 2))
        if not sizes or size > sizes[-1]:
            sizes.append(size)
        k += 1
    return sizes


def padded_rows(ptr: np.ndarray, cols: np.ndarray, pad: int) -> tuple[PaddedRows, ...]:
    """A CSR matrix's non-empty rows as blocks of rows of like degree (host NumPy).

    Args:
      ptr: int [R + 1] the row offsets.
      cols: int [nnz] the columns, ascending within each row.
      pad: the padding index (the number of columns).

    Returns:
      One PaddedRows per width of padded_sizes that holds a row; rows without pairs are in
      none. Their padded entries number under 1.42 nnz.
    """
    degrees = np.diff(ptr)
    blocks, previous = [], 0
    for size in padded_sizes(int(degrees.max(initial=0))):
        rows = np.flatnonzero((degrees > previous) & (degrees <= size))
        previous = size
        if not len(rows):
            continue
        offsets = ptr[rows][:, None] + np.arange(size)
        inside = np.arange(size) < degrees[rows][:, None]
        padded = np.where(inside, cols[np.where(inside, offsets, 0)], pad)
        blocks.append(PaddedRows(jnp.asarray(rows, jnp.int32), jnp.asarray(padded, jnp.int32)))
    return tuple(blocks)


class FitData(struct.PyTreeNode):
    """The binary training matrix X [U, I] as the solvers read it, both ways round.

    Attributes:
      entry_users: int32 [nnz] each observed pair's user, pairs sorted by (user, item).
      entry_items: int32 [nnz] its item.
      user_ptr: int32 [U + 1] CSR offsets of the pairs by user.
      by_item: int32 [nnz] the pairs' order sorted by (item, user): entry_users[by_item]
        are each item's users, item by item.
      item_ptr: int32 [I + 1] offsets of those runs.
      user_blocks: the users' items as PaddedRows blocks (padding index I).
      item_blocks: the items' users as PaddedRows blocks (padding index U).
      n_users, n_items: static sizes.
    """

    entry_users: jax.Array
    entry_items: jax.Array
    user_ptr: jax.Array
    by_item: jax.Array
    item_ptr: jax.Array
    user_blocks: tuple[PaddedRows, ...]
    item_blocks: tuple[PaddedRows, ...]
    n_users: int = struct.field(pytree_node=False)
    n_items: int = struct.field(pytree_node=False)

    @property
    def nnz(self) -> int:
        return int(self.entry_users.shape[0])

    def user_degrees(self) -> jax.Array:
        """int32 [U]: |I_u|."""
        return jnp.diff(self.user_ptr)

    def item_degrees(self) -> jax.Array:
        """int32 [I]: |U_i|."""
        return jnp.diff(self.item_ptr)

    def dense(self, dtype=jnp.float32) -> jax.Array:
        """[U, I] the 0/1 matrix X."""
        zeros = jnp.zeros((self.n_users, self.n_items), dtype)
        return zeros.at[self.entry_users, self.entry_items].set(1)


def fit_data(train: Interactions, n_items: int) -> FitData:
    """FitData of a split's training pairs (NumPy CSR -> device arrays, once)."""
    users = train.users().astype(np.int32)
    items = train.items.astype(np.int32)
    by_item = np.lexsort((users, items)).astype(np.int32)
    item_ptr = np.zeros(n_items + 1, np.int64)
    np.cumsum(train.item_degrees(n_items), out=item_ptr[1:])
    return FitData(
        entry_users=jnp.asarray(users),
        entry_items=jnp.asarray(items),
        user_ptr=jnp.asarray(train.indptr.astype(np.int32)),
        by_item=jnp.asarray(by_item),
        item_ptr=jnp.asarray(item_ptr.astype(np.int32)),
        user_blocks=padded_rows(train.indptr, items, n_items),
        item_blocks=padded_rows(item_ptr, users[by_item], train.n_users),
        n_users=train.n_users,
        n_items=n_items,
    )


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A fitted model as the fit loop sees it (see the module docstring)."""

    name: str
    init: Callable[[Any, jax.Array, FitData], dict]
    sweep: Callable[[Any, dict, FitData], tuple[dict, dict]]
    represent: Callable[[Any, dict, FitData], tuple[jax.Array, jax.Array]]
    bytes_needed: Callable[[Any, int, int, int], int]
    label: Callable[[Any], str]
    slug: Callable[[Any], str]
    iterative: bool
    deterministic: bool
    settings: tuple[Setting, ...] = ()
    check: Callable[[Any], str | None] = nothing_wrong
    scoring: str = "dot"
