"""The loaded form of a split: one CSR matrix per file (`Interactions`) and the
directory's files together (`SplitData`). A low module: the loader (splits.py), its
warnings (quality.py) and everything downstream read these types.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Interactions:
    """The user-item pairs of one split file, in CSR form by user.

    Attributes:
      indptr: int64 [n_users + 1]; user u's items are items[indptr[u]:indptr[u+1]].
      items: int32 [nnz]; ascending and unique within each user.
      path: the file they came from (for messages).
    """

    indptr: np.ndarray
    items: np.ndarray
    path: str

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def degrees(self) -> np.ndarray:
        """int64 [n_users]: number of items per user."""
        return np.diff(self.indptr)

    def item_degrees(self, n_items: int) -> np.ndarray:
        """int64 [n_items]: number of users per item (the catalogue's size `n_items`)."""
        return np.bincount(self.items, minlength=n_items)

    def users(self) -> np.ndarray:
        """int32 [nnz]: the user of each pair (row index expanded)."""
        return np.repeat(np.arange(self.n_users, dtype=np.int32), self.degrees())


@dataclasses.dataclass(frozen=True)
class SplitData:
    """A whole split directory. All Interactions share n_users (same indptr length).

    Attributes:
      name: dataset name ("coat", or the directory's base name).
      n_users, n_items: the declared sizes, else max id + 1 over all files of the
        directory (empty ones included).
      train: training pairs.
      valid: validation pairs, or None when the directory has no valid file or it
        holds no pairs.
      tests: test name ("test_id", "test_ood", "test_ood_1", ...) -> pairs, in file
        order; test files without pairs are left out.
      not_candidate: int32 [k] item ids never ranked for any user (KuaiRec), or None.
    """

    name: str
    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions | None
    tests: dict[str, Interactions]
    not_candidate: np.ndarray | None
