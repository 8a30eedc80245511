"""Tests for advjax.data.tokenize: a file's bytes to integer tokens and their lines."""

from __future__ import annotations

import gzip
import pathlib

import numpy as np
import pytest

from advjax.data import tokenize
from advjax.errors import DataError


def _tokens(data: bytes) -> tuple[list[int], list[int]]:
    values, line_idx = tokenize.tokenize(tokenize.normalise(data), "f")
    assert values.dtype == np.int64 and line_idx.shape == values.shape
    return values.tolist(), line_idx.tolist()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"0 2 1\n1 0\n", id="lf"),
        pytest.param(b"0 2 1\r\n1 0\r\n", id="crlf"),
        pytest.param(b"0 2 1\r1 0\r", id="lone-cr"),
        pytest.param(b"\xef\xbb\xbf0 2 1\n1 0", id="bom-no-final-newline"),
        pytest.param(b"0\t2 \t1  \n\x0b1 0\x0c\n", id="tabs-and-odd-spaces"),
    ],
)
def test_line_ends_and_spaces_give_the_same_tokens(data):
    assert _tokens(data) == ([0, 2, 1, 1, 0], [0, 0, 0, 1, 1])


def test_blank_lines_count_towards_line_numbers():
    assert _tokens(b"\n0 1\n\n \n2\r\n\r\n3 4\n") == ([0, 1, 2, 3, 4], [1, 1, 4, 6, 6])


def test_empty_and_blank_files_have_no_tokens():
    for data in (b"", b"\n", b" \r\n\t\n", tokenize._UTF8_BOM):
        assert _tokens(data) == ([], [])


def test_normalise_keeps_lf_files_as_they_are():
    data = b"0 1\n2 3\n"
    assert tokenize.normalise(data) is data
    assert tokenize.normalise(b"\xef\xbb\xbf0\r\n1\r2") == b"0\n1\n2"


def test_int32_range_is_accepted_to_its_last_value():
    assert _tokens(b"0 2147483647 007\n") == ([0, 2**31 - 1, 7], [0, 0, 0])


@pytest.mark.parametrize(
    "data, message",
    [
        pytest.param(b"0 1\n\n1 abc\n", "f:3: non-integer token 'abc'", id="word"),
        pytest.param(b"0 1\r\n1 2\r\n-4\r\n", "f:3: negative id -4", id="negative-crlf"),
        pytest.param(
            b"1 2147483648\n", "f:1: id 2147483648 exceeds the int32 limit 2147483647", id="big"
        ),
        pytest.param(b"0\n\xff\n", "f:2: non-integer token '\\\\xff'", id="not-utf8"),
    ],
)
def test_bad_token_names_file_and_line(data, message):
    with pytest.raises(DataError) as info:
        tokenize.tokenize(tokenize.normalise(data), "f")
    assert str(info.value) == message


def test_read_tokens_reads_plain_and_gzip_files(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_bytes(b"0 5\r\n\r\n1 6\r\n")
    packed = tmp_path / "a.txt.gz"
    packed.write_bytes(gzip.compress(b"0 5\n\n1 6\n"))
    for file in (plain, packed):
        tokens = tokenize.read_tokens(file)
        assert tokens.path == str(file)
        assert tokens.values.tolist() == [0, 5, 1, 6]
        assert tokens.line_idx.tolist() == [0, 0, 2, 2]


def test_bad_token_in_gzip_file_names_the_gz_file(tmp_path):
    packed = tmp_path / "a.txt.gz"
    packed.write_bytes(gzip.compress(b"0 1\n0 x\n"))
    with pytest.raises(DataError) as info:
        tokenize.read_tokens(packed)
    assert str(info.value) == f"{packed}:2: non-integer token 'x'"


def test_corrupt_gzip_and_unreadable_file(tmp_path):
    packed = tmp_path / "a.txt.gz"
    packed.write_bytes(b"plain text, not gzip\n")
    with pytest.raises(DataError, match=r"a\.txt\.gz: unreadable gzip file \(.+\)$"):
        tokenize.read_tokens(packed)
    missing = tmp_path / "gone.txt"
    with pytest.raises(DataError) as info:
        tokenize.read_tokens(missing)
    message = str(info.value)
    assert message.startswith(f"{missing}: cannot read (") and "\n" not in message


def test_show_path_escapes_what_would_break_the_line():
    assert tokenize.show_path(pathlib.Path("/a/b c")) == "/a/b c"
    assert tokenize.show_path("/a/two\nlines") == "'/a/two\\nlines'"
    assert tokenize.one_line(OSError("first\n  second")) == "first second"
    assert tokenize.one_line(EOFError()) == "EOFError"
