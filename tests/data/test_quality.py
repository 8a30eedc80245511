"""Tests for advjax.data.quality: the warnings, each check on its own.

tests/data/test_hostile_inputs.py checks the same lines through the loader.
"""

from __future__ import annotations

import numpy as np

from advjax.data import Interactions, quality


def _csr(rows: list[list[int]], path: str) -> Interactions:
    indptr = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    items = np.array([i for r in rows for i in sorted(r)], dtype=np.int32)
    return Interactions(indptr=indptr, items=items, path=path)


def _lines(check, *args) -> list[str]:
    lines: list[str] = []
    check(*args, lines.append)
    return lines


def test_plural():
    assert quality.plural(1, "pair") == "1 pair"
    assert [quality.plural(n, "pair") for n in (0, 2)] == ["0 pairs", "2 pairs"]


def test_duplicates_only_when_some_were_dropped():
    assert _lines(quality.warn_duplicates, "d/train.txt", 0) == []
    assert _lines(quality.warn_duplicates, "d/train.txt", 1) == [
        "d/train.txt: 1 duplicate interaction dropped"
    ]
    assert _lines(quality.warn_duplicates, "d/valid.txt.gz", 7) == [
        "d/valid.txt.gz: 7 duplicate interactions dropped"
    ]


def test_empty_files():
    assert _lines(quality.warn_empty_valid, "d/valid.txt") == [
        "d/valid.txt: no validation pairs; training runs to max_epochs without early stopping"
    ]
    assert _lines(quality.warn_empty_test, "d/test.txt") == [
        "d/test.txt: no test pairs; this evaluator is skipped"
    ]


def test_identical_tests_grouped_in_order():
    tests = {
        "test_id": _csr([[1], [0, 2]], "d/test_id.txt"),
        "test_ood": _csr([[1], [2]], "d/test_ood.txt"),
        "test_ood_1": _csr([[1], [2, 0]], "d/test_ood_1.txt.gz"),
        "test": _csr([[1], [2]], "d/test.txt"),
    }
    assert _lines(quality.warn_identical_tests, tests) == [
        "test_id and test_ood_1 hold the same 3 pairs (test_id.txt, test_ood_1.txt.gz); "
        "their metrics will be equal",
        "test_ood and test hold the same 2 pairs (test_ood.txt, test.txt); "
        "their metrics will be equal",
    ]
    assert _lines(quality.warn_identical_tests, {"test_id": tests["test_id"]}) == []


def test_same_pairs_compares_rows_not_just_items():
    assert not quality.same_pairs(_csr([[1], [2]], "a"), _csr([[1, 2], []], "b"))
    assert quality.same_pairs(_csr([[], [3]], "a"), _csr([[], [3]], "b"))


def test_untrained_users_and_items():
    train = _csr([[0, 1], [], [1], []], "d/train.txt")
    valid = _csr([[], [0], [], []], "d/valid.txt")
    test = _csr([[2], [1], [0], [3]], "d/test_id.txt")
    assert _lines(quality.warn_untrained, "d", train, [valid, None, test], 5) == [
        "d/valid.txt: 1 user has pairs here but no training items; "
        "it is evaluated with an untrained embedding",
        "d/test_id.txt: 2 users have pairs here but no training items; "
        "they are evaluated with untrained embeddings",
        "d: 2 items occur in valid/test files but not in train; "
        "they are ranked, but their embeddings never train on a positive",
    ]
    only_item_2 = _csr([[2], [], [], []], "d/valid.txt")
    assert _lines(quality.warn_untrained, "d", train, [only_item_2], 5) == [
        "d: 1 item occurs in valid/test files but not in train; "
        "it is ranked, but its embedding never trains on a positive"
    ]
    assert _lines(quality.warn_untrained, "d", train, [None], 5) == []


def test_print_warning_goes_to_stderr(capsys):
    quality.print_warning("something odd")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "warning: something odd\n")
