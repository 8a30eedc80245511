"""Which files of a split directory play which role.

By default a split directory is read by file name:

  train.txt                 required
  valid.txt                 optional
  test_id.txt, test_ood.txt, test_ood_1.txt, test_ood_2.txt, ..., test.txt
                            optional; evaluated in this order
  not_candidate.txt         optional; item ids never ranked (one per line)

Any of them may be gzip'd as ``NAME.txt.gz`` (both copies at once is an error). Two
things change the defaults:

- ``train_file`` (a file stem, the ``--train_file`` flag): the train file is
  ``STEM.txt`` or ``STEM.txt.gz`` instead of ``train.txt``. It wins over split.json.
- ``split.json`` in the directory: a JSON object from role to file name, for a split
  that ships other names, e.g. ``{"train": "train_reconstructed.txt"}``. A role is
  ``train``, ``valid``, ``not_candidate`` or a test name (``test_id``, ``test_ood``,
  ``test_ood_K`` for an integer K, ``test``); a file name is a file in the same
  directory, read as gzip when it ends in ``.gz``. Roles it leaves out are found by
  the default names. A malformed split.json, a role it does not know, or a file that
  is not there is a one-line ``DataError`` naming split.json.

Without either, a directory with no train.txt but a ``train_*.txt[.gz]`` (kuairec2
ships ``train_reconstructed.txt``) is an error that names the file and the flag to pass.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator
from importlib.resources.abc import Traversable

from advjax.data.tokenize import one_line, show_path
from advjax.errors import ConfigError, DataError

SPLIT_JSON = "split.json"

_TEST_ROLE = re.compile(r"test_id|test_ood|test_ood_(0|[1-9][0-9]*)|test")
_NUMBERED_TEST_ROLE = re.compile(r"test_ood_([0-9]+)")
_NUMBERED_TEST_FILE = re.compile(r"test_ood_([0-9]+)\.txt(\.gz)?")
_TRAIN_CANDIDATE = re.compile(r"(train_.+)\.txt(\.gz)?")
_ROLES_HELP = "train, valid, not_candidate, test_id, test_ood, test_ood_K, test"


@dataclasses.dataclass(frozen=True)
class SplitFiles:
    """The files of one split directory, by role.

    Attributes:
      train: the training file.
      valid: the validation file, or None.
      tests: test name -> file, in evaluation order (test_id, test_ood, test_ood_1,
        test_ood_2, ..., test); only the files that exist.
      not_candidate: the file of never-ranked item ids, or None.
    """

    train: Traversable
    valid: Traversable | None
    tests: dict[str, Traversable]
    not_candidate: Traversable | None


def find(root: Traversable, stem: str) -> Traversable | None:
    """Returns root/stem.txt or root/stem.txt.gz, whichever exists, else None.

    Raises:
      DataError: both exist.
    """
    plain, packed = root / f"{stem}.txt", root / f"{stem}.txt.gz"
    if plain.is_file() and packed.is_file():
        # Reading one silently could hide a stale copy; make the user choose.
        raise DataError(f"{show_path(root)}: both {stem}.txt and {stem}.txt.gz exist; keep one")
    if plain.is_file():
        return plain
    return packed if packed.is_file() else None


def check_train_file(train_file: str | None) -> str:
    """Validates a ``train_file`` argument; returns the train file's stem.

    Raises:
      ConfigError: it is not a bare stem (empty, a path, or ending in .txt / .gz).
    """
    if train_file is None:
        return "train"
    if (
        not isinstance(train_file, str)
        or train_file in ("", ".", "..")
        or any(c in train_file for c in "/\\")
        or train_file.endswith((".txt", ".gz"))
        or not train_file.isprintable()
    ):
        raise ConfigError(
            "--train_file must be a file stem such as train_reconstructed "
            f"(no directory, no .txt), got {train_file!r}"
        )
    return train_file


def read_split_json(root: Traversable) -> dict[str, Traversable]:
    """The roles that root/split.json declares: role -> file; {} without split.json.

    Raises:
      DataError: split.json is unreadable, not a JSON object, names an unknown role,
        or a role's value is not the name of a file in root.
    """
    file = root / SPLIT_JSON
    if not file.is_file():
        return {}
    path = show_path(file)
    try:
        value = json.loads(file.read_bytes())
    except OSError as e:
        raise DataError(f"{path}: cannot read ({one_line(e)})") from e
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise DataError(f"{path}: not valid JSON ({one_line(e)})") from e
    if not isinstance(value, dict):
        raise DataError(f"{path}: not a JSON object (role -> file name)")
    declared = {}
    for role, name in value.items():
        if role not in ("train", "valid", "not_candidate") and not _TEST_ROLE.fullmatch(role):
            raise DataError(f"{path}: unknown role {role!r} (roles: {_ROLES_HELP})")
        if (
            not isinstance(name, str)
            or name in ("", ".", "..")
            or any(c in name for c in "/\\")
            or not name.isprintable()
        ):
            raise DataError(
                f"{path}: {role} must be the name of a file in this directory, got {name!r}"
            )
        declared[role] = root / name
        if not declared[role].is_file():
            raise DataError(f"{path}: {role} is {name}, which is not a file in this directory")
    return declared


def discover(root: Traversable, *, train_file: str | None = None) -> SplitFiles:
    """Finds the files of a split directory (see the module docstring).

    Args:
      root: the directory, as a Path or a package resource.
      train_file: the train file's stem (``--train_file``), or None for split.json's
        train, else ``train``.

    Returns:
      The files by role.

    Raises:
      DataError: root is not a directory, split.json is malformed, a role has both
        a plain and a gzip'd copy, one file plays two roles, or there is no train file.
      ConfigError: train_file is not a bare file stem.
    """
    stem = check_train_file(train_file)
    if not root.is_dir():
        if root.is_file():
            raise DataError(f"{show_path(root)}: is a file, not a split directory")
        raise DataError(f"{show_path(root)}: no such split directory")
    declared = read_split_json(root)

    def role_file(role: str) -> Traversable | None:
        return declared[role] if role in declared else find(root, role)

    if train_file is None and "train" in declared:
        train = declared["train"]
    else:
        train = find(root, stem)
    if train is None:
        raise DataError(_no_train_message(root, stem, explicit=train_file is not None))
    valid = role_file("valid")
    tests = {role: f for role in _test_roles(root, declared) if (f := role_file(role))}
    not_candidate = role_file("not_candidate")

    files = SplitFiles(train=train, valid=valid, tests=tests, not_candidate=not_candidate)
    _check_distinct(root, files)
    return files


def _test_roles(root: Traversable, declared: Iterable[str]) -> Iterator[str]:
    """Yields the test names in the order test_id, test_ood, test_ood_1.., test."""
    numbered = set()
    for entry in root.iterdir():
        match = _NUMBERED_TEST_FILE.fullmatch(entry.name)
        if match:
            numbered.add(int(match.group(1)))
    for role in declared:
        match = _NUMBERED_TEST_ROLE.fullmatch(role)
        if match:
            numbered.add(int(match.group(1)))
    yield "test_id"
    yield "test_ood"
    yield from (f"test_ood_{k}" for k in sorted(numbered))
    yield "test"


def _check_distinct(root: Traversable, files: SplitFiles) -> None:
    """Raises DataError when one file would be read in two roles (split.json or
    train_file can make it so; the default names cannot)."""
    roles = {
        "train": files.train,
        "valid": files.valid,
        **files.tests,
        "not_candidate": files.not_candidate,
    }
    seen: dict[str, str] = {}
    for role, file in roles.items():
        if file is None:
            continue
        if file.name in seen:
            raise DataError(
                f"{show_path(root)}: {show_path(file.name)} would be read as both "
                f"{seen[file.name]} and {role}"
            )
        seen[file.name] = role


def _no_train_message(root: Traversable, stem: str, *, explicit: bool) -> str:
    """The error for a missing train file, naming train_* files that could be meant."""
    message = f"{show_path(root)}: no {stem}.txt (or {stem}.txt.gz)"
    if explicit:
        message += f" (--train_file={stem})"
    candidates = sorted(
        (match.group(1), entry.name)
        for entry in root.iterdir()
        if (match := _TRAIN_CANDIDATE.fullmatch(entry.name)) and match.group(1) != stem
    )
    if not candidates:
        return message
    names = ", ".join(show_path(name) for _, name in candidates)
    stems = sorted({show_path(s) for s, _ in candidates})
    if len(stems) == 1:
        advice = f"pass --train_file={stems[0]}"
    else:
        advice = f"pass --train_file=STEM with STEM one of {', '.join(stems)}"
    if not explicit:
        advice += f", or name it in {SPLIT_JSON}"
    return f"{message}; found {names}: {advice}"
