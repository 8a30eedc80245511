"""A split file's bytes read into integer tokens, each with its line.

``read_tokens`` reads a file (gunzipped when its name ends in ``.gz``), strips a UTF-8
BOM, turns CRLF and lone-CR line ends into LF, and parses every whitespace-separated
token as a non-negative int32 in bulk with NumPy. Blank lines, tabs and trailing spaces
are whitespace like any other. A token that is not such an integer raises
``advjax.errors.DataError`` with a one-line message naming ``file:line``; so does an
unreadable or corrupt gzip file. What the tokens mean (a user and its items, an item
list) is the caller's business.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import zlib
from importlib.resources.abc import Traversable
from typing import NoReturn

import numpy as np

from advjax.errors import DataError

# Items are stored as int32, so no id may exceed this.
MAX_ID = np.iinfo(np.int32).max

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
class Tokens:
    """The integer tokens of one file, in file order.

    Attributes:
      path: the file as messages name it (see `show_path`).
      values: int64 [n_tokens]; each token's value, in [0, MAX_ID].
      line_idx: int64 [n_tokens]; the 0-based line of each token (LF-counted after
        normalisation, so line k + 1 is what an editor shows as line k + 1).
    """

    path: str
    values: np.ndarray
    line_idx: np.ndarray


def show_path(path: object) -> str:
    """A path as messages print it: as is, or escaped if it would break the line."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


def one_line(e: BaseException) -> str:
    """An exception's text with its whitespace runs (newlines too) collapsed."""
    return " ".join(str(e).split()) or type(e).__name__


def read_bytes(file: Traversable) -> bytes:
    """Returns the file's contents, gunzipped when its name ends in .gz."""
    try:
        data = file.read_bytes()
    except OSError as e:
        raise DataError(f"{show_path(file)}: cannot read ({one_line(e)})") from e
    if file.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{show_path(file)}: unreadable gzip file ({one_line(e)})") from e
    return data


def normalise(data: bytes) -> bytes:
    """Strips a UTF-8 BOM and turns CRLF and lone-CR line ends into LF."""
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :]
    if b"\r" in data:
        # A lone CR would otherwise merge two users' lines into one.
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def tokenize(data: bytes, path: str) -> tuple[np.ndarray, np.ndarray]:
    """Parses every whitespace-separated id of a normalised file in bulk.

    Args:
      data: file contents after `normalise`.
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
    if values.size and (values.min() < 0 or values.max() > MAX_ID):
        _raise_first_bad_token(data, path)
    return values, line_idx


def read_tokens(file: Traversable) -> Tokens:
    """Reads, normalises and tokenizes one file (see the module docstring)."""
    path = show_path(file)
    values, line_idx = tokenize(normalise(read_bytes(file)), path)
    return Tokens(path=path, values=values, line_idx=line_idx)


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
            if value > MAX_ID:
                raise DataError(f"{path}:{lineno}: id {value} exceeds the int32 limit {MAX_ID}")
    # The bulk parser and this scan accept the same tokens, so this is unreachable.
    raise DataError(f"{path}: malformed file")
