"""Raw interaction files parsed into one table of (user, item, rating, time) rows.

Formats (``--format``):

- ``csv`` / ``tsv``: comma- or tab-separated, quoted fields allowed (Python's csv
  module). With a header row (the default) a column is named by its header field or
  by its 0-based index; without one (``header=False``), by index only.
- ``movielens``: ``ratings.dat``, ``user::item::rating::timestamp``, no header.
- ``recbole``: an atomic ``.inter`` file: tab-separated, a header of ``name:type``
  fields (``user_id:token``); a column is named by ``name`` or ``name:type``.
- ``matrix``: a dense rating matrix like Coat's ``train.ascii``: whitespace-separated
  numbers, one row per user, one column per item, 0 = no rating. The raw ids are the
  0-based row and column indices.

Every file may be gzip'd (``.gz``), start with a UTF-8 BOM, and end its lines with
CRLF or a lone CR. A malformed row (too few fields, an empty id, a rating or time that
is not a finite number, a ragged matrix row) raises ``DataError`` naming ``file:line``;
a file without rows raises ``DataError`` naming the file. Ids are kept as strings here;
`data_prep.interactions` turns them into integer codes.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import pathlib

import numpy as np

from advjax.data.tokenize import normalise, one_line, read_bytes, show_path
from advjax.errors import ConfigError, DataError

FORMATS = ("csv", "tsv", "movielens", "recbole", "matrix")
# Formats whose columns the user names (the others have fixed layouts).
NAMED_COLUMNS = ("csv", "tsv", "recbole")


@dataclasses.dataclass(frozen=True)
class Columns:
    """Which columns hold what, by header name or 0-based index ("" = absent).

    Attributes:
      user, item: required.
      rating: optional; needed for a rating threshold.
      time: optional; needed for a temporal split.
    """

    user: str = "user_id"
    item: str = "item_id"
    rating: str = ""
    time: str = ""


@dataclasses.dataclass(frozen=True)
class Table:
    """The rows of one raw file, in file order.

    Attributes:
      path: the file, as messages name it.
      users, items: str [n_rows]; raw ids.
      ratings: float64 [n_rows], or None when the file has no rating column.
      times: float64 [n_rows], or None when it has no time column.
      lines: int64 [n_rows]; the 1-based line each row ends on.
    """

    path: str
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray | None
    times: np.ndarray | None
    lines: np.ndarray

    @property
    def n_rows(self) -> int:
        return len(self.users)


def decode(data: bytes, path: str) -> str:
    """A file's bytes (already gunzipped) as text: BOM stripped, line ends made LF.

    Raises:
      DataError: the bytes are not UTF-8, naming the line of the first bad byte.
    """
    data = normalise(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({one_line(e)})") from e


def parse_number(text: str, what: str, path: str, line: int) -> float:
    """A finite float, or a DataError naming ``path:line`` and `what` it should be."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"{path}:{line}: {what} {text.strip()!r} is not a finite number")
    return value


def _column_index(spec: str, header: list[str] | None, path: str, flag: str) -> int:
    """Resolves a column spec (header name, or 0-based index) to an index.

    Raises:
      DataError: the header has no such column.
      ConfigError: without a header, the spec is not an index.
    """
    if header is not None and spec in header:
        return header.index(spec)
    if spec.isdigit():
        return int(spec)
    if header is None:
        raise ConfigError(f"--{flag}={spec}: the file has no header; give a 0-based index")
    raise DataError(f"{path}:1: no column {spec!r} in the header ({', '.join(header)})")


def _recbole_header(fields: list[str]) -> list[str]:
    """RecBole header fields ``name:type`` -> the names (``name:type`` also matches)."""
    return [field.split(":", 1)[0] for field in fields]


def _rows_to_table(
    rows: list[tuple[int, list[str]]],
    indices: dict[str, int],
    path: str,
) -> Table:
    """Picks the named columns out of split rows.

    Args:
      rows: (1-based line, fields) per data row.
      indices: role ("user", "item", "rating", "time") -> column index; absent roles
        are left out.
      path: the file, for messages.

    Raises:
      DataError: a row lacks a column, has an empty id, or a non-numeric rating/time.
    """
    if not rows:
        raise DataError(f"{path}: no interactions")
    needed = max(indices.values()) + 1
    users, items, ratings, times, lines = [], [], [], [], []
    for line, fields in rows:
        if len(fields) < needed:
            missing = [r for r, i in indices.items() if i >= len(fields)]
            raise DataError(
                f"{path}:{line}: {len(fields)} fields, no {' or '.join(missing)} column "
                f"(needs {needed})"
            )
        user, item = fields[indices["user"]].strip(), fields[indices["item"]].strip()
        if not user or not item:
            raise DataError(f"{path}:{line}: empty {'user' if not user else 'item'} id")
        users.append(user)
        items.append(item)
        lines.append(line)
        if "rating" in indices:
            ratings.append(parse_number(fields[indices["rating"]], "rating", path, line))
        if "time" in indices:
            times.append(parse_number(fields[indices["time"]], "time", path, line))
    return Table(
        path=path,
        users=np.array(users, dtype=str),
        items=np.array(items, dtype=str),
        ratings=np.array(ratings, dtype=np.float64) if "rating" in indices else None,
        times=np.array(times, dtype=np.float64) if "time" in indices else None,
        lines=np.array(lines, dtype=np.int64),
    )


