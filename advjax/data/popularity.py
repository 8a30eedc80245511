"""Popularity levels of users and items: the inputs of BC loss's popularity branch."""

from __future__ import annotations

import numpy as np

from advjax.data.splits import Interactions


def popularity_levels(train: Interactions, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense ranks of the training degrees: equal degree, equal level.

    The popularity branch of BC loss sees a user or an item only through its number
    of training interactions, one embedding per distinct count (level 0 = the lowest
    count present, e.g. 0 for items never trained on).

    Args:
      train: training pairs over train.n_users users.
      n_items: number of items.

    Returns:
      (user_level int32 [U], item_level int32 [I]); the level counts are
      ``max + 1`` of each.
    """
    user_degree = train.degrees()
    item_degree = np.bincount(train.items, minlength=n_items)
    return _dense_rank(user_degree), _dense_rank(item_degree)


def _dense_rank(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1].reshape(-1).astype(np.int32)
