"""Tests for reading labelled records from JSONL and CSV files."""

import json

import pytest

from attacks.data import DatasetError, Record, read_records


def _write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _jsonl(*items) -> str:
    return "".join(item if isinstance(item, str) else json.dumps(item) + "\n" for item in items)


def test_good_jsonl(tmp_path):
    path = _write(
        tmp_path,
        "d.jsonl",
        _jsonl(
            {"text": "great film", "label": "pos"},
            "\n",
            {"text": "dull", "label": 0, "id": "r-9"},
            {"text": "ünïcode ✓", "label": "neg", "id": 17},
        ),
    )
    assert read_records(path) == [
        Record(text="great film", label="pos", id="1"),
        Record(text="dull", label=0, id="r-9"),
        Record(text="ünïcode ✓", label="neg", id="17"),
    ]


def test_good_csv_with_quotes_bom_and_extra_columns(tmp_path):
    content = '\ufefftext,label,source\n"hello, world",pos,a\n"two\nlines",1,b\n\n"x",neg,c\n'
    path = _write(tmp_path, "d.csv", content)
    assert read_records(path) == [
        Record(text="hello, world", label="pos", id="2"),
        Record(text="two\nlines", label="1", id="3"),  # CSV labels stay strings
        Record(text="x", label="neg", id="5"),
    ]


def test_csv_id_column(tmp_path):
    path = _write(tmp_path, "d.csv", "id,text,label\nabc,hi,pos\n")
    assert read_records(path) == [Record(text="hi", label="pos", id="abc")]


def test_explicit_format_overrides_suffix(tmp_path):
    path = _write(tmp_path, "data.txt", _jsonl({"text": "a", "label": "b"}))
    assert read_records(path, "jsonl") == [Record(text="a", label="b", id="1")]


def _error(path, **kwargs) -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        read_records(path, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("lines", "location", "problem"),
    [
        (['{"text": "a", "label": "x"}', '{"text": "b", '], "line 2", "not valid JSON"),
        (['{"text": "a", "label": "x"}', "[1, 2]"], "line 2", "expected a JSON object"),
        (
            ['{"text": "a", "label": "x"}'] * 6 + ['{"text": "a"}'],
            "line 7",
            'missing field "label"',
        ),
        (['{"label": "x"}'], "line 1", 'missing field "text"'),
        (['{"text": 5, "label": "x"}'], "line 1", '"text" must be a string'),
        (['{"text": "a", "label": "x"}', '{"text": "  ", "label": "x"}'], "line 2", "empty text"),
        (['{"text": "a", "label": true}'], "line 1", '"label" must be a string or an integer'),
        (['{"text": "a", "label": 1.5}'], "line 1", '"label" must be a string or an integer'),
        (['{"text": "a", "label": null}'], "line 1", '"label" must be a string or an integer'),
        (['{"text": "a", "label": ""}'], "line 1", "empty label"),
        (
            ['{"text": "a", "label": "x", "id": "k"}', '{"text": "b", "label": "x", "id": "k"}'],
            "line 2",
            'duplicate id "k"',
        ),
    ],
)
def test_jsonl_errors_name_line_and_problem(tmp_path, lines, location, problem):
    error = _error(_write(tmp_path, "d.jsonl", "\n".join(lines) + "\n"))
    assert error.location == location
    assert str(error).startswith(f"{location}: ")
    assert problem in str(error)


def test_blank_jsonl_lines_are_skipped_but_still_counted(tmp_path):
    error = _error(_write(tmp_path, "d.jsonl", '\n\n{"text": "a", "label": 1}\n\n{"text": ""}\n'))
    assert error.location == "line 5"


@pytest.mark.parametrize(
    ("content", "location", "problem"),
    [
        ("text,intent\nhi,x\n", "row 1", 'missing column "label" (columns found: text, intent)'),
        ("body,intent\nhi,x\n", "row 1", 'missing columns "text", "label"'),
        ("text,label,text\nhi,x,y\n", "row 1", 'duplicate column "text"'),
        ("text,label\nhi,x\nyo,y\n,z\n", "row 4", "empty text"),
        ("text,label\nhi,x\nyo\n", "row 3", "expected 2 fields, found 1"),
        ("text,label\nhi,\n", "row 2", "empty label"),
    ],
)
def test_csv_errors_name_row_and_problem(tmp_path, content, location, problem):
    error = _error(_write(tmp_path, "d.csv", content))
    assert error.location == location
    assert problem in str(error)
    assert str(error).startswith(f"{location}: ")


def test_bad_utf8_names_the_line(tmp_path):
    content = b'{"text": "ok", "label": 1}\n{"text": "caf\xe9", "label": 1}\n'
    error = _error(_write(tmp_path, "d.jsonl", content))
    assert error.location == "line 2"
    assert "UTF-8" in str(error)
    error = _error(_write(tmp_path, "d.csv", b"text,label\nok,1\ncaf\xe9,1\n"))
    assert error.location == "line 3"


def test_too_many_records(tmp_path):
    path = _write(tmp_path, "d.jsonl", _jsonl(*[{"text": "a", "label": 1}] * 4))
    assert len(read_records(path, max_records=4)) == 4
    error = _error(path, max_records=3)
    assert error.location == "line 4"
    assert "too many records" in str(error) and "3" in str(error)
    csv_path = _write(tmp_path, "d.csv", "text,label\na,1\nb,1\nc,1\n")
    assert _error(csv_path, max_records=2).location == "row 4"


@pytest.mark.parametrize(
    ("name", "content"),
    [("d.jsonl", ""), ("d.jsonl", "\n  \n"), ("d.csv", ""), ("d.csv", "text,label\n")],
)
def test_empty_dataset(tmp_path, name, content):
    error = _error(_write(tmp_path, name, content))
    assert "empty dataset" in str(error)


@pytest.mark.parametrize("name", ["d.json", "d.txt", "d"])
def test_unknown_format(tmp_path, name):
    error = _error(_write(tmp_path, name, _jsonl({"text": "a", "label": 1})))
    assert error.location is None
    assert "format" in str(error)
    assert "format" in str(_error(_write(tmp_path, "d.jsonl", "{}"), fmt="parquet"))


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)
