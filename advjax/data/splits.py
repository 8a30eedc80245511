"""Split directories (``user item item ...`` per line) read into CSR arrays.

A split directory holds one file per split, in the adjacency-list format of
LightGCN / AdvInfoNCE: each line is a user id followed by that user's item ids,
0-based integers separated by whitespace. Which file plays which role (train, valid,
test_*, not_candidate) is `advjax.data.discovery`'s business; reading a file into
integer tokens is `advjax.data.tokenize`'s; the warnings about legal but odd input are
`advjax.data.quality`'s. This module turns the tokens into (user, item) pairs, checks
them against declared sizes, builds one CSR matrix per file over a shared id space,
and holds the public API: ``load_split_dir`` parses a directory with NumPy in bulk;
``load_dataset`` also finds the embedded Coat split.

Malformed input raises ``advjax.errors.DataError`` with a one-line message that
names the file and line; so does an id at or above a declared ``n_users`` /
``n_items``. Input that is legal but worth knowing about is loaded and reported
through the ``warn`` callable (one line each; by default ``warning: LINE`` on
stderr; the cases are listed in `advjax.data.quality`).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import pathlib
from importlib.resources.abc import Traversable

import numpy as np

from advjax.data import discovery, quality
from advjax.data.interactions import Interactions, SplitData
from advjax.data.quality import Warn, print_warning
from advjax.data.tokenize import MAX_ID, read_tokens, show_path
from advjax.errors import ConfigError, DataError

__all__ = [
    "Interactions",
    "SplitData",
    "Warn",
    "load_dataset",
    "load_split_dir",
    "print_warning",
]


_EMBEDDED_PACKAGE = "advjax.data.datasets"


@dataclasses.dataclass(frozen=True)
class _Limits:
    """Declared sizes (None: taken from the data); ids must lie below them."""

    n_users: int | None = None
    n_items: int | None = None

    def check(self, path: str, values: np.ndarray, is_item: np.ndarray, line_idx: np.ndarray):
        """Raises DataError naming the first id (in file order) at or above its limit.

        Args:
          path: the file, for messages.
          values: int64 [n_tokens] ids.
          is_item: bool [n_tokens]; True for item ids, False for user ids.
          line_idx: int64 [n_tokens] 0-based line of each token.
        """
        if self.n_users is None and self.n_items is None:
            return
        user_limit = MAX_ID + 1 if self.n_users is None else self.n_users
        item_limit = MAX_ID + 1 if self.n_items is None else self.n_items
        bad = np.flatnonzero(values >= np.where(is_item, item_limit, user_limit))
        if bad.size:
            i = bad[0]
            kind, limit = ("item", item_limit) if is_item[i] else ("user", user_limit)
            raise DataError(
                f"{path}:{line_idx[i] + 1}: {kind} id {values[i]} >= --n_{kind}s={limit}"
            )


def _check_size(flag: str, value: int | None) -> int | None:
    """Validates a declared n_users / n_items."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"--{flag} must be an integer, got {value!r}")
    if not 1 <= value <= MAX_ID + 1:
        raise ConfigError(f"--{flag} must be in [1, {MAX_ID + 1}], got {value}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class _Parsed:
    """One split file as parsed, before the directory-wide sizes are known.

    Attributes:
      path: the file, for messages.
      users: int64 [n_pairs]; the user of each pair, in file order.
      items: int64 [n_pairs]; the item of each pair, in file order.
      max_user: largest user id on any line (item-less lines included), or -1.
    """

    path: str
    users: np.ndarray
    items: np.ndarray
    max_user: int

    @property
    def max_item(self) -> int:
        return int(self.items.max()) if self.items.size else -1


def _parse_adjacency(file: Traversable, limits: _Limits) -> _Parsed:
    """Parses a ``user item item ...`` file into (user, item) pairs in file order."""
    tokens = read_tokens(file)
    values, line_idx = tokens.values, tokens.line_idx
    # The first token of each non-blank line is its user; the rest are that user's items.
    is_head = np.ones(values.shape, dtype=bool)
    is_head[1:] = line_idx[1:] != line_idx[:-1]
    limits.check(tokens.path, values, ~is_head, line_idx)
    heads = values[is_head]
    line_group = np.cumsum(is_head) - 1  # index into heads of each token's line
    return _Parsed(
        path=tokens.path,
        users=heads[line_group[~is_head]],
        items=values[~is_head],
        max_user=int(heads.max()) if heads.size else -1,
    )


def _parse_item_list(file: Traversable, limits: _Limits) -> np.ndarray:
    """Parses a file of item ids (one per line) into int32 [k], sorted and unique."""
    tokens = read_tokens(file)
    limits.check(
        tokens.path, tokens.values, np.ones(tokens.values.shape, dtype=bool), tokens.line_idx
    )
    return _sorted_unique(tokens.values).astype(np.int32)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted unique values of int [n] (np.unique hashes first, which is slower here)."""
    values = np.sort(values)
    keep = np.ones(values.shape, dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def _to_csr(parsed: _Parsed, n_users: int, n_items: int) -> tuple[Interactions, int]:
    """Groups pairs by user, sorts items and drops repeated pairs.

    Args:
      parsed: pairs of one file; all ids below n_users / n_items.
      n_users: number of rows of the CSR matrix.
      n_items: number of columns.

    Returns:
      The Interactions, and the number of repeated (user, item) pairs dropped.
    """
    # One int64 key per pair sorts by user, then item; both ids are < 2**31.
    keys = _sorted_unique(parsed.users * n_items + parsed.items)
    users, items = np.divmod(keys, n_items)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    csr = Interactions(indptr=indptr, items=items.astype(np.int32), path=parsed.path)
    return csr, len(parsed.users) - len(keys)


def _load(
    root: Traversable,
    name: str,
    *,
    n_users: int | None,
    n_items: int | None,
    train_file: str | None,
    warn: Warn | None,
) -> SplitData:
    """Loads a split directory given as a Path or a package resource."""
    limits = _Limits(_check_size("n_users", n_users), _check_size("n_items", n_items))
    warn = print_warning if warn is None else warn
    files = discovery.discover(root, train_file=train_file)

    train = _parse_adjacency(files.train, limits)
    if not train.items.size:
        raise DataError(f"{train.path}: training set is empty")
    valid = _parse_adjacency(files.valid, limits) if files.valid else None
    tests = {stem: _parse_adjacency(f, limits) for stem, f in files.tests.items()}
    not_candidate = _parse_item_list(files.not_candidate, limits) if files.not_candidate else None

    # Sizes count every file, empty ones included, so that ids never shift.
    parsed = [train, *([valid] if valid else []), *tests.values()]
    n_users, n_items = limits.n_users, limits.n_items
    if n_users is None:
        n_users = max(p.max_user for p in parsed) + 1
    if n_items is None:
        n_items = max(p.max_item for p in parsed) + 1
        if not_candidate is not None and not_candidate.size:
            n_items = max(n_items, int(not_candidate[-1]) + 1)

    def csr(p: _Parsed) -> Interactions:
        interactions, n_duplicates = _to_csr(p, n_users, n_items)
        quality.warn_duplicates(p.path, n_duplicates, warn)
        return interactions

    train_csr = csr(train)
    valid_csr = None
    if valid is not None:
        if valid.items.size:
            valid_csr = csr(valid)
        else:
            quality.warn_empty_valid(valid.path, warn)
    test_csrs = {}
    for stem, p in tests.items():
        if p.items.size:
            test_csrs[stem] = csr(p)
        else:
            quality.warn_empty_test(p.path, warn)

    quality.warn_identical_tests(test_csrs, warn)
    quality.warn_untrained(
        show_path(root), train_csr, [valid_csr, *test_csrs.values()], n_items, warn
    )
    return SplitData(
        name=name,
        n_users=n_users,
        n_items=n_items,
        train=train_csr,
        valid=valid_csr,
        tests=test_csrs,
        not_candidate=not_candidate,
    )


def load_split_dir(
    path: str | os.PathLike,
    name: str | None = None,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    train_file: str | None = None,
    warn: Warn | None = None,
) -> SplitData:
    """Reads a split directory into CSR interaction matrices.

    Users may span several lines (merged); a line holding only a user id adds a
    user with no items; repeated pairs are kept once; blank lines, CRLF, tabs
    and trailing spaces are tolerated. Without declared sizes, n_users and n_items
    count every file, not_candidate.txt included, so all splits share one id space.

    Args:
      path: the directory.
      name: the dataset's name; defaults to the directory's base name.
      n_users: declared number of users (the ``--n_users`` flag), or None to take
        max user id + 1. Every user id must lie below it; a larger size than the
        data needs is allowed (users without pairs).
      n_items: declared number of items (``--n_items``), likewise.
      train_file: the train file's stem (``--train_file``): STEM.txt or STEM.txt.gz
        is read as train. None takes the train file that the directory's split.json
        declares, else train.txt (see `advjax.data.discovery`).
      warn: receives each warning line (see `advjax.data.quality`); None prints
        ``warning: LINE`` to stderr (:func:`print_warning`).

    Returns:
      The SplitData; every Interactions has indptr of shape [n_users + 1].

    Raises:
      DataError: the directory or its train file is missing, its split.json is
        malformed, a file is not valid gzip, a token is not an integer in
        [0, 2**31 - 1], an id is at or above a declared size, or train has no pairs.
      ConfigError: a declared size is not an integer in [1, 2**31], or train_file
        is not a bare file stem.
    """
    root = pathlib.Path(path)
    return _load(
        root,
        name if name is not None else root.resolve().name,
        n_users=n_users,
        n_items=n_items,
        train_file=train_file,
        warn=warn,
    )


def _embedded_datasets() -> list[str]:
    """Names of the datasets shipped inside the package, sorted."""
    package = importlib.resources.files(_EMBEDDED_PACKAGE)
    return sorted(
        entry.name
        for entry in package.iterdir()
        if entry.is_dir() and not entry.name.startswith(("_", "."))
    )


def load_dataset(
    dataset: str | None = "coat",
    data_dir: str | os.PathLike | None = None,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    train_file: str | None = None,
    warn: Warn | None = None,
) -> SplitData:
    """Loads a split directory, or a dataset embedded in the package.

    Args:
      dataset: name of an embedded dataset ("coat", or "coat_rebuilt" from
        data_prep.coat); ignored when data_dir is set.
      data_dir: a split directory to load instead, named after its base name.
      n_users, n_items, train_file, warn: as in :func:`load_split_dir`.

    Returns:
      The SplitData.

    Raises:
      DataError: neither argument is given, the name is unknown, or the files are bad.
      ConfigError: a declared size is not an integer in [1, 2**31], or train_file
        is not a bare file stem.
    """
    options = dict(n_users=n_users, n_items=n_items, train_file=train_file, warn=warn)
    if data_dir is not None:
        return load_split_dir(data_dir, **options)
    if dataset is None:
        raise DataError("no dataset: give an embedded dataset name or data_dir")
    available = _embedded_datasets()
    if dataset not in available:
        raise DataError(
            f"unknown embedded dataset {dataset!r}; available: {', '.join(available)} "
            "(or pass data_dir)"
        )
    # files() gives a Traversable, so this also works when installed as a zip.
    return _load(importlib.resources.files(_EMBEDDED_PACKAGE) / dataset, dataset, **options)
