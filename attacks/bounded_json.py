"""JSON from untrusted files, parsed with a nesting limit, so a hostile file is a clear error.

Python's parser recurses once per level: `[[[[...` a few thousand deep raises RecursionError
(a 500 in a service) and deep values are slow to walk later. Configs and records are shallow
(a Hugging Face config nests three or four levels), so a small limit costs nobody anything.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 64


class JsonTooDeep(ValueError):
    """The document nests arrays/objects more deeply than allowed."""


def nesting_depth(text: str | bytes) -> int:
    """The deepest array/object nesting in a JSON text, counted without parsing it.

    Brackets inside strings are skipped; the scan is linear and allocates nothing per level.
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def loads_bounded(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads`, refusing documents nested deeper than `max_depth` before parsing them.

    Raises JsonTooDeep (a ValueError) or json.JSONDecodeError.
    """
    if _may_be_deep(text, max_depth):
        depth = nesting_depth(text)
        if depth > max_depth:
            raise JsonTooDeep(f"nested {depth} levels deep (the limit is {max_depth})")
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - the depth scan comes first
        raise JsonTooDeep(f"nested more than {max_depth} levels deep") from None


def _may_be_deep(text: str | bytes, max_depth: int) -> bool:
    """Cheap pre-test: fewer opening brackets than the limit cannot nest past it."""
    if isinstance(text, str):
        return text.count("[") + text.count("{") > max_depth
    return text.count(b"[") + text.count(b"{") > max_depth
