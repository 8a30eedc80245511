"""Split directories (``user item item ...`` per line) read into CSR arrays.

A split directory holds one file per split, in the adjacency-list format of
LightGCN / AdvInfoNCE: each line is a user id followed by that user's item ids,
0-based integers separated by whitespace.

  train.txt                 required (else train_reconstructed.txt, as in kuairec2)
  valid.txt                 optional
  test_id.txt, test_ood.txt, test_ood_1.txt, test_ood_2.txt, ..., test.txt
  not_candidate.txt         optional; item ids never ranked (one per line)

Any of them may be gzip'd as ``NAME.txt.gz``. ``load_split_dir`` parses a
directory with NumPy in bulk; ``load_dataset`` also finds the embedded Coat split.
Malformed input raises ``advjax.errors.DataError`` with a one-line message that
names the file and line; so does an id at or above a declared ``n_users`` /
``n_items``.

Input that is legal but worth knowing about is loaded and reported through the
``warn`` callable (one line each; by default ``warning: LINE`` on stderr):

- repeated (user, item) pairs within a file: kept once; one line per file with the count.
- an empty valid or test file (no pairs; it may still list user ids): left out, so an
  empty test file has no evaluator and an empty valid file gives ``valid=None``
  (training then runs to max_epochs without early stopping).
- two test files holding the same set of pairs (the public Coat, Yahoo!R3 and KuaiRec
  splits ship identical test_id and test_ood): their metrics will be equal.
- users with valid or test pairs but no training items: they ARE evaluated (SPEC §4
  evaluates every user with a target) with an embedding that training never updates;
  one line per file with the count (KuaiRec has one such user).
- items of valid or test files that never occur in train: ranked like any other item,
  but their embeddings never see a positive; one line with the count.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.resources
import os
import pathlib
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from importlib.resources.abc import Traversable
from typing import NoReturn

import numpy as np

from advjax.errors import ConfigError, DataError

Warn = Callable[[str], None]


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


_EMBEDDED_PACKAGE = "advjax.data.datasets"

# Items are stored as int32, so no id may exceed this.
_MAX_ID = np.iinfo(np.int32).max

# The bytes that bytes.split() treats as whitespace; the bulk tokenizer must agree
# with it exactly so that token i of data.split() is the token starting at starts[i].
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True
# Bytes a well-formed file may contain. Anything else sends the file to the slow,
# line-by-line check that finds and reports the offending token.
_ALLOWED = _WHITESPACE.copy()
_ALLOWED[list(b"0123456789-")] = True
_ID_TOKEN = re.compile(rb"-?[0-9]+")
_UTF8_BOM = b"\xef\xbb\xbf"


def print_warning(line: str) -> None:
    """The default ``warn`` of the loaders: prints ``warning: LINE`` to stderr."""
    print(f"warning: {line}", file=sys.stderr, flush=True)


def _show(path: object) -> str:
    """A path as messages print it: as is, or escaped if it would break the line."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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
        user_limit = _MAX_ID + 1 if self.n_users is None else self.n_users
        item_limit = _MAX_ID + 1 if self.n_items is None else self.n_items
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
    if not 1 <= value <= _MAX_ID + 1:
        raise ConfigError(f"--{flag} must be in [1, {_MAX_ID + 1}], got {value}")
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


