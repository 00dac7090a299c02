"""Reading records (text, label, or a black-box model's outputs) from JSONL or CSV.

Errors point at the bad line, so a pipeline author can fix the file without guessing.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from attacks.bounded_json import JsonTooDeep, loads_bounded

Format = Literal["jsonl", "csv"]

_SUFFIX_FORMATS: dict[str, Format] = {".jsonl": "jsonl", ".csv": "csv"}
_OUTPUT_FIELDS = ("probs", "logits")
_LINE_SLACK = 1 << 20
"""Characters a JSONL line may have beyond twice the text limit (escapes, id, probs/logits),
so that a huge line is refused before it is parsed."""


@dataclass(frozen=True)
class Record:
    """One example; `id` lets results be joined back to the user's file.

    `text` is empty for prediction records (a black-box target's per-class `probs` or `logits`,
    for models leakgate never sees); `label` is None where the task needs none (language models).
    """

    text: str
    label: str | int | None
    id: str
    outputs: tuple[float, ...] | None = None
    outputs_kind: str | None = None  # "probs" | "logits"


class DatasetError(ValueError):
    """A problem in the user's data file; `location` is e.g. "line 7" or "row 3" when known."""

    def __init__(self, problem: str, location: str | None = None) -> None:
        super().__init__(f"{location}: {problem}" if location else problem)
        self.location = location
        self.problem = problem


def read_records(
    path: Path,
    fmt: Format | None = None,
    *,
    max_records: int | None = None,
    require_label: bool = True,
    max_text_chars: int | None = None,
) -> list[Record]:
    """Read and validate every record, so a bad file fails before any model work starts.

    JSONL locations are file line numbers; CSV locations are row numbers counting the
    header as row 1, as spreadsheets show them. Missing files raise OSError as usual.
    Each record needs `text`, or (JSONL only) `probs`/`logits` from a black-box model.
    A text longer than `max_text_chars` is refused (not cut): what is audited must be what
    the pipeline trained on, and a huge record is more likely a broken export than data.
    """
    path = Path(path)
    fmt = _format_of(path) if fmt is None else fmt
    required = ("label",) if require_label else ()
    if fmt == "jsonl":
        records = _read_jsonl(path, max_records, required, max_text_chars)
    elif fmt == "csv":
        records = _read_csv(path, max_records, ("text", *required), max_text_chars)
    else:
        raise DatasetError(f'unknown format "{fmt}" (use "jsonl" or "csv")')
    if not records:
        raise DatasetError("empty dataset: no records found")
    _check_outputs_agree(records)
    return records


def _check_outputs_agree(records: list[Record]) -> None:
    """Model outputs must be all present or all absent, of one kind and one width."""
    first = records[0]
    for number, record in enumerate(records, start=1):
        same_kind = record.outputs_kind == first.outputs_kind
        same_width = len(record.outputs or ()) == len(first.outputs or ())
        if not (same_kind and same_width):
            raise DatasetError(
                f"record {record.id!r} has {record.outputs_kind or 'no outputs'} of width "
                f"{len(record.outputs or ())}, but the first record has "
                f"{first.outputs_kind or 'no outputs'} of width {len(first.outputs or ())}",
                f"record {number}",
            )


