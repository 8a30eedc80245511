"""Tests for advjax.data.splits: the split-directory loader.

The parts it uses are tested alone in test_tokenize.py, test_discovery.py and
test_quality.py; here they are tested together, through the public API.
"""

from __future__ import annotations

import gzip
import json
import pathlib

import numpy as np
import pytest

from advjax.data import Interactions, SplitData, load_dataset, load_split_dir
from advjax.data import splits as splits_lib
from advjax.errors import DataError

SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _shared(name: str) -> pathlib.Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


def _reference_parse(path: pathlib.Path) -> tuple[dict[int, set[int]], int]:
    """Slow, obviously-correct parse: user -> item set, and the largest user id seen."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        text = f.read()
    pairs: dict[int, set[int]] = {}
    max_user = -1
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        tokens = [int(t) for t in line.split()]
        if not tokens:
            continue
        user, items = tokens[0], tokens[1:]
        pairs.setdefault(user, set()).update(items)
        max_user = max(max_user, user)
    return pairs, max_user


def _assert_matches(csr: Interactions, reference: dict[int, set[int]], n_users: int) -> None:
    assert csr.indptr.dtype == np.int64 and csr.indptr.shape == (n_users + 1,)
    assert csr.items.dtype == np.int32
    for user in range(n_users):
        row = csr.items[csr.indptr[user] : csr.indptr[user + 1]]
        np.testing.assert_array_equal(row, sorted(reference.get(user, ())), err_msg=f"user {user}")


def _assert_split_matches_files(data: SplitData, root: pathlib.Path) -> None:
    """Checks every split of data against the slow parse of its file."""
    csrs = {"train": data.train, "valid": data.valid, **data.tests}
    for csr in csrs.values():
        if csr is not None:
            reference, _ = _reference_parse(pathlib.Path(csr.path))
            _assert_matches(csr, reference, data.n_users)
            assert pathlib.Path(csr.path).parent == root


def _write(root: pathlib.Path, name: str, text: str) -> pathlib.Path:
    path = root / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_bytes(text.encode())
    return path


def _load_train(tmp_path: pathlib.Path, text: str, name: str = "train.txt") -> SplitData:
    _write(tmp_path, name, text)
    return load_split_dir(tmp_path)


def _rows(csr: Interactions) -> list[list[int]]:
    return [csr.items[a:b].tolist() for a, b in zip(csr.indptr[:-1], csr.indptr[1:], strict=True)]


# Embedded Coat.


def test_embedded_coat_counts():
    data = load_dataset()
    assert data.name == "coat"
    assert (data.n_users, data.n_items) == (290, 295)
    assert data.train.nnz == 1363
    assert data.valid is not None and data.valid.nnz == 553
    assert list(data.tests) == ["test_id", "test_ood"]
    assert data.tests["test_id"].nnz == data.tests["test_ood"].nnz == 860
    assert data.not_candidate is None


def test_embedded_coat_matches_reference_parse():
    data = load_dataset("coat")
    _assert_split_matches_files(data, pathlib.Path(data.train.path).parent)


def test_load_dataset_with_data_dir_uses_its_base_name(tmp_path):
    root = tmp_path / "mini"
    root.mkdir()
    _write(root, "train.txt", "0 1\n")
    data = load_dataset(data_dir=str(root))
    assert data.name == "mini"
    assert load_split_dir(root, name="other").name == "other"


def test_load_dataset_unknown_name_lists_available():
    with pytest.raises(DataError, match="'nope'.*available: coat"):
        load_dataset("nope")


# Real data in shared/data.


def test_yahoo_counts():
    data = load_split_dir(_shared("yahoo.new"))
    assert data.name == "yahoo.new"
    assert (data.n_users, data.n_items) == (14_382, 1_000)
    assert data.train.nnz == 88_684
    assert data.valid is not None and data.valid.nnz == 36_393
    assert {k: v.nnz for k, v in data.tests.items()} == {"test_id": 4_671, "test_ood": 4_671}


@pytest.fixture(scope="module")
def kuairec2() -> SplitData:
    # kuairec2 ships train_reconstructed.txt and no train.txt (its SOURCE.md).
    return load_split_dir(_shared("kuairec2"), train_file="train_reconstructed")


def test_kuairec2_without_train_file_says_which_flag_to_pass():
    root = _shared("kuairec2")
    with pytest.raises(DataError) as info:
        load_dataset(data_dir=root)
    assert str(info.value) == (
        f"{root}: no train.txt (or train.txt.gz); found train_reconstructed.txt: "
        "pass --train_file=train_reconstructed, or name it in split.json"
    )


def test_kuairec2_not_candidate_and_reconstructed_train(kuairec2):
    data = kuairec2
    assert pathlib.Path(data.train.path).name == "train_reconstructed.txt"
    assert data.train.nnz == 846_414
    assert data.valid is not None and data.valid.nnz == 72_392
    assert data.tests["test_id"].nnz == data.tests["test_ood"].nnz == 144_783
    # not_candidate.txt names videos up to 10727, beyond any item of the split files.
    assert (data.n_users, data.n_items) == (7_176, 10_728)
    assert data.not_candidate is not None and data.not_candidate.dtype == np.int32
    assert data.not_candidate.shape == (7_401,)
    assert np.all(np.diff(data.not_candidate) > 0)
    # User 4445 has valid/test items but none in train (see kuairec2/SOURCE.md).
    assert data.train.degrees()[4445] == 0 and data.tests["test_id"].degrees()[4445] > 0


def test_kuairec2_valid_matches_reference_parse(kuairec2):
    # valid.txt uses CRLF and unsorted items: a real-data tolerance check.
    data = kuairec2
    reference, _ = _reference_parse(pathlib.Path(data.valid.path))
    _assert_matches(data.valid, reference, data.n_users)


# Layout of a split directory.


def test_tests_are_ordered_and_optional_files_absent(tmp_path):
    _write(tmp_path, "train.txt", "0 1\n")
    for stem in ["test", "test_ood_10", "test_ood_2", "test_ood_1", "test_ood", "test_id"]:
        _write(tmp_path, f"{stem}.txt", "0 1\n")
    data = load_split_dir(tmp_path)
    assert list(data.tests) == [
        "test_id",
        "test_ood",
        "test_ood_1",
        "test_ood_2",
        "test_ood_10",
        "test",
    ]
    assert data.valid is None and data.not_candidate is None


def test_sizes_count_every_file(tmp_path):
    _write(tmp_path, "train.txt", "0 1\n")
    _write(tmp_path, "valid.txt", "3 2\n")
    _write(tmp_path, "test_ood.txt", "1 4\n5\n")
    _write(tmp_path, "not_candidate.txt", "9\n7\n")
    data = load_split_dir(tmp_path)
    assert (data.n_users, data.n_items) == (6, 10)
    for csr in [data.train, data.valid, data.tests["test_ood"]]:
        assert csr.n_users == 6
    np.testing.assert_array_equal(data.not_candidate, [7, 9])


def test_train_file_argument(tmp_path):
    _write(tmp_path, "train_reconstructed.txt", "0 1\n1 2\n")
    _write(tmp_path, "test_id.txt", "0 2\n")
    for data in (
        load_split_dir(tmp_path, train_file="train_reconstructed"),
        load_dataset(data_dir=tmp_path, train_file="train_reconstructed"),
    ):
        assert pathlib.Path(data.train.path).name == "train_reconstructed.txt"
        assert _rows(data.train) == [[1], [2]]
        assert _rows(data.tests["test_id"]) == [[2], []]


def test_train_file_in_split_json(tmp_path):
    _write(tmp_path, "train.txt", "0 1\n")
    _write(tmp_path, "train_reconstructed.txt.gz", "0 1 2\n")
    _write(tmp_path, "split.json", json.dumps({"train": "train_reconstructed.txt.gz"}))
    data = load_split_dir(tmp_path)
    assert pathlib.Path(data.train.path).name == "train_reconstructed.txt.gz"
    assert _rows(data.train) == [[1, 2]]
    # An explicit argument wins over split.json.
    assert _rows(load_dataset(data_dir=tmp_path, train_file="train").train) == [[1]]


def test_train_reconstructed_is_not_read_without_being_named(tmp_path):
    _write(tmp_path, "train_reconstructed.txt", "0 1\n")
    _write(tmp_path, "valid.txt", "0 1\n")
    assert _error(tmp_path) == (
        f"{tmp_path}: no train.txt (or train.txt.gz); found train_reconstructed.txt: "
        "pass --train_file=train_reconstructed, or name it in split.json"
    )


def test_malformed_split_json_is_a_one_line_error(tmp_path):
    _write(tmp_path, "train.txt", "0 1\n")
    _write(tmp_path, "split.json", '{"train": "train.txt",\n')
    assert _error(tmp_path).startswith(f"{tmp_path / 'split.json'}: not valid JSON (")


def test_gzip_files(tmp_path):
    _write(tmp_path, "train.txt.gz", "0 3 1\n1 2\n")
    _write(tmp_path, "test_id.txt.gz", "1 0\n")
    data = load_split_dir(tmp_path)
    assert _rows(data.train) == [[1, 3], [2]]
    assert _rows(data.tests["test_id"]) == [[], [0]]


# Tolerance of messy files.


@pytest.mark.parametrize(
    "text, rows",
    [
        pytest.param("0 2 1\r\n1 0\r\n", [[1, 2], [0]], id="crlf"),
        pytest.param("0 2 1\r1 0\r", [[1, 2], [0]], id="lone-cr"),
        pytest.param("0 2 1  \n1 0 \t\n", [[1, 2], [0]], id="trailing-space"),
        pytest.param("0\t2\t 1\n\t1 0\n", [[1, 2], [0]], id="tabs"),
        pytest.param("\n0 2 1\n\n \n1 0\n\n", [[1, 2], [0]], id="blank-lines"),
        pytest.param("0 2 1\n1 0", [[1, 2], [0]], id="no-final-newline"),
        pytest.param("0 1\n1\n2 0\n", [[1], [], [0]], id="user-without-items"),
        pytest.param("0 1\n3\n", [[1], [], [], []], id="last-user-without-items"),
        pytest.param("0 1\n1 0\n0 2 0\n", [[0, 1, 2], [0]], id="repeated-user"),
        pytest.param("0 1 1 2\n0 2\n", [[1, 2]], id="duplicates"),
        pytest.param("\ufeff0 1\n", [[1]], id="utf8-bom"),
        pytest.param("00 007\n", [[7]], id="leading-zeros"),
    ],
)
def test_tolerates_messy_text(tmp_path, text, rows):
    data = _load_train(tmp_path, text)
    assert _rows(data.train) == rows
    assert data.n_users == len(rows)


def test_random_messy_file_matches_reference_parse(tmp_path):
    rng = np.random.default_rng(0)
    separators = [" ", "  ", "\t", " \t"]
    line_ends = ["\n", "\r\n", " \n", "\n\n"]
    lines = []
    for _ in range(300):
        user = int(rng.integers(50))
        items = rng.integers(80, size=rng.integers(0, 8)).tolist()
        sep = separators[rng.integers(len(separators))]
        end = line_ends[rng.integers(len(line_ends))]
        lines.append(sep.join(str(t) for t in [user, *items]) + end)
    path = _write(tmp_path, "train.txt", "".join(lines))
    data = load_split_dir(tmp_path)
    reference, max_user = _reference_parse(path)
    assert data.n_users == max_user + 1
    _assert_matches(data.train, reference, data.n_users)


def test_to_csr_counts_dropped_duplicates():
    parsed = splits_lib._Parsed(
        path="x",
        users=np.array([1, 0, 1, 1, 0]),
        items=np.array([2, 0, 2, 1, 0]),
        max_user=1,
    )
    csr, n_duplicates = splits_lib._to_csr(parsed, n_users=3, n_items=3)
    assert n_duplicates == 2
    assert _rows(csr) == [[0], [1, 2], []]


# Errors.


@pytest.mark.parametrize(
    "text, line, detail",
    [
        pytest.param("0 1\n\n1 abc 2\n", 3, "non-integer token 'abc'", id="word"),
        pytest.param("0 1.5\n", 1, "non-integer token '1.5'", id="float"),
        pytest.param("0 1\n1 +2\n", 2, "non-integer token '+2'", id="plus"),
        pytest.param("0 1_0\n", 1, "non-integer token '1_0'", id="underscore"),
        pytest.param("0 1\n1 3-4\n", 2, "non-integer token '3-4'", id="dash-inside"),
        pytest.param("0 1\r\n1 -\r\n", 2, "non-integer token '-'", id="lone-dash-crlf"),
        pytest.param("0 1\n1 é\n", 2, "non-integer token 'é'", id="non-ascii"),
        pytest.param("0 1\n2 4\n1 -3\n", 3, "negative id -3", id="negative-item"),
        pytest.param("-1 0\n", 1, "negative id -1", id="negative-user"),
        pytest.param("0 1\n1 2147483648\n", 2, "id 2147483648 exceeds", id="over-int32"),
        pytest.param("0 99999999999999999999999\n", 1, "id 9999", id="over-int64"),
    ],
)
def test_bad_token_names_file_and_line(tmp_path, text, line, detail):
    path = _write(tmp_path, "train.txt", text)
    with pytest.raises(DataError) as info:
        load_split_dir(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert detail in message
    assert "\n" not in message


def test_bad_token_in_other_files_names_them(tmp_path):
    _write(tmp_path, "train.txt", "0 1\n")
    _write(tmp_path, "valid.txt.gz", "0 1\n0 x\n")
    with pytest.raises(DataError, match=r"valid\.txt\.gz:2: non-integer token 'x'$"):
        load_split_dir(tmp_path)
    (tmp_path / "valid.txt.gz").unlink()
    _write(tmp_path, "not_candidate.txt", "5\n\n-2\n")
    with pytest.raises(DataError, match=r"not_candidate\.txt:3: negative id -2$"):
        load_split_dir(tmp_path)


def _error(path: pathlib.Path) -> str:
    with pytest.raises(DataError) as info:
        load_split_dir(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_directory(tmp_path):
    missing = tmp_path / "nowhere"
    assert _error(missing) == f"{missing}: no such split directory"


def test_missing_train_file(tmp_path):
    _write(tmp_path, "valid.txt", "0 1\n")
    assert _error(tmp_path) == f"{tmp_path}: no train.txt (or train.txt.gz)"


@pytest.mark.parametrize("text", ["", "\n \n", "0\n1\n"], ids=["empty", "blank", "users-only"])
def test_empty_train(tmp_path, text):
    path = _write(tmp_path, "train.txt", text)
    assert _error(tmp_path) == f"{path}: training set is empty"


def test_unreadable_gzip(tmp_path):
    _write(tmp_path, "train.txt", "0 1\n")
    path = tmp_path / "test_id.txt.gz"
    path.write_bytes(b"not gzip at all\n")
    assert _error(tmp_path).startswith(f"{path}: unreadable gzip file")
    path.write_bytes(gzip.compress(b"0 1\n1 2\n")[:-6])  # truncated
    assert _error(tmp_path).startswith(f"{path}: unreadable gzip file")


def test_plain_and_gzip_copies_conflict(tmp_path):
    _write(tmp_path, "train.txt", "0 1\n")
    _write(tmp_path, "train.txt.gz", "0 1\n")
    assert "both train.txt and train.txt.gz" in _error(tmp_path)
