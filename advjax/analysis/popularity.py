"""Items grouped by training popularity (Fig. 2a/4a of the paper)."""

from __future__ import annotations

import numpy as np


def popularity_groups(degrees: np.ndarray, n_groups: int) -> np.ndarray:
    """Group of every item, 0 the least popular: items ranked by training degree
    (ties by item id) and cut into `n_groups` groups of equal size (the first
    len % n_groups groups one item larger).

    Args:
      degrees: int [I] training degree of each item.
      n_groups: number of groups, 1 <= n_groups <= I.

    Returns:
      int64 [I] the group of each item.
    """
    degrees = np.asarray(degrees)
    if not 1 <= n_groups <= degrees.shape[0]:
        raise ValueError(f"n_groups must be in [1, {degrees.shape[0]}]; got {n_groups}")
    order = np.lexsort((np.arange(degrees.shape[0]), degrees))
    groups = np.empty(degrees.shape[0], np.int64)
    for group, members in enumerate(np.array_split(order, n_groups)):
        groups[members] = group
    return groups


def mean_by_group(
    values: np.ndarray, items: np.ndarray, groups: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of `values` per group of their items.

    Args:
      values: [S, N] a value per sampled negative (e.g. its p(j | u, i)).
      items: int [S, N] the negatives' item ids.
      groups: int [I] the group of every item (popularity_groups).
      n_groups: number of groups.

    Returns:
      (mean float64 [n_groups], count int64 [n_groups]); the mean is NaN for a group
      without any sampled negative.
    """
    values, items = np.asarray(values, np.float64), np.asarray(items)
    if values.shape != items.shape:
        raise ValueError(f"values {values.shape} and items {items.shape} differ in shape")
    group_of = np.asarray(groups)[items].ravel()
    count = np.bincount(group_of, minlength=n_groups)
    total = np.bincount(group_of, weights=values.ravel(), minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean, count.astype(np.int64)
