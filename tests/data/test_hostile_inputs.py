"""The data layer's hostile-input catalogue: each legal-but-odd or illegal split.

Illegal input raises DataError with one line naming file and line; legal input that
is worth knowing about loads and reports one line per case through ``warn``.
"""

from __future__ import annotations

import gzip
import pathlib

import numpy as np
import pytest

from advjax import evaluation
from advjax.data import SplitData, load_dataset, load_split_dir, print_warning
from advjax.errors import ConfigError, DataError
from advjax.models.trained import TrainedModel


def _write(root: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = root / name
    data = text.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def _file_name(key: str) -> str:
    """Keyword -> file name: NAME -> NAME.txt, NAME_txt_gz -> NAME.txt.gz."""
    return key.replace("_txt_gz", ".txt.gz") if key.endswith("_txt_gz") else f"{key}.txt"


def _split(root: pathlib.Path, **files: str) -> pathlib.Path:
    """Writes one file per keyword (see _file_name) into root."""
    root.mkdir(exist_ok=True)
    for key, text in files.items():
        _write(root, _file_name(key), text)
    return root


def _load(root: pathlib.Path, **kwargs) -> tuple[SplitData, list[str]]:
    lines: list[str] = []
    data = load_split_dir(root, warn=lines.append, **kwargs)
    return data, lines


def _error(root: pathlib.Path, **kwargs) -> str:
    lines: list[str] = []
    with pytest.raises(DataError) as info:
        load_split_dir(root, warn=lines.append, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def _rows(csr) -> list[list[int]]:
    return [csr.items[a:b].tolist() for a, b in zip(csr.indptr[:-1], csr.indptr[1:], strict=True)]


# A clean split warns about nothing; the default warn goes to stderr.


def test_clean_split_warns_nothing(tmp_path):
    root = _split(tmp_path, train="0 1 2\n1 0\n", valid="0 0\n", test_id="1 2\n", test_ood="0 0\n")
    data, lines = _load(root)
    assert lines == []
    assert list(data.tests) == ["test_id", "test_ood"] and data.valid is not None


def test_default_warn_prints_to_stderr(tmp_path, capsys):
    root = _split(tmp_path, train="0 1 1\n")
    load_split_dir(root)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"warning: {root / 'train.txt'}: 1 duplicate interaction dropped\n"
    print_warning("x")
    assert capsys.readouterr().err == "warning: x\n"


def test_positional_api_still_works(tmp_path):
    root = _split(tmp_path, train="0 1\n")
    assert load_split_dir(root, "mine").name == "mine"
    assert load_split_dir(str(root)).name == root.name
    assert load_dataset("ignored", str(root)).name == root.name
    assert load_dataset("coat", None, warn=lambda line: None).name == "coat"


# Declared sizes (--n_users / --n_items).


@pytest.mark.parametrize(
    "file, text, line, detail",
    [
        pytest.param("train", "0 1\n\n2 301 4\n", 3, "item id 301 >= --n_items=300", id="item"),
        pytest.param("train", "0 1\n7 2\n", 2, "user id 7 >= --n_users=5", id="user"),
        pytest.param("train", "0 1\n5\n", 2, "user id 5 >= --n_users=5", id="user-no-items"),
        # The first offence in file order wins, whatever its kind.
        pytest.param(
            "train", "0 1\n1 300\n9 0\n", 2, "item id 300 >= --n_items=300", id="first-item"
        ),
        pytest.param("train", "0 1\n9 0\n1 300\n", 2, "user id 9 >= --n_users=5", id="first-user"),
        pytest.param(
            "valid", "0 1\r\n1 2\r\n3 300\r\n", 3, "item id 300 >= --n_items=300", id="valid-crlf"
        ),
        pytest.param("test_ood", "0 1\n\n\n4 999\n", 4, "item id 999 >= --n_items=300", id="test"),
        pytest.param("test_id_txt_gz", "0 1 302\n", 1, "item id 302 >= --n_items=300", id="gzip"),
        pytest.param("not_candidate", "3\n300\n", 2, "item id 300 >= --n_items=300", id="nc"),
    ],
)
def test_id_beyond_declared_size(tmp_path, file, text, line, detail):
    root = _split(tmp_path, train="0 1\n1 2\n")
    _split(root, **{file: text})
    message = _error(root, n_users=5, n_items=300)
    assert message == f"{root / _file_name(file)}:{line}: {detail}"


def test_exact_messages_of_declared_sizes(tmp_path):
    root = _split(tmp_path, train="0 1\n2 301\n")
    assert _error(root, n_items=300) == f"{root / 'train.txt'}:2: item id 301 >= --n_items=300"
    assert _error(root, n_users=2) == f"{root / 'train.txt'}:2: user id 2 >= --n_users=2"


def test_declared_sizes_are_kept_exactly(tmp_path):
    root = _split(tmp_path, train="0 1\n1 0\n", valid="1 2\n", test_id="0 2\n")
    data, lines = _load(root, n_users=4, n_items=10)
    assert (data.n_users, data.n_items) == (4, 10)
    for csr in [data.train, data.valid, data.tests["test_id"]]:
        assert csr.indptr.shape == (5,)
    assert _rows(data.train) == [[1], [0], [], []]
    assert lines == [
        f"{root}: 1 item occurs in valid/test files but not in train; "
        "it is ranked, but its embedding never trains on a positive"
    ]
    # The data's own sizes are also a legal declaration; each size may come alone.
    exact = _load(root, n_users=2, n_items=3)[0]
    assert (exact.n_users, exact.n_items) == (2, 3)
    users_only = _load(root, n_users=6)[0]
    assert (users_only.n_users, users_only.n_items) == (6, 3)
    items_only = _load(root, n_items=4)[0]
    assert (items_only.n_users, items_only.n_items) == (2, 4)


def test_declared_sizes_cover_not_candidate(tmp_path):
    root = _split(tmp_path, train="0 1\n", not_candidate="7\n")
    assert _load(root, n_items=8)[0].n_items == 8
    assert _load(root)[0].n_items == 8


def test_evaluator_over_declared_sizes(tmp_path):
    # Items without any interaction get embeddings and are ranked like the rest.
    root = _split(tmp_path, train="0 1\n1 0\n", test_id="0 0\n1 1\n")
    data, _ = _load(root, n_users=3, n_items=6)
    evaluator = evaluation.build_evaluators(data)["test_id"]
    assert (evaluator.n_users, evaluator.n_items) == (3, 6)
    rng = np.random.default_rng(0)
    got = evaluator.evaluate(
        TrainedModel(rng.normal(size=(3, 4)), rng.normal(size=(6, 4))), ks=(5,)
    )
    assert got["hit_ratio@5"] == 1.0  # 5 candidates per user, target among them


@pytest.mark.parametrize("bad", [0, -3, 2**31 + 1, 2.5, "300", True])
def test_declared_size_must_be_a_positive_int32_count(tmp_path, bad):
    root = _split(tmp_path, train="0 1\n")
    with pytest.raises(ConfigError, match="^--n_items must be"):
        load_split_dir(root, n_items=bad)
    with pytest.raises(ConfigError, match="^--n_users must be"):
        load_dataset(data_dir=root, n_users=bad)


def test_numpy_integer_sizes_are_accepted(tmp_path):
    root = _split(tmp_path, train="0 1\n")
    data, _ = _load(root, n_users=np.int64(3), n_items=np.int32(4))
    assert (data.n_users, data.n_items) == (3, 4) and type(data.n_users) is int


# Duplicate pairs inside one file.


def test_duplicates_warn_once_per_file_with_the_count(tmp_path):
    root = _split(
        tmp_path,
        train="0 1 1 2\n0 2 1\n1 0\n",  # 3 repeats of user 0's pairs
        valid="1 2 2\n",  # 1 repeat
        test_id="0 0\n",
    )
    data, lines = _load(root)
    assert lines == [
        f"{root / 'train.txt'}: 3 duplicate interactions dropped",
        f"{root / 'valid.txt'}: 1 duplicate interaction dropped",
    ]
    assert _rows(data.train) == [[1, 2], [0]]
    assert _rows(data.valid) == [[], [2]]


def test_twelve_duplicates(tmp_path):
    root = _split(tmp_path, train="0 1\n" + "0 5\n" * 13, test_ood="0 5 5\n")
    data, lines = _load(root)
    assert lines == [
        f"{root / 'train.txt'}: 12 duplicate interactions dropped",
        f"{root / 'test_ood.txt'}: 1 duplicate interaction dropped",
    ]
    assert data.train.nnz == 2


def test_pairs_repeated_across_files_are_not_duplicates(tmp_path):
    root = _split(tmp_path, train="0 1\n1 0\n", valid="0 1\n", test_id="0 1\n1 0\n")
    assert _load(root)[1] == []


# Test files holding the same pairs.


def test_identical_test_files_are_reported_as_information(tmp_path):
    root = _split(
        tmp_path,
        train="0 1\n1 0 2 3\n",
        test_id="0 2 3\n1 2\n",
        # The same set of pairs in another order, split over lines, with a repeat.
        test_ood="1 2\n0 3\n0 2 2\n",
    )
    data, lines = _load(root)
    assert lines == [
        f"{root / 'test_ood.txt'}: 1 duplicate interaction dropped",
        "test_id and test_ood hold the same 3 pairs (test_id.txt, test_ood.txt); "
        "their metrics will be equal",
    ]
    assert list(data.tests) == ["test_id", "test_ood"]


def test_embedded_coat_reports_only_its_identical_tests():
    lines: list[str] = []
    load_dataset("coat", warn=lines.append)
    assert lines == [
        "test_id and test_ood hold the same 860 pairs (test_id.txt, test_ood.txt); "
        "their metrics will be equal"
    ]


def test_groups_of_identical_tests(tmp_path):
    root = _split(
        tmp_path,
        train="0 1\n1 0 2\n",
        test_ood_1_txt_gz="0 2\n",
        test_ood_2="0 2\n",
        test_ood_3="0 2\n",
        test_id="1 1\n",
        test="1 1\n",
        test_ood="1 2\n",  # differs
    )
    _, lines = _load(root)
    assert lines == [
        "test_id and test hold the same 1 pair (test_id.txt, test.txt); "
        "their metrics will be equal",
        "test_ood_1, test_ood_2 and test_ood_3 hold the same 1 pair "
        "(test_ood_1.txt.gz, test_ood_2.txt, test_ood_3.txt); their metrics will be equal",
    ]


def test_same_users_different_items_are_not_identical(tmp_path):
    root = _split(tmp_path, train="0 1\n1 0\n", test_id="0 0\n1 1\n", test_ood="0 1\n1 0\n")
    assert _load(root)[1] == []


# Users with targets but no training items.


def test_users_without_training_items_are_evaluated_and_reported(tmp_path):
    root = _split(
        tmp_path,
        train="0 1\n1 0 2\n2\n",  # user 2 listed without items; users 3, 4 absent
        valid="2 0\n",
        test_id="0 0\n2 1\n3 0\n4 1\n",
        test_ood="0 2\n1 2\n",
    )
    data, lines = _load(root)
    assert lines == [
        f"{root / 'valid.txt'}: 1 user has pairs here but no training items; "
        "it is evaluated with an untrained embedding",
        f"{root / 'test_id.txt'}: 3 users have pairs here but no training items; "
        "they are evaluated with untrained embeddings",
    ]
    evaluators = evaluation.build_evaluators(data)
    np.testing.assert_array_equal(evaluators["valid"].users, [2])
    np.testing.assert_array_equal(evaluators["test_id"].users, [0, 2, 3, 4])
    np.testing.assert_array_equal(evaluators["test_ood"].users, [0, 1])


# Items that never occur in train.


def test_items_only_in_test_files_are_counted(tmp_path):
    root = _split(
        tmp_path,
        train="0 0 1\n1 1\n",
        valid="1 2\n",  # item 2: valid only
        test_id="0 3 4\n",  # items 3, 4: test only
        test_ood="1 4 0\n",
    )
    data, lines = _load(root)
    assert lines == [
        f"{root}: 3 items occur in valid/test files but not in train; "
        "they are ranked, but their embeddings never train on a positive"
    ]
    assert data.n_items == 5
    evaluator = evaluation.build_evaluators(data)["test_id"]
    rng = np.random.default_rng(1)
    got = evaluator.evaluate(
        TrainedModel(rng.normal(size=(2, 4)), rng.normal(size=(5, 4))), ks=(3,)
    )
    assert got["recall@3"] == 1.0  # 3 candidates left for user 0 (0, 1 train; 2 valid)


def test_not_candidate_items_do_not_count_as_untrained(tmp_path):
    root = _split(tmp_path, train="0 0 1\n", test_id="0 1\n", not_candidate="5\n6\n")
    assert _load(root)[1] == []


# Empty valid and test files.


@pytest.mark.parametrize(
    "text", ["", "\n\n \n", "0\n3\n", "\r\n2\r\n"], ids=["empty", "blank", "users", "crlf"]
)
def test_empty_test_file_is_skipped(tmp_path, text):
    root = _split(tmp_path, train="0 1\n1 0\n", test_id="0 0\n1 1\n", test_ood=text)
    data, lines = _load(root)
    assert lines == [f"{root / 'test_ood.txt'}: no test pairs; this evaluator is skipped"]
    assert list(data.tests) == ["test_id"]
    assert list(evaluation.build_evaluators(data)) == ["test_id"]
    # User ids on item-less lines still count towards n_users, as in every file.
    assert data.n_users == max([2] + [int(t) + 1 for t in text.split()])


def test_all_test_files_empty(tmp_path):
    root = _split(tmp_path, train="0 1\n1 0\n", valid="0 0\n", test_id="", test_ood_txt_gz="")
    data, lines = _load(root)
    assert lines == [
        f"{root / 'test_id.txt'}: no test pairs; this evaluator is skipped",
        f"{root / 'test_ood.txt.gz'}: no test pairs; this evaluator is skipped",
    ]
    assert data.tests == {}
    assert list(evaluation.build_evaluators(data)) == ["valid"]


@pytest.mark.parametrize("text", ["", "\n", "0\n1\n"], ids=["empty", "blank", "users"])
def test_empty_valid_file_means_no_validation(tmp_path, text):
    root = _split(tmp_path, train="0 1\n1 0\n", valid=text, test_id="0 0\n")
    data, lines = _load(root)
    assert lines == [
        f"{root / 'valid.txt'}: no validation pairs; training runs to max_epochs "
        "without early stopping"
    ]
    assert data.valid is None
    assert list(evaluation.build_evaluators(data)) == ["test_id"]


def test_empty_train_is_still_an_error(tmp_path):
    root = _split(tmp_path, train="0\n\n1\n", test_id="0 1\n")
    assert _error(root) == f"{root / 'train.txt'}: training set is empty"


# --data_dir pointing nowhere.


def test_data_dir_missing(tmp_path):
    missing = tmp_path / "no" / "such"
    for load in (load_split_dir, lambda p: load_dataset(data_dir=p)):
        with pytest.raises(DataError) as info:
            load(missing)
        assert str(info.value) == f"{missing}: no such split directory"


def test_data_dir_is_a_file(tmp_path):
    path = _write(tmp_path, "train.txt", "0 1\n")
    with pytest.raises(DataError) as info:
        load_dataset(data_dir=str(path))
    assert str(info.value) == f"{path}: is a file, not a split directory"


def test_data_dir_with_a_newline_in_its_name_stays_on_one_line(tmp_path):
    odd = tmp_path / "two\nlines"
    with pytest.raises(DataError) as info:
        load_dataset(data_dir=odd)
    assert str(info.value) == f"{ascii(str(odd))}: no such split directory"
    odd.mkdir()
    _write(odd, "train.txt", "0 x\n")
    with pytest.raises(DataError) as info:
        load_split_dir(odd)
    message = str(info.value)
    assert "\n" not in message and message.endswith(":1: non-integer token 'x'")
