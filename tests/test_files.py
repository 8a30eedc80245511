import json

from advjax.files import read_json_object, write_atomically


def test_write_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "r.json")
    write_atomically(path, "old")
    write_atomically(path, json.dumps({"a": 1}))
    assert read_json_object(path) == ({"a": 1}, "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_read_json_object_says_what_is_wrong(tmp_path):
    for text, problem in [("{cut", "unreadable (Expecting"), ("[1]", "not a JSON object")]:
        (tmp_path / "r.json").write_text(text)
        value, said = read_json_object(str(tmp_path / "r.json"))
        assert value is None and said.startswith(problem)
    value, said = read_json_object(str(tmp_path / "missing.json"))
    assert value is None and said.startswith("unreadable ([Errno 2]")
