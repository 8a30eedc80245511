"""Tests for advjax.data.discovery: which file of a split directory plays which role."""

from __future__ import annotations

import importlib.resources
import json
import pathlib

import pytest

from advjax.data import discovery
from advjax.errors import ConfigError, DataError


def _touch(root: pathlib.Path, *names: str) -> pathlib.Path:
    root.mkdir(exist_ok=True)
    for name in names:
        (root / name).write_text("0 1\n")
    return root


def _names(files: discovery.SplitFiles) -> dict[str, str | None]:
    def name(file):
        return None if file is None else file.name

    return {
        "train": name(files.train),
        "valid": name(files.valid),
        **{role: name(f) for role, f in files.tests.items()},
        "not_candidate": name(files.not_candidate),
    }


def _error(root: pathlib.Path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        discovery.discover(root, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# Default names.


def test_default_names(tmp_path):
    root = _touch(
        tmp_path, "train.txt", "valid.txt.gz", "test_ood_2.txt", "test_id.txt", "test.txt.gz"
    )
    _touch(root, "not_candidate.txt", "notes.md", "train_old.txt")
    assert _names(discovery.discover(root)) == {
        "train": "train.txt",
        "valid": "valid.txt.gz",
        "test_id": "test_id.txt",
        "test_ood_2": "test_ood_2.txt",
        "test": "test.txt.gz",
        "not_candidate": "not_candidate.txt",
    }


def test_embedded_coat_is_found_as_a_package_resource():
    root = importlib.resources.files("advjax.data.datasets") / "coat"
    files = discovery.discover(root)
    assert files.train.name == "train.txt" and files.valid.name == "valid.txt"
    assert list(files.tests) == ["test_id", "test_ood"] and files.not_candidate is None


# The train_file argument.


def test_train_file_argument_picks_the_train_file(tmp_path):
    root = _touch(tmp_path, "train.txt", "train_reconstructed.txt.gz", "valid.txt")
    files = discovery.discover(root, train_file="train_reconstructed")
    assert _names(files) == {
        "train": "train_reconstructed.txt.gz",
        "valid": "valid.txt",
        "not_candidate": None,
    }
    assert discovery.discover(root, train_file="train").train.name == "train.txt"
    assert discovery.discover(root, train_file=None).train.name == "train.txt"


def test_missing_train_names_the_candidates_and_the_flag(tmp_path):
    root = _touch(tmp_path, "train_reconstructed.txt", "valid.txt")
    assert _error(root) == (
        f"{root}: no train.txt (or train.txt.gz); found train_reconstructed.txt: "
        "pass --train_file=train_reconstructed, or name it in split.json"
    )
    _touch(root, "train_b.txt.gz")
    assert _error(root) == (
        f"{root}: no train.txt (or train.txt.gz); found train_b.txt.gz, "
        "train_reconstructed.txt: pass --train_file=STEM with STEM one of train_b, "
        "train_reconstructed, or name it in split.json"
    )


def test_missing_explicit_train_file(tmp_path):
    root = _touch(tmp_path, "train_reconstructed.txt")
    assert _error(root, train_file="train_rebuilt") == (
        f"{root}: no train_rebuilt.txt (or train_rebuilt.txt.gz) (--train_file=train_rebuilt); "
        "found train_reconstructed.txt: pass --train_file=train_reconstructed"
    )
    _touch(root, "train.txt")
    (root / "train_reconstructed.txt").unlink()
    assert _error(root, train_file="train_x") == (
        f"{root}: no train_x.txt (or train_x.txt.gz) (--train_file=train_x)"
    )


def test_without_candidates_the_message_is_unchanged(tmp_path):
    root = _touch(tmp_path, "valid.txt", "trainset.txt", "train_notes.md")
    assert _error(root) == f"{root}: no train.txt (or train.txt.gz)"


@pytest.mark.parametrize(
    "bad", ["", "train.txt", "train_reconstructed.txt.gz", "sub/train", "..", "a\\b", 3]
)
def test_train_file_must_be_a_bare_stem(tmp_path, bad):
    root = _touch(tmp_path, "train.txt")
    with pytest.raises(ConfigError, match=r"^--train_file must be a file stem"):
        discovery.discover(root, train_file=bad)


def test_explicit_train_file_has_the_plain_and_gzip_conflict_too(tmp_path):
    root = _touch(tmp_path, "train_r.txt", "train_r.txt.gz")
    assert _error(root, train_file="train_r") == (
        f"{root}: both train_r.txt and train_r.txt.gz exist; keep one"
    )


# split.json.


def _split_json(root: pathlib.Path, value) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    (root / "split.json").write_text(text)


def test_split_json_declares_the_train_file(tmp_path):
    root = _touch(tmp_path, "train_reconstructed.txt", "valid.txt", "test_id.txt")
    _split_json(root, {"train": "train_reconstructed.txt"})
    assert _names(discovery.discover(root)) == {
        "train": "train_reconstructed.txt",
        "valid": "valid.txt",
        "test_id": "test_id.txt",
        "not_candidate": None,
    }


def test_train_file_argument_wins_over_split_json(tmp_path):
    root = _touch(tmp_path, "train.txt", "train_a.txt", "train_b.txt.gz")
    _split_json(root, {"train": "train_a.txt"})
    assert discovery.discover(root).train.name == "train_a.txt"
    assert discovery.discover(root, train_file="train_b").train.name == "train_b.txt.gz"
    assert discovery.discover(root, train_file="train").train.name == "train.txt"


def test_split_json_declares_every_role(tmp_path):
    root = _touch(
        tmp_path, "tr.txt", "va.txt.gz", "in.txt", "out.txt", "out3.txt", "nc.txt", "test.txt"
    )
    _touch(root, "valid.txt", "test_ood_1.txt")  # left out: split.json names others
    _split_json(
        root,
        {
            "not_candidate": "nc.txt",
            "test_ood_3": "out3.txt",
            "test_ood": "out.txt",
            "test_id": "in.txt",
            "valid": "va.txt.gz",
            "train": "tr.txt",
        },
    )
    files = discovery.discover(root)
    assert _names(files) == {
        "train": "tr.txt",
        "valid": "va.txt.gz",
        "test_id": "in.txt",
        "test_ood": "out.txt",
        "test_ood_1": "test_ood_1.txt",  # not declared: found by its default name
        "test_ood_3": "out3.txt",
        "test": "test.txt",
        "not_candidate": "nc.txt",
    }
    assert list(files.tests) == ["test_id", "test_ood", "test_ood_1", "test_ood_3", "test"]


def test_split_json_without_train_falls_back_to_the_default(tmp_path):
    root = _touch(tmp_path, "train.txt", "v.txt")
    _split_json(root, {"valid": "v.txt"})
    assert _names(discovery.discover(root))["train"] == "train.txt"
    (root / "train.txt").unlink()
    _touch(root, "train_reconstructed.txt")
    assert "pass --train_file=train_reconstructed" in _error(root)


@pytest.mark.parametrize(
    "text, detail",
    [
        pytest.param('{"train": "a.txt"', "not valid JSON (", id="truncated"),
        pytest.param("", "not valid JSON (", id="empty"),
        pytest.param("\n{\n'train': 1}\n", "not valid JSON (", id="single-quotes"),
        pytest.param('["train.txt"]', "not a JSON object (role -> file name)", id="list"),
        pytest.param(
            '{"training": "train.txt"}',
            "unknown role 'training' (roles: train, valid, not_candidate, test_id, "
            "test_ood, test_ood_K, test)",
            id="unknown-role",
        ),
        pytest.param('{"test_ood_01": "train.txt"}', "unknown role 'test_ood_01'", id="zero-k"),
        pytest.param(
            '{"train": 3}',
            "train must be the name of a file in this directory, got 3",
            id="not-a-string",
        ),
        pytest.param(
            '{"train": "../elsewhere/train.txt"}',
            "train must be the name of a file in this directory, got '../elsewhere/train.txt'",
            id="path",
        ),
        pytest.param(
            '{"valid": "a\\nb.txt"}',
            "valid must be the name of a file in this directory, got 'a\\nb.txt'",
            id="newline",
        ),
        pytest.param(
            '{"train": "train_r.txt"}',
            "train is train_r.txt, which is not a file in this directory",
            id="missing-file",
        ),
    ],
)
def test_malformed_split_json_is_one_line_naming_it(tmp_path, text, detail):
    root = _touch(tmp_path, "train.txt")
    _split_json(root, text)
    message = _error(root)
    assert message.startswith(f"{root / 'split.json'}: ")
    assert detail in message


def test_one_file_in_two_roles(tmp_path):
    root = _touch(tmp_path, "train.txt", "valid.txt")
    _split_json(root, {"test_id": "valid.txt"})
    assert _error(root) == f"{root}: valid.txt would be read as both valid and test_id"
    (root / "split.json").unlink()
    assert _error(root, train_file="valid") == (
        f"{root}: valid.txt would be read as both train and valid"
    )


def test_not_a_directory(tmp_path):
    assert _error(tmp_path / "nowhere") == f"{tmp_path / 'nowhere'}: no such split directory"
    path = _touch(tmp_path, "train.txt") / "train.txt"
    assert _error(path) == f"{path}: is a file, not a split directory"