def _read_bytes(file: Traversable) -> bytes:
    """Returns the file's contents, gunzipped when its name ends in .gz."""
    try:
        data = file.read_bytes()
    except OSError as e:
        raise DataError(f"{_show(file)}: cannot read ({_one_line(e)})") from e
    if file.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{_show(file)}: unreadable gzip file ({_one_line(e)})") from e
    return data


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _normalise(data: bytes) -> bytes:
    """Strips a UTF-8 BOM and turns CRLF and lone-CR line ends into LF."""
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    if b"\r" in data:
        # A lone CR would otherwise merge two users' lines into one.
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def _tokenize(data: bytes, path: str) -> tuple[np.ndarray, np.ndarray]:
    """Parses every whitespace-separated id of a normalised file in bulk.

    Args:
      data: file contents after `_normalise`.
      path: the file, for messages.

    Returns:
      values: int64 [n_tokens], each token's integer value, in [0, 2**31 - 1].
      line_idx: int64 [n_tokens], the 0-based line of each token.

    Raises:
      DataError: on a token that is not a non-negative int32, naming its line.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if not _ALLOWED[buf].all():
        _raise_first_bad_token(data, path)
    space = _WHITESPACE[buf]
    token_start = ~space
    token_start[1:] &= space[:-1]
    starts = np.flatnonzero(token_start)
    # A token's line is the number of newlines before it.
    line_idx = np.searchsorted(np.flatnonzero(buf == ord("\n")), starts)
    tokens = data.split()
    try:
        values = np.array(tokens, dtype=np.int64)
    except (ValueError, OverflowError):
        _raise_first_bad_token(data, path)
    if values.size and (values.min() < 0 or values.max() > _MAX_ID):
        _raise_first_bad_token(data, path)
    return values, line_idx


def _raise_first_bad_token(data: bytes, path: str) -> NoReturn:
    """Slow path: walks the lines to name the first bad token; always raises."""
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        for token in line.split():
            text = token.decode("utf-8", errors="backslashreplace")
            if not _ID_TOKEN.fullmatch(token):
                raise DataError(f"{path}:{lineno}: non-integer token {text!r}")
            value = int(token)
            if value < 0:
                raise DataError(f"{path}:{lineno}: negative id {value}")
            if value > _MAX_ID:
                raise DataError(f"{path}:{lineno}: id {value} exceeds the int32 limit {_MAX_ID}")
    # The bulk parser and this scan accept the same tokens, so this is unreachable.
    raise DataError(f"{path}: malformed file")


def _parse_adjacency(file: Traversable, limits: _Limits) -> _Parsed:
    """Parses a ``user item item ...`` file into (user, item) pairs in file order."""
    path = _show(file)
    values, line_idx = _tokenize(_normalise(_read_bytes(file)), path)
    # The first token of each non-blank line is its user; the rest are that user's items.
    is_head = np.ones(values.shape, dtype=bool)
    is_head[1:] = line_idx[1:] != line_idx[:-1]
    limits.check(path, values, ~is_head, line_idx)
    heads = values[is_head]
    line_group = np.cumsum(is_head) - 1  # index into heads of each token's line
    return _Parsed(
        path=path,
        users=heads[line_group[~is_head]],
        items=values[~is_head],
        max_user=int(heads.max()) if heads.size else -1,
    )


def _parse_item_list(file: Traversable, limits: _Limits) -> np.ndarray:
    """Parses a file of item ids (one per line) into int32 [k], sorted and unique."""
    path = _show(file)
    values, line_idx = _tokenize(_normalise(_read_bytes(file)), path)
    limits.check(path, values, np.ones(values.shape, dtype=bool), line_idx)
    return _sorted_unique(values).astype(np.int32)


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


def _find(root: Traversable, stem: str) -> Traversable | None:
    """Returns root/stem.txt or root/stem.txt.gz, whichever exists, else None."""
    plain, packed = root / f"{stem}.txt", root / f"{stem}.txt.gz"
    if plain.is_file() and packed.is_file():
        # Reading one silently could hide a stale copy; make the user choose.
        raise DataError(f"{_show(root)}: both {stem}.txt and {stem}.txt.gz exist; keep one")
    if plain.is_file():
        return plain
    return packed if packed.is_file() else None


def _test_stems(root: Traversable) -> Iterator[str]:
    """Yields the test files' stems in the order test_id, test_ood, test_ood_1.., test."""
    numbered = set()
    for entry in root.iterdir():
        match = re.fullmatch(r"test_ood_([0-9]+)\.txt(\.gz)?", entry.name)
        if match:
            numbered.add(int(match.group(1)))
    yield "test_id"
    yield "test_ood"
    yield from (f"test_ood_{k}" for k in sorted(numbered))
    yield "test"


def _load(
    root: Traversable,
    name: str,
    *,
    n_users: int | None,
    n_items: int | None,
    warn: Warn | None,
) -> SplitData:
    """Loads a split directory given as a Path or a package resource."""
    limits = _Limits(_check_size("n_users", n_users), _check_size("n_items", n_items))
    warn = print_warning if warn is None else warn
    if not root.is_dir():
        if root.is_file():
            raise DataError(f"{_show(root)}: is a file, not a split directory")
        raise DataError(f"{_show(root)}: no such split directory")
    train_file = _find(root, "train") or _find(root, "train_reconstructed")
    if train_file is None:
        raise DataError(f"{_show(root)}: no train.txt (or train.txt.gz)")
    valid_file = _find(root, "valid")
    test_files = {stem: f for stem in _test_stems(root) if (f := _find(root, stem))}
    not_candidate_file = _find(root, "not_candidate")

    train = _parse_adjacency(train_file, limits)
    if not train.items.size:
        raise DataError(f"{train.path}: training set is empty")
    valid = _parse_adjacency(valid_file, limits) if valid_file else None
    tests = {stem: _parse_adjacency(f, limits) for stem, f in test_files.items()}
    not_candidate = _parse_item_list(not_candidate_file, limits) if not_candidate_file else None

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
        if n_duplicates:
            warn(f"{p.path}: {_plural(n_duplicates, 'duplicate interaction')} dropped")
        return interactions

    train_csr = csr(train)
    valid_csr = None
    if valid is not None:
        if valid.items.size:
            valid_csr = csr(valid)
        else:
            warn(
                f"{valid.path}: no validation pairs; training runs to max_epochs "
                "without early stopping"
            )
    test_csrs = {}
    for stem, p in tests.items():
        if p.items.size:
            test_csrs[stem] = csr(p)
        else:
            warn(f"{p.path}: no test pairs; this evaluator is skipped")

    _warn_identical_tests(test_csrs, warn)
    _warn_untrained(_show(root), train_csr, [valid_csr, *test_csrs.values()], n_items, warn)
    return SplitData(
        name=name,
        n_users=n_users,
        n_items=n_items,
        train=train_csr,
        valid=valid_csr,
        tests=test_csrs,
        not_candidate=not_candidate,
    )


