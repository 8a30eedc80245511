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
names the file and line.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.resources
import os
import pathlib
import re
import zlib
from collections.abc import Iterator
from importlib.resources.abc import Traversable
from typing import NoReturn

import numpy as np

from advjax.errors import DataError


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
      n_users, n_items: max id + 1 over all files of the directory.
      train: training pairs.
      valid: validation pairs, or None when the directory has no valid file.
      tests: test name ("test_id", "test_ood", "test_ood_1", ...) -> pairs, in file order.
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
        raise DataError(f"{file}: cannot read ({_one_line(e)})") from e
    if file.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{file}: unreadable gzip file ({_one_line(e)})") from e
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


def _parse_adjacency(file: Traversable) -> _Parsed:
    """Parses a ``user item item ...`` file into (user, item) pairs in file order."""
    path = str(file)
    values, line_idx = _tokenize(_normalise(_read_bytes(file)), path)
    # The first token of each non-blank line is its user; the rest are that user's items.
    is_head = np.ones(values.shape, dtype=bool)
    is_head[1:] = line_idx[1:] != line_idx[:-1]
    heads = values[is_head]
    line_group = np.cumsum(is_head) - 1  # index into heads of each token's line
    return _Parsed(
        path=path,
        users=heads[line_group[~is_head]],
        items=values[~is_head],
        max_user=int(heads.max()) if heads.size else -1,
    )


def _parse_item_list(file: Traversable) -> np.ndarray:
    """Parses a file of item ids (one per line) into int32 [k], sorted and unique."""
    values, _ = _tokenize(_normalise(_read_bytes(file)), str(file))
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
        raise DataError(f"{root}: both {stem}.txt and {stem}.txt.gz exist; keep one")
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


def _load(root: Traversable, name: str) -> SplitData:
    """Loads a split directory given as a Path or a package resource."""
    if not root.is_dir():
        raise DataError(f"{root}: no such split directory")
    train_file = _find(root, "train") or _find(root, "train_reconstructed")
    if train_file is None:
        raise DataError(f"{root}: no train.txt (or train.txt.gz)")
    valid_file = _find(root, "valid")
    test_files = {stem: f for stem in _test_stems(root) if (f := _find(root, stem))}
    not_candidate_file = _find(root, "not_candidate")

    train = _parse_adjacency(train_file)
    if not train.items.size:
        raise DataError(f"{train.path}: training set is empty")
    valid = _parse_adjacency(valid_file) if valid_file else None
    tests = {stem: _parse_adjacency(f) for stem, f in test_files.items()}
    not_candidate = _parse_item_list(not_candidate_file) if not_candidate_file else None

    parsed = [train, *([valid] if valid else []), *tests.values()]
    n_users = max(p.max_user for p in parsed) + 1
    n_items = max(p.max_item for p in parsed) + 1
    if not_candidate is not None and not_candidate.size:
        n_items = max(n_items, int(not_candidate[-1]) + 1)

    def csr(p: _Parsed) -> Interactions:
        # Repeated pairs are dropped silently for now.
        return _to_csr(p, n_users, n_items)[0]

    return SplitData(
        name=name,
        n_users=n_users,
        n_items=n_items,
        train=csr(train),
        valid=csr(valid) if valid else None,
        tests={stem: csr(p) for stem, p in tests.items()},
        not_candidate=not_candidate,
    )


def load_split_dir(path: str | os.PathLike, name: str | None = None) -> SplitData:
    """Reads a split directory into CSR interaction matrices.

    Users may span several lines (merged); a line holding only a user id adds a
    user with no items; repeated pairs are kept once; blank lines, CRLF, tabs
    and trailing spaces are tolerated. n_users and n_items count every file,
    not_candidate.txt included, so all splits share one id space.

    Args:
      path: the directory.
      name: the dataset's name; defaults to the directory's base name.

    Returns:
      The SplitData; every Interactions has indptr of shape [n_users + 1].

    Raises:
      DataError: the directory or its train file is missing, a file is not valid
        gzip, a token is not an integer in [0, 2**31 - 1], or train has no pairs.
    """
    root = pathlib.Path(path)
    return _load(root, name if name is not None else root.resolve().name)


def _embedded_datasets() -> list[str]:
    """Names of the datasets shipped inside the package, sorted."""
    package = importlib.resources.files(_EMBEDDED_PACKAGE)
    return sorted(
        entry.name
        for entry in package.iterdir()
        if entry.is_dir() and not entry.name.startswith(("_", "."))
    )


def load_dataset(dataset: str | None = "coat", data_dir: str | None = None) -> SplitData:
    """Loads a split directory, or a dataset embedded in the package.

    Args:
      dataset: name of an embedded dataset (only "coat"); ignored when data_dir is set.
      data_dir: a split directory to load instead, named after its base name.

    Returns:
      The SplitData.

    Raises:
      DataError: neither argument is given, the name is unknown, or the files are bad.
    """
    if data_dir is not None:
        return load_split_dir(data_dir)
    if dataset is None:
        raise DataError("no dataset: give an embedded dataset name or data_dir")
    available = _embedded_datasets()
    if dataset not in available:
        raise DataError(
            f"unknown embedded dataset {dataset!r}; available: {', '.join(available)} "
            "(or pass data_dir)"
        )
    # files() gives a Traversable, so this also works when installed as a zip.
    return _load(importlib.resources.files(_EMBEDDED_PACKAGE) / dataset, dataset)
