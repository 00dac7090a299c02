"""Clean record sets before any statistic: duplicates and member/non-member overlaps.

A record that occurs k times in training is protected only as a group of k, and a text in
both files is both a member and a non-member; either makes a per-record test a false
accusation waiting to happen. Records are normalised (Unicode NFC, casefold, whitespace
collapsed) and hashed; within each set one copy of each record is kept, and texts found in
both sets are dropped from both. The one-run statistics that may decide a verdict go one step
further and use only records that occur once in their file: a member copied twice in the
members file most likely occurs twice in training, where the per-record claim does not speak
for it (a declared `max_record_occurrences` covers what the file cannot show).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from attacks.data import Record
from attacks.report import DataChecks, DuplicateCount

NORMALISATION = (
    "Unicode NFC, casefold, whitespace collapsed; duplicates by text + label, overlaps by "
    "text (prediction records: by record id)"
)
EXAMPLES = 5
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """The form two copies of one text share, whatever their case or spacing."""
    return _SPACE.sub(" ", unicodedata.normalize("NFC", text).casefold()).strip()


def _sha(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def record_key(record: Record) -> str:
    """Hash of the normalised text and label; prediction records (no text) by their id."""
    if not record.text:
        return _sha("id\x1f" + record.id)
    return _sha(
        normalise(record.text) + "\x1f" + ("" if record.label is None else str(record.label))
    )


def text_key(record: Record) -> str:
    """Hash of the normalised text alone: the same text in both sets is an overlap, whatever
    its label; prediction records by their id."""
    if not record.text:
        return _sha("id\x1f" + record.id)
    return _sha(normalise(record.text))


@dataclass(frozen=True)
class CleanRecords:
    """Which audited records the statistics keep, and the report section saying why."""

    keep: np.ndarray  # one copy of each record, overlaps dropped: indices, in order
    once: np.ndarray  # of those, the records that occur once in their file
    section: DataChecks
    max_member_copies: int


def check_records(records: Sequence[Record], is_member: np.ndarray) -> CleanRecords:
    """Keep the first copy of each record within its set; drop texts found in both sets."""
    truth = np.asarray(is_member, dtype=bool)
    if len(records) != truth.size:
        raise ValueError("records and is_member must have the same length")
    seen: dict[tuple[bool, str], int] = {}
    copies: dict[tuple[bool, str], int] = {}
    duplicate_ids: dict[bool, list[str]] = {True: [], False: []}
    first: list[int] = []
    for index, record in enumerate(records):
        key = (bool(truth[index]), record_key(record))
        copies[key] = copies.get(key, 0) + 1
        if key in seen:
            duplicate_ids[key[0]].append(record.id)
            continue
        seen[key] = index
        first.append(index)
    member_texts = {text_key(records[i]) for i in first if truth[i]}
    non_member_texts = {text_key(records[i]) for i in first if not truth[i]}
    both = member_texts & non_member_texts
    overlap_ids = [records[i].id for i in first if truth[i] and text_key(records[i]) in both]
    keep = np.array([i for i in first if text_key(records[i]) not in both], dtype=np.int64)
    member_copies = [n for (member, _), n in copies.items() if member]
    once = np.array(
        [i for i in keep if copies[(bool(truth[i]), record_key(records[i]))] == 1], dtype=np.int64
    )
    section = DataChecks(
        normalisation=NORMALISATION,
        n_members_given=int(truth.sum()),
        n_non_members_given=int((~truth).sum()),
        n_members=int(truth[keep].sum()) if keep.size else 0,
        n_non_members=int((~truth[keep]).sum()) if keep.size else 0,
        duplicate_members=_count(duplicate_ids[True]),
        duplicate_non_members=_count(duplicate_ids[False]),
        in_both=DuplicateCount(count=len(both), example_ids=overlap_ids[:EXAMPLES]),
        n_single_copy=int(once.size),
    )
    return CleanRecords(
        keep=keep, once=once, section=section, max_member_copies=max(member_copies, default=1)
    )


def _count(ids: list[str]) -> DuplicateCount:
    return DuplicateCount(count=len(ids), example_ids=ids[:EXAMPLES])
