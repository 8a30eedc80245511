"""Pure steps from a parsed raw table to a split: ids, filters, k-core, split, compaction.

Every function takes and returns NumPy arrays; nothing here reads or writes files.
A split is a role per pair (`TRAIN`, `VALID`, `TEST`) over one set of pairs.
"""

from __future__ import annotations

import re

import numpy as np

from advjax.errors import ConfigError

TRAIN, VALID, TEST = 0, 1, 2
ROLE_NAMES = ("train", "valid", "test")
_INTEGER = re.compile(r"-?[0-9]+")


def id_order_key(raw_id: str) -> tuple:
    """Sort key of raw ids: integers by value (then text, so "07" != "7"), before
    any non-integer id, which sorts by text."""
    if _INTEGER.fullmatch(raw_id):
        return (0, int(raw_id), raw_id)
    return (1, 0, raw_id)


def encode_ids(raw: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Raw string ids -> int64 codes, in ascending raw order (`id_order_key`).

    Returns:
      codes: int64 [n]; vocab[codes[k]] == raw[k].
      vocab: the distinct raw ids, sorted.
    """
    uniq, inverse = np.unique(raw, return_inverse=True)
    order = sorted(range(len(uniq)), key=lambda k: id_order_key(str(uniq[k])))
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.array(order, dtype=np.int64)] = np.arange(len(uniq))
    return rank[inverse.reshape(-1)], [str(uniq[k]) for k in order]


def first_of_each_pair(
    users: np.ndarray, items: np.ndarray, times: np.ndarray | None = None
) -> np.ndarray:
    """Indices of the rows to keep when each (user, item) pair is kept once.

    The kept row of a repeated pair is its earliest by time (ties: the first in file
    order), or the first in file order without times.

    Returns:
      int64 [n_unique], ascending (file order preserved).
    """
    n_items = int(items.max()) + 1 if items.size else 1
    keys = users * n_items + items
    order = np.lexsort((keys,) if times is None else (times, keys))  # stable: file order
    sorted_keys = keys[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.sort(order[first])


def k_core(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """bool [n]: the pairs of the k-core (every user and item with >= k pairs),
    found by removing lighter users and items until none is left."""
    keep = np.ones(len(users), dtype=bool)
    if k <= 1:
        return keep
    while True:
        user_deg = np.bincount(users[keep], minlength=int(users.max()) + 1)
        item_deg = np.bincount(items[keep], minlength=int(items.max()) + 1)
        still = keep & (user_deg[users] >= k) & (item_deg[items] >= k)
        if (still == keep).all():
            return keep
        keep = still


def _share_count(share: float, n: np.ndarray | int) -> np.ndarray:
    """round(share * n), halves up (NumPy's round would send 0.5 to 0)."""
    return np.floor(np.asarray(share) * n + 0.5).astype(np.int64)


def check_shares(valid: float, test: float) -> None:
    """Raises ConfigError unless 0 <= valid, test and valid + test < 1."""
    if not (0 <= valid < 1 and 0 <= test < 1 and valid + test < 1):
        raise ConfigError(
            f"--valid={valid} and --test={test}: each must be in [0, 1) and their sum < 1"
        )


def split_random(
    users: np.ndarray, valid: float, test: float, rng: np.random.Generator
) -> np.ndarray:
    """Per-user random split: each user's pairs are shuffled, and round(test * n_u)
    go to test, round(valid * n_u) to valid, the rest to train; at least one stays in
    train (test is cut first, then valid).

    Args:
      users: int64 [n]; the user of each pair.
      valid, test: the shares.
      rng: the draw.

    Returns:
      int8 [n] roles.
    """
    check_shares(valid, test)
    order = rng.permutation(len(users))
    order = order[np.argsort(users[order], kind="stable")]  # by user, random within
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    n_test = np.minimum(_share_count(test, sizes), sizes - 1)
    n_valid = np.minimum(_share_count(valid, sizes), sizes - 1 - n_test)
    rank = np.arange(len(order)) - np.repeat(starts, sizes)  # position within its user
    roles = np.full(len(users), TRAIN, dtype=np.int8)
    roles[order[rank < np.repeat(n_test + n_valid, sizes)]] = VALID
    roles[order[rank < np.repeat(n_test, sizes)]] = TEST
    return roles


def split_temporal(times: np.ndarray, valid: float, test: float) -> np.ndarray:
    """Global temporal split: pairs sorted by time (ties: file order); the last
    round(test * n) go to test, the round(valid * n) before them to valid.

    Returns:
      int8 [n] roles.
    """
    check_shares(valid, test)
    n = len(times)
    order = np.argsort(times, kind="stable")
    n_test, n_valid = int(_share_count(test, n)), int(_share_count(valid, n))
    roles = np.full(n, TRAIN, dtype=np.int8)
    roles[order[n - n_test - n_valid : n - n_test]] = VALID
    roles[order[n - n_test :]] = TEST
    return roles


def reserve_for_training(
    users: np.ndarray, items: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """bool [n]: one random pair of every user and one of every item, kept for training
    so that every user and item of the pool stays known to it."""
    order = rng.permutation(len(users))
    reserved = np.zeros(len(users), dtype=bool)
    for ids in (users, items):
        _, first = np.unique(ids[order], return_index=True)
        reserved[order[first]] = True
    return reserved


def known_to_training(users: np.ndarray, items: np.ndarray, roles: np.ndarray) -> np.ndarray:
    """bool [n]: pairs whose user and item both have a training pair (train pairs
    are always known)."""
    train = roles == TRAIN
    user_known = np.zeros(int(users.max()) + 1, dtype=bool)
    item_known = np.zeros(int(items.max()) + 1, dtype=bool)
    user_known[users[train]] = True
    item_known[items[train]] = True
    return user_known[users] & item_known[items]


def compact(codes: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumbers the codes that `keep` selects 0..m-1, in ascending code order.

    Args:
      codes: int64 [n].
      keep: bool [n]; which pairs' codes survive (the others get -1).

    Returns:
      new: int64 [n]; the new id of each code, -1 where not kept.
      kept_codes: int64 [m]; the old code of each new id.
    """
    kept_codes = np.unique(codes[keep])
    table = np.full(int(codes.max()) + 1 if codes.size else 0, -1, dtype=np.int64)
    table[kept_codes] = np.arange(len(kept_codes))
    new = np.where(keep, table[codes], -1)
    return new, kept_codes


def adjacency_text(users: np.ndarray, items: np.ndarray) -> str:
    """Pairs as ``user item item ...`` lines (users ascending, items ascending within
    a user, one line per user that has pairs): the format advjax's loader reads."""
    if not len(users):
        return ""
    order = np.lexsort((items, users))
    users, items = users[order], items[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    lines = [
        " ".join(map(str, [users[s], *items[s:e].tolist()]))
        for s, e in zip(starts, ends, strict=True)
    ]
    return "\n".join(lines) + "\n"
