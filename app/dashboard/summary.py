"""Key numbers of one audit for lists and trends, read from a stored report body.

The list and the model page show a few numbers per audit without validating whole reports
(each holds ROC curves); they are read here from the raw JSON, defensively, so that a report
written by an older or newer schema shows "n/a" for what it lacks instead of breaking a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attacks.report import LOW_FPR


@dataclass(frozen=True)
class KeyNumbers:
    """What a list row or a trend point needs beyond the audit's own summary columns."""

    tpr_at_low_fpr: float | None = None
    tpr_at_low_fpr_resolved: bool = True
    n_non_members: int | None = None
    canaries_extracted: int | None = None
    canaries_inserted: int | None = None
    member_accuracy: float | None = None
    non_member_accuracy: float | None = None
    accuracy: float | None = None  # on the evaluation set, or the non-members


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _best_tpr_at(attacks: list[Any], fpr: float) -> tuple[float | None, bool]:
    """The highest TPR any attack reaches at `fpr`, and whether that FPR was measurable."""
    best, resolved = None, True
    for attack in attacks:
        points = attack.get("tpr_at_fpr") if isinstance(attack, dict) else None
        for point in points if isinstance(points, list) else []:
            if not isinstance(point, dict):
                continue
            tpr, at = _number(point.get("tpr")), _number(point.get("fpr"))
            if tpr is None or at is None or abs(at - fpr) > fpr * 1e-6:
                continue
            if best is None or tpr > best:
                best, resolved = tpr, bool(point.get("resolved", True))
    return best, resolved


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def key_numbers(body: dict[str, Any] | None) -> KeyNumbers:
    """Key numbers of a report body; an absent body or part gives None fields."""
    if not isinstance(body, dict):
        return KeyNumbers()
    attacks = _list(body.get("attacks"))
    tpr, resolved = _best_tpr_at(attacks, LOW_FPR)
    non_members = [_count(a.get("n_non_members")) for a in attacks if isinstance(a, dict)]
    canary_summary = _dict(_dict(body.get("canaries")).get("summary"))
    utility = _dict(body.get("utility"))
    return KeyNumbers(
        tpr_at_low_fpr=tpr,
        tpr_at_low_fpr_resolved=resolved,
        n_non_members=max((n for n in non_members if n is not None), default=None),
        canaries_extracted=_count(canary_summary.get("n_extracted_inserted")),
        canaries_inserted=_count(canary_summary.get("n_inserted")),
        member_accuracy=_number(utility.get("member_accuracy")),
        non_member_accuracy=_number(utility.get("non_member_accuracy")),
        accuracy=_number(utility.get("accuracy")),
    )
