"""Writing a split directory all at once: a temporary directory beside the target,
renamed into place at the end, so a failed run leaves nothing behind."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

import numpy as np

from advjax.data.tokenize import show_path
from advjax.errors import DataError


def check_out(out: str | os.PathLike, *, overwrite: bool) -> pathlib.Path:
    """Validates ``--out`` before any work: a new path, or an existing directory when
    `overwrite`.

    Raises:
      DataError: it exists (without `overwrite`), or it is a file.
    """
    path = pathlib.Path(out)
    if path.is_file():
        raise DataError(f"{show_path(path)}: is a file; --out must be a directory")
    if path.exists() and not overwrite:
        raise DataError(f"{show_path(path)}: already exists; pass --overwrite to replace it")
    return path


def json_text(value: object) -> str:
    """Indented JSON with a final newline (diff-friendly, stable key order)."""
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


def write_split_dir(
    out: str | os.PathLike, files: dict[str, str], *, overwrite: bool = False
) -> pathlib.Path:
    """Writes `files` (name -> text) as the directory `out`, all or nothing.

    The files go into a temporary directory next to `out`, which is renamed to `out`
    at the end; with `overwrite`, an existing `out` is replaced (moved aside, then
    deleted). On any error the temporary directory is removed.

    Returns:
      The path written.
    """
    path = check_out(out, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8", newline="\n")
        tmp.chmod(0o755)
        if path.exists():
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.rename(path, old / path.name)
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def file_counts(users: np.ndarray, items: np.ndarray) -> tuple[int, int, int]:
    """Distinct users, distinct items and pairs of one file."""
    return len(np.unique(users)), len(np.unique(items)), len(users)


def counts_table(files: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[str]:
    """Markdown rows: users, items, pairs per file."""
    rows = ["| file | users | items | pairs |", "|---|---:|---:|---:|"]
    for name, (users, items) in files.items():
        n_users, n_items, n_pairs = file_counts(users, items)
        rows.append(f"| {name} | {n_users:,} | {n_items:,} | {n_pairs:,} |")
    return rows
