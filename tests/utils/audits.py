"""Audits driven as a worker drives them: claimed and finished through the real state machine
(`app.audits.lifecycle`), with reports computed by the attacks library on synthetic scores."""

from __future__ import annotations

from typing import Any

import numpy as np

WORKER = "test-worker"


def submit(client, auth, ids: dict[str, str], **extra) -> str:
    """Submit an audit of model tiny/1 (override with `model=`) through the API; its id."""
    spec = {"model": {"name": "tiny", "version": "1"}, **ids, **extra}
    response = client.post("/v1/audits", json=spec, headers=auth)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def build_report(
    shifts: dict[str, float],
    claim_epsilon: float,
    n: int = 200,
    *,
    sliced: bool = False,
    **extra,
):
    """A real report from the audit recipe: members' scores shifted up by `shift` SDs.

    sliced: give the records 3 classes and a correct/incorrect flag each, with class 2 and the
    misclassified records leaking most, so the report has slices and a most vulnerable class.
    """
    from app.core.timeutil import utcnow
    from attacks.audit_recipe import run_audit_recipe
    from attacks.report import DPClaim, TargetInfo, Utility

    rng = np.random.default_rng(7)
    claim = DPClaim(epsilon=claim_epsilon, delta=1e-5)
    is_member = np.arange(2 * n) < n
    scores = {
        name: np.where(is_member, shift, 0.0) + rng.normal(0, 1, 2 * n)
        for name, shift in shifts.items()
    }
    records, correct = None, None
    if sliced:
        from attacks.data import Record

        labels = np.arange(2 * n) % 3
        correct = rng.random(2 * n) < 0.8
        records = [
            Record(text=f"record {i}", label=int(labels[i]), id=f"r{i}") for i in range(2 * n)
        ]
        boost = is_member & ((labels == 2) | ~correct)
        scores = {name: values + 1.5 * boost for name, values in scores.items()}
    outcome = run_audit_recipe(
        scores, is_member, records, claim, n_bootstrap=200, blind=False, correct=correct
    )
    report = outcome.report(
        target=TargetInfo(task="text-classification", model_type="bert", num_labels=4),
        dp_claim=claim,
        utility=Utility(
            member_accuracy=1.0, non_member_accuracy=0.75, n_members=n, n_non_members=n
        ),
        device="cpu",
        timings={"load": 0.4, "score": 2.5, "attacks": 0.3},
        library_versions={"leakgate": "0.1.0"},
        created_at=utcnow(),
    )
    return report.model_copy(update=extra)


def claim(audit_id: str, *, progress: float | None = None, stage: str | None = None) -> None:
    """Claim the queued audit as `WORKER`, optionally reporting progress."""
    from app.audits import lifecycle
    from app.core.db import session_scope

    with session_scope() as db_session:
        assert lifecycle.claim(db_session, audit_id, worker=WORKER, stale_after_s=600)
    if progress is not None:
        advance(audit_id, progress, stage or "")


def advance(audit_id: str, progress: float, stage: str) -> None:
    from app.audits import lifecycle
    from app.core.db import session_scope

    with session_scope() as db_session:
        lifecycle.report_progress(
            db_session, audit_id, worker=WORKER, progress=progress, stage=stage
        )


def succeed(audit_id: str, report: Any, **summary: Any) -> None:
    """Finish the claimed audit with `report` (a LeakageReport or its JSON body) and the summary
    columns a worker writes, read from the report; `summary` overrides them (verdict, auc,
    epsilon_lower_bound, schema_version), e.g. for a body that is not a valid report."""
    from app.audits import lifecycle
    from app.core.db import session_scope
    from attacks.report import REPORT_SCHEMA_VERSION

    body = report if isinstance(report, dict) else report.model_dump(mode="json")
    columns: dict[str, Any] = {"schema_version": REPORT_SCHEMA_VERSION}
    if "verdict" in body:
        bound = body.get("epsilon_lower_bound")
        columns.update(
            verdict=body["verdict"]["status"],
            auc=max(a["auc"] for a in body["attacks"]),
            epsilon_lower_bound=bound["value"] if bound else None,
        )
    columns.update(summary)
    with session_scope() as db_session:
        assert lifecycle.succeed(db_session, audit_id, worker=WORKER, report_body=body, **columns)


def claim_and_succeed(audit_id: str, report: Any, **summary: Any) -> None:
    """Claim the queued audit and finish it with `report`, as a worker does."""
    claim(audit_id)
    succeed(audit_id, report, **summary)