def _same_pairs(a: Interactions, b: Interactions) -> bool:
    return np.array_equal(a.indptr, b.indptr) and np.array_equal(a.items, b.items)


def _warn_identical_tests(tests: dict[str, Interactions], warn: Warn) -> None:
    """One line per group of test sets that hold the same pairs."""
    groups: list[list[str]] = []
    for stem, pairs in tests.items():
        group = next((g for g in groups if _same_pairs(tests[g[0]], pairs)), None)
        if group is None:
            groups.append([stem])
        else:
            group.append(stem)
    for group in groups:
        if len(group) < 2:
            continue
        names = ", ".join(group[:-1]) + f" and {group[-1]}"
        files = ", ".join(pathlib.PurePath(tests[stem].path).name for stem in group)
        warn(
            f"{names} hold the same {_plural(tests[group[0]].nnz, 'pair')} ({files}); "
            "their metrics will be equal"
        )


def _warn_untrained(
    root: str,
    train: Interactions,
    evaluated: list[Interactions | None],
    n_items: int,
    warn: Warn,
) -> None:
    """Reports evaluated users and items that have no training pairs."""
    untrained_user = train.degrees() == 0
    seen_items = np.zeros(n_items, dtype=bool)
    for pairs in evaluated:
        if pairs is None:
            continue
        count = int(np.count_nonzero(untrained_user & (pairs.degrees() > 0)))
        if count == 1:
            warn(
                f"{pairs.path}: 1 user has pairs here but no training items; "
                "it is evaluated with an untrained embedding"
            )
        elif count:
            warn(
                f"{pairs.path}: {count} users have pairs here but no training items; "
                "they are evaluated with untrained embeddings"
            )
        seen_items[pairs.items] = True
    seen_items[train.items] = False
    count = int(np.count_nonzero(seen_items))
    if count == 1:
        warn(
            f"{root}: 1 item occurs in valid/test files but not in train; "
            "it is ranked, but its embedding never trains on a positive"
        )
    elif count:
        warn(
            f"{root}: {count} items occur in valid/test files but not in train; "
            "they are ranked, but their embeddings never train on a positive"
        )


def load_split_dir(
    path: str | os.PathLike,
    name: str | None = None,
    *,
    n_users: int | None = None,
    n_items: int | None = None,
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
      warn: receives each warning line (see the module docstring); None prints
        ``warning: LINE`` to stderr (:func:`print_warning`).

    Returns:
      The SplitData; every Interactions has indptr of shape [n_users + 1].

    Raises:
      DataError: the directory or its train file is missing, a file is not valid
        gzip, a token is not an integer in [0, 2**31 - 1], an id is at or above a
        declared size, or train has no pairs.
      ConfigError: a declared size is not an integer in [1, 2**31].
    """
    root = pathlib.Path(path)
    return _load(
        root,
        name if name is not None else root.resolve().name,
        n_users=n_users,
        n_items=n_items,
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
    warn: Warn | None = None,
) -> SplitData:
    """Loads a split directory, or a dataset embedded in the package.

    Args:
      dataset: name of an embedded dataset (only "coat"); ignored when data_dir is set.
      data_dir: a split directory to load instead, named after its base name.
      n_users, n_items, warn: as in :func:`load_split_dir`.

    Returns:
      The SplitData.

    Raises:
      DataError: neither argument is given, the name is unknown, or the files are bad.
      ConfigError: a declared size is not an integer in [1, 2**31].
    """
    sizes = dict(n_users=n_users, n_items=n_items, warn=warn)
    if data_dir is not None:
        return load_split_dir(data_dir, **sizes)
    if dataset is None:
        raise DataError("no dataset: give an embedded dataset name or data_dir")
    available = _embedded_datasets()
    if dataset not in available:
        raise DataError(
            f"unknown embedded dataset {dataset!r}; available: {', '.join(available)} "
            "(or pass data_dir)"
        )
    # files() gives a Traversable, so this also works when installed as a zip.
    return _load(importlib.resources.files(_EMBEDDED_PACKAGE) / dataset, dataset, **sizes)