def _format_of(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise DatasetError(
            f'cannot tell the format of "{path.name}": name it .jsonl or .csv, or give the format'
        )
    return _SUFFIX_FORMATS[suffix]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Decode line by line so a UTF-8 error can name its line; a leading BOM is dropped."""
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DatasetError(f"not valid UTF-8 ({error.reason})", f"line {number}") from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            yield number, line


def _read_jsonl(
    path: Path, max_records: int | None, required: tuple[str, ...], max_text_chars: int | None
) -> list[Record]:
    records: list[Record] = []
    seen: dict[str, str] = {}
    for number, line in _lines(path):
        if not line.strip():
            continue
        location = f"line {number}"
        if max_text_chars is not None and len(line) > 2 * max_text_chars + _LINE_SLACK:
            raise DatasetError(
                f"the line has {len(line)} characters; a record's text may have at most "
                f"{max_text_chars}",
                location,
            )
        try:
            item = loads_bounded(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"not valid JSON ({error.msg})", location) from None
        except JsonTooDeep as error:
            raise DatasetError(f"JSON {error}", location) from None
        if not isinstance(item, dict):
            raise DatasetError(f"expected a JSON object, got {_json_type(item)}", location)
        for name in required:
            if name not in item:
                raise DatasetError(f'missing field "{name}"', location)
        if "label" in required and item["label"] is None:
            raise DatasetError('"label" must be a string or an integer, got null', location)
        if "text" not in item and not any(name in item for name in _OUTPUT_FIELDS):
            raise DatasetError('missing field "text" (or "probs"/"logits")', location)
        _check_room(records, max_records, location)
        records.append(_record(item, str(number), location, seen, max_text_chars))
    return records


def _read_csv(
    path: Path, max_records: int | None, required: tuple[str, ...], max_text_chars: int | None
) -> list[Record]:
    records: list[Record] = []
    seen: dict[str, str] = {}
    reader = csv.reader(line for _, line in _lines(path))
    try:
        header = [name.strip() for name in next(reader, [])]
        if not any(header):
            raise DatasetError("empty dataset: no header row")
        _check_header(header, required)
        for number, row in enumerate(reader, start=2):
            if not any(field.strip() for field in row):
                continue
            location = f"row {number}"
            if len(row) != len(header):
                raise DatasetError(f"expected {len(header)} fields, found {len(row)}", location)
            _check_room(records, max_records, location)
            records.append(
                _record(
                    dict(zip(header, row, strict=True)), str(number), location, seen, max_text_chars
                )
            )
    except csv.Error as error:
        raise DatasetError(f"not valid CSV ({error})", f"line {reader.line_num}") from None
    return records


def _check_header(header: list[str], required: tuple[str, ...]) -> None:
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DatasetError(f'duplicate column "{duplicates[0]}"', "row 1")
    missing = [name for name in required if name not in header]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        names = ", ".join(f'"{name}"' for name in missing)
        found = ", ".join(name for name in header if name) or "none"
        raise DatasetError(f"missing column{plural} {names} (columns found: {found})", "row 1")


def _check_room(records: list[Record], max_records: int | None, location: str) -> None:
    if max_records is not None and len(records) >= max_records:
        raise DatasetError(f"too many records (the limit is {max_records})", location)


def _record(
    item: dict[str, Any],
    number: str,
    location: str,
    seen: dict[str, str],
    max_text_chars: int | None = None,
) -> Record:
    outputs, outputs_kind = _outputs(item, location)
    text = item.get("text", "")
    if not isinstance(text, str):
        raise DatasetError(f'"text" must be a string, got {_json_type(text)}', location)
    if max_text_chars is not None and len(text) > max_text_chars:
        raise DatasetError(
            f'"text" has {len(text)} characters, more than the limit of {max_text_chars}; '
            "split or shorten the record (the model scores at most its first max_length tokens)",
            location,
        )
    if outputs is None and not text.strip():
        raise DatasetError("empty text", location)
    label = item.get("label")
    if label is not None and (isinstance(label, bool) or not isinstance(label, str | int)):
        raise DatasetError(
            f'"label" must be a string or an integer, got {_json_type(label)}', location
        )
    if isinstance(label, str) and not label.strip():
        raise DatasetError("empty label", location)
    record_id = _record_id(item.get("id"), number, location)
    if record_id in seen:
        raise DatasetError(
            f'duplicate id "{record_id}" (first seen on {seen[record_id]})', location
        )
    seen[record_id] = location
    return Record(text=text, label=label, id=record_id, outputs=outputs, outputs_kind=outputs_kind)


def _outputs(item: dict[str, Any], location: str) -> tuple[tuple[float, ...] | None, str | None]:
    """A black-box model's per-class outputs: `probs` (summing to 1) or raw `logits`."""
    present = [name for name in _OUTPUT_FIELDS if name in item]
    if not present:
        return None, None
    if len(present) > 1:
        raise DatasetError('give either "probs" or "logits", not both', location)
    kind = present[0]
    values = item[kind]
    if (
        not isinstance(values, list)
        or len(values) < 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ):
        raise DatasetError(f'"{kind}" must be an array of at least two numbers', location)
    floats = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in floats):
        raise DatasetError(f'"{kind}" holds a non-finite number', location)
    if kind == "probs" and (min(floats) < 0 or abs(sum(floats) - 1) > 1e-3):
        raise DatasetError('"probs" must be non-negative and sum to 1', location)
    return floats, kind


def _record_id(value: Any, number: str, location: str) -> str:
    if value is None:
        return number
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DatasetError(
            f'"id" must be a string or an integer, got {_json_type(value)}', location
        )
    if isinstance(value, str) and not value.strip():
        raise DatasetError("empty id", location)
    return str(value)


def _json_type(value: Any) -> str:
    """The JSON name of a value's type, as the user wrote it."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    return names.get(type(value), type(value).__name__)
