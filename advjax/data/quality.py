"""Warnings about a loaded split: legal input that is worth knowing about.

Each check reports through a ``warn`` callable, one line per finding (the loaders'
default, :func:`print_warning`, prints ``warning: LINE`` on stderr); none of them
changes the data or stops the run.

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

import pathlib
import sys
from collections.abc import Callable

import numpy as np

from advjax.data.interactions import Interactions

Warn = Callable[[str], None]


def print_warning(line: str) -> None:
    """The default ``warn`` of the loaders: prints ``warning: LINE`` to stderr."""
    print(f"warning: {line}", file=sys.stderr, flush=True)


def plural(count: int, noun: str) -> str:
    """``1 pair``, ``2 pairs``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def warn_duplicates(path: str, n_duplicates: int, warn: Warn) -> None:
    """Reports the repeated (user, item) pairs dropped from one file, if any."""
    if n_duplicates:
        warn(f"{path}: {plural(n_duplicates, 'duplicate interaction')} dropped")


def warn_empty_valid(path: str, warn: Warn) -> None:
    """Reports a valid file without pairs (the run has no early stopping)."""
    warn(f"{path}: no validation pairs; training runs to max_epochs without early stopping")


def warn_empty_test(path: str, warn: Warn) -> None:
    """Reports a test file without pairs (it gets no evaluator)."""
    warn(f"{path}: no test pairs; this evaluator is skipped")


def same_pairs(a: Interactions, b: Interactions) -> bool:
    """Whether two Interactions hold the same set of pairs."""
    return np.array_equal(a.indptr, b.indptr) and np.array_equal(a.items, b.items)


def warn_identical_tests(tests: dict[str, Interactions], warn: Warn) -> None:
    """One line per group of test sets that hold the same pairs."""
    groups: list[list[str]] = []
    for stem, pairs in tests.items():
        group = next((g for g in groups if same_pairs(tests[g[0]], pairs)), None)
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
            f"{names} hold the same {plural(tests[group[0]].nnz, 'pair')} ({files}); "
            "their metrics will be equal"
        )


def warn_untrained(
    root: str,
    train: Interactions,
    evaluated: list[Interactions | None],
    n_items: int,
    warn: Warn,
) -> None:
    """Reports evaluated users and items that have no training pairs.

    Args:
      root: the split directory, for the items' message.
      train: the training pairs.
      evaluated: the valid and test pairs (None entries are skipped), in file order;
        one line per file with users that have pairs there but none in train.
      n_items: the number of items (all Interactions' item ids lie below it).
      warn: receives each line.
    """
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