def _role_specs(columns: Columns) -> dict[str, str]:
    """The column specs that are set, by role."""
    specs = {"user": columns.user, "item": columns.item}
    if columns.rating:
        specs["rating"] = columns.rating
    if columns.time:
        specs["time"] = columns.time
    return specs


def parse_delimited(
    text: str, path: str, delimiter: str, columns: Columns, *, header: bool, recbole: bool
) -> Table:
    """Parses CSV / TSV / RecBole text (see the module docstring)."""
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    rows = []
    fields_of_header = None
    for fields in reader:
        if not any(field.strip() for field in fields):
            continue  # blank line
        if header and fields_of_header is None:
            fields_of_header = [field.strip() for field in fields]
            continue
        rows.append((reader.line_num, fields))
    if header and fields_of_header is None:
        raise DataError(f"{path}: no interactions (empty file)")
    indices = {}
    for role, spec in _role_specs(columns).items():
        names = fields_of_header
        if recbole and spec not in fields_of_header:
            names = _recbole_header(fields_of_header)  # `user_id` names `user_id:token`
        indices[role] = _column_index(spec, names, path, f"{role}_col")
    return _rows_to_table(rows, indices, path)


def parse_movielens(text: str, path: str) -> Table:
    """Parses MovieLens ``ratings.dat`` (``user::item::rating::timestamp``)."""
    rows = [
        (line, row.split("::")) for line, row in enumerate(text.split("\n"), start=1) if row.strip()
    ]
    for line, fields in rows:
        if len(fields) != 4:
            raise DataError(
                f"{path}:{line}: {len(fields)} '::'-separated fields, expected 4 "
                "(user::item::rating::timestamp)"
            )
    return _rows_to_table(rows, {"user": 0, "item": 1, "rating": 2, "time": 3}, path)


def parse_matrix(text: str, path: str) -> Table:
    """Parses a dense rating matrix: rows users, columns items, 0 = no rating.

    Blank lines are skipped, so a user's id is the index among non-blank rows.
    """
    values, width = [], None
    row_lines = []
    for line, row in enumerate(text.split("\n"), start=1):
        fields = row.split()
        if not fields:
            continue
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise DataError(f"{path}:{line}: {len(fields)} values, expected {width} as in row 1")
        values.append([parse_number(f, "rating", path, line) for f in fields])
        row_lines.append(line)
    if not values:
        raise DataError(f"{path}: no interactions (empty file)")
    matrix = np.array(values, dtype=np.float64)
    users, items = np.nonzero(matrix)
    if not users.size:
        raise DataError(f"{path}: no interactions (every rating is 0)")
    return Table(
        path=path,
        users=users.astype(str),
        items=items.astype(str),
        ratings=matrix[users, items],
        times=None,
        lines=np.array(row_lines, dtype=np.int64)[users],
    )


def parse_table(text: str, path: str, fmt: str, columns: Columns, *, header: bool) -> Table:
    """Parses decoded text in one of `FORMATS` (see the module docstring)."""
    if fmt == "csv":
        return parse_delimited(text, path, ",", columns, header=header, recbole=False)
    if fmt == "tsv":
        return parse_delimited(text, path, "\t", columns, header=header, recbole=False)
    if fmt == "recbole":
        return parse_delimited(text, path, "\t", columns, header=True, recbole=True)
    if fmt == "movielens":
        return parse_movielens(text, path)
    if fmt == "matrix":
        return parse_matrix(text, path)
    raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def read_table(
    path: str | pathlib.Path, fmt: str, columns: Columns = Columns(), *, header: bool = True
) -> Table:
    """Reads and parses one raw file (gunzipped when its name ends in .gz).

    Raises:
      DataError: the file cannot be read, is not valid gzip or UTF-8, or a row is
        malformed (``file:line``), or it holds no rows.
    """
    file = pathlib.Path(path)
    shown = show_path(file)
    if not file.is_file():
        raise DataError(f"{shown}: no such file")
    return parse_table(decode(read_bytes(file), shown), shown, fmt, columns, header=header)
