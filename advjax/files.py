"""File helpers shared by the workdir code, the experiments and the benchmarks."""

from __future__ import annotations

import json
import os


def write_atomically(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename, so a process killed
    mid-write leaves the previous file, not half of the new one."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def read_json_object(path: str) -> tuple[dict | None, str]:
    """The JSON object in `path`, or (None, what is wrong with the file) for the caller's
    one-line error."""
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        return None, f"unreadable ({err})"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    return value, ""
