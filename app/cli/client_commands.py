"""Client commands: audit, follow and gate from a pipeline, and manage policies and canaries.

They talk to a leakgate server over HTTP only (httpx, typer, rich): nothing here imports the
server, the worker or the attack library.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from app.audits.enums import FINAL_STATES, AuditState
from app.cli.common import (
    DEFAULT_SERVER,
    KeyOpt,
    PlainProgress,
    ServerOpt,
    audit_url,
    connected,
    console,
    is_terminal,
)
from app.cli.summary import (
    EXIT_INCONCLUSIVE,
    EXIT_PENDING,
    exit_code,
    print_gate,
    print_summary,
)
from app.client import LeakgateClient
from app.policies.enums import GateResult

cli = typer.Typer()
policy_cli = typer.Typer(
    help="Release-gate policies (tenant default, or per model name).", no_args_is_help=True
)
canaries_cli = typer.Typer(help="Canary sets to plant in training data.", no_args_is_help=True)
split_cli = typer.Typer(
    help="Audit splits: the service's coin decides which candidates to train on.",
    no_args_is_help=True,
)

TimeoutOpt = Annotated[
    float | None,
    typer.Option(help="With --wait: give up (exit 2) after this many seconds; default never."),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print the audit id, its dashboard URL and the result as JSON."),
]
GateOpt = Annotated[bool, typer.Option(help="Exit by the release gate of the policy.")]


@cli.command()
def audit(
    model: Annotated[
        Path,
        typer.Option(help="save_pretrained folder (safetensors).", exists=True, file_okay=False),
    ],
    members: Annotated[
        Path | None,
        typer.Option(help="JSONL/CSV the model trained on.", exists=True, dir_okay=False),
    ] = None,
    base_model: Annotated[
        Path | None,
        typer.Option(
            help="Base model folder when --model is a PEFT/LoRA adapter folder "
            "(adapter_config.json + adapter_model.safetensors).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    non_members: Annotated[
        Path | None,
        typer.Option(help="JSONL/CSV held out from training.", exists=True, dir_okay=False),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="Audit split id (see `split create`): its members and non-members, drawn by "
            "the service, instead of --members and --non-members."
        ),
    ] = None,
    max_record_occurrences: Annotated[
        int | None,
        typer.Option(help="Most times one record may occur in training (group privacy)."),
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
    name: Annotated[str | None, typer.Option(help="Model name (default: folder name).")] = None,
    version: Annotated[str | None, typer.Option(help="Model version label.")] = None,
    epsilon: Annotated[float | None, typer.Option(help="Claimed DP epsilon.")] = None,
    delta: Annotated[float, typer.Option(help="Claimed DP delta.")] = 1e-5,
    noise_multiplier: Annotated[
        float | None, typer.Option(help="DP-SGD noise multiplier (epsilon by an accountant).")
    ] = None,
    sample_rate: Annotated[float | None, typer.Option(help="DP-SGD sampling rate.")] = None,
    dp_epochs: Annotated[float | None, typer.Option(help="DP-SGD epochs.")] = None,
    dp_steps: Annotated[int | None, typer.Option(help="DP-SGD steps.")] = None,
    attack: Annotated[list[str] | None, typer.Option(help="Attack to run (repeatable).")] = None,
    population: Annotated[
        Path | None,
        typer.Option(
            help="More records from the same distribution: enables LiRA and RMIA.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    evaluation: Annotated[
        Path | None,
        typer.Option(
            help="Labelled held-out records to measure accuracy on (default: the non-members).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    reference_models: Annotated[
        int | None, typer.Option(help="Reference models the worker trains (default 8).")
    ] = None,
    include_text: Annotated[
        bool, typer.Option(help="Put record text in the records at risk.")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the verdict.")] = False,
    gate: Annotated[
        bool, typer.Option(help="With --wait: exit by the release gate of the policy.")
    ] = False,
    callback_url: Annotated[
        str | None, typer.Option(help="http(s) URL POSTed a signed summary when it ends.")
    ] = None,
    canary_set: Annotated[
        str | None, typer.Option(help="Measure this canary set (see `canaries create`).")
    ] = None,
    report_out: Annotated[Path | None, typer.Option(help="Write the report JSON here.")] = None,
    timeout: TimeoutOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Upload a model and its data, audit it, and with --wait exit by the verdict (or the gate).

    With --gate the exit code follows the release gate of the tenant's policy (see `policy`).
    The audit id goes to stdout (with --json: id, dashboard URL and result as JSON).
    """
    if gate and not wait:
        raise typer.BadParameter("--gate needs --wait", param_hint="--gate")
    if split is not None and (members is not None or non_members is not None):
        raise typer.BadParameter(
            "--split gives members and non-members: leave out --members and --non-members",
            param_hint="--split",
        )
    if split is None and (members is None or non_members is None):
        raise typer.BadParameter(
            "give --members and --non-members, or --split", param_hint="--members"
        )
    spec: dict[str, Any] = {"model": {"name": name or model.resolve().name, "version": version}}
    claim: dict[str, Any] = {"delta": delta}
    if epsilon is not None:
        claim["epsilon"] = epsilon
    if noise_multiplier is not None or sample_rate is not None:
        claim["dp_sgd"] = {
            "noise_multiplier": noise_multiplier,
            "sample_rate": sample_rate,
            "epochs": dp_epochs,
            "steps": dp_steps,
        }
    if len(claim) > 1:
        if max_record_occurrences is not None:
            claim["max_record_occurrences"] = max_record_occurrences
        spec["dp_claim"] = claim
    elif max_record_occurrences is not None:
        raise typer.BadParameter(
            "--max-record-occurrences qualifies a DP claim: give --epsilon or DP-SGD parameters",
            param_hint="--max-record-occurrences",
        )
    if split is not None:
        spec["split"] = split
    if attack:
        spec["attacks"] = attack
    if reference_models is not None:
        spec["references"] = {"count": reference_models}
    if include_text:
        spec["include_text"] = True
    if callback_url:
        spec["callback_url"] = callback_url
    if canary_set:
        spec["canary_set"] = canary_set
    with connected(server, api_key) as client:
        code = run_audit(
            client,
            model,
            members,
            non_members,
            spec,
            wait=wait,
            gate=gate,
            report_out=report_out,
            population=population,
            evaluation=evaluation,
            base_model=base_model,
            timeout_s=timeout,
            json_out=json_out,
            server=server,
        )
    raise typer.Exit(code)


def run_audit(
    client: LeakgateClient,
    model: Path,
    members: Path | None,
    non_members: Path | None,
    spec: dict[str, Any],
    *,
    wait: bool,
    gate: bool = False,
    report_out: Path | None = None,
    population: Path | None = None,
    evaluation: Path | None = None,
    base_model: Path | None = None,
    timeout_s: float | None = None,
    json_out: bool = False,
    server: str = DEFAULT_SERVER,
) -> int:
    """Upload, submit and optionally follow one audit; return the exit code."""
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    uploads = [("target", model, "model")]
    if base_model is not None:
        uploads.append(("base_model", base_model, "model"))
    if members is not None and non_members is not None:  # else the spec names a split
        uploads += [("members", members, "dataset"), ("non_members", non_members, "dataset")]
    if population is not None:
        uploads.append(("population", population, "dataset"))
    if evaluation is not None:
        uploads.append(("evaluation", evaluation, "dataset"))
    ids = {}
    with Progress(*columns, console=console, transient=True, disable=not is_terminal()) as bars:
        for field, path, kind in uploads:
            size = path.stat().st_size if path.is_file() else None
            bar = bars.add_task(f"uploading {path.name}", total=size)
            advance = lambda n, bar=bar: bars.advance(bar, n)  # noqa: E731
            if kind == "model":
                uploaded = client.upload_model(path, on_bytes=advance)
                for left in uploaded.pop("left_out", []):
                    console.print(f"[dim]not uploaded (not part of the model): {left}[/]")
            else:
                uploaded = client.upload(path, kind, on_bytes=advance)
            ids[field] = uploaded["id"]
            bars.update(bar, completed=bars.tasks[bar].completed, total=bars.tasks[bar].completed)
    submitted = client.submit({**spec, **ids})
    console.print(f"audit {submitted['id']} queued: {audit_url(server, submitted['id'])}")
    if not wait:
        _print_result(submitted, server, json_out=json_out, code=None)
        return 0
    return follow(
        client,
        submitted["id"],
        gate=gate,
        report_out=report_out,
        timeout_s=timeout_s,
        json_out=json_out,
        server=server,
    )


def follow(
    client: LeakgateClient,
    audit_id: str,
    *,
    gate: bool,
    report_out: Path | None = None,
    timeout_s: float | None = None,
    json_out: bool = False,
    server: str = DEFAULT_SERVER,
) -> int:
    """Wait for the audit (riding out server restarts), print the result, return the exit code."""

    def on_retry(exc: Exception, delay: float) -> None:
        console.print(f"[yellow]server not answering ({exc}); retrying in {delay:.0f} s[/]")

    if is_terminal():
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bars:
            bar = bars.add_task("queued", total=1.0)
            final = client.wait(
                audit_id,
                on_update=lambda a: bars.update(
                    bar, completed=a["progress"], description=a["stage"] or a["state"]
                ),
                on_retry=on_retry,
                timeout_s=timeout_s,
            )
    else:
        final = client.wait(
            audit_id, on_update=PlainProgress(), on_retry=on_retry, timeout_s=timeout_s
        )
    report = client.report(final["id"]) if final["state"] == AuditState.SUCCEEDED else None
    print_summary(console, final, report)
    if report is not None and report_out is not None:
        report_out.write_text(json.dumps(report, indent=2))
    code = exit_code(final, gate=gate)
    if code == EXIT_INCONCLUSIVE:
        console.print(
            "[yellow]warning: the verdict is inconclusive, neither a pass nor a violation: "
            f"exit code {EXIT_INCONCLUSIVE} (with --gate the policy decides)[/]"
        )
    _print_result(final, server, json_out=json_out, code=code)
    return code


def _print_result(audit: dict[str, Any], server: str, *, json_out: bool, code: int | None) -> None:
    """stdout carries the machine-readable result: the id, or with --json the whole outcome."""
    if not json_out:
        print(audit["id"])
        return
    fields = ("id", "state", "verdict", "gate", "error")
    result = {k: audit.get(k) for k in fields} | {"url": audit_url(server, audit["id"])}
    if code is not None:
        result["exit_code"] = code
    print(json.dumps(result))


@cli.command("wait")
def wait_command(
    audit_id: Annotated[str, typer.Argument(help="Audit id.")],
    gate: GateOpt = False,
    timeout: TimeoutOpt = None,
    report_out: Annotated[Path | None, typer.Option(help="Write the report JSON here.")] = None,
    json_out: JsonOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """Follow an audit already submitted until it ends; exit as `audit --wait` does."""
    with connected(server, api_key) as client:
        code = follow(
            client,
            audit_id,
            gate=gate,
            report_out=report_out,
            timeout_s=timeout,
            json_out=json_out,
            server=server,
        )
    raise typer.Exit(code)


@cli.command()
def status(
    audit_id: Annotated[str, typer.Argument(help="Audit id.")],
    gate: GateOpt = False,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """Print the audit as JSON (state, progress, verdict, gate); a summary goes to stderr.

    A finished audit exits as `audit --wait` does; one still queued or running exits 5.
    """
    with connected(server, api_key) as client:
        audit_read = client.audit(audit_id)
    console.print(
        f"audit {audit_read['id']}: {audit_read['state']} ({audit_read['progress']:.0%}, "
        f"{audit_read['stage']}), verdict {audit_read['verdict'] or '-'}; "
        f"{audit_url(server, audit_read['id'])}"
    )
    print_gate(console, audit_read)
    print(json.dumps(audit_read, indent=2))
    finished = audit_read["state"] in FINAL_STATES
    raise typer.Exit(exit_code(audit_read, gate=gate) if finished else EXIT_PENDING)


@cli.command("list")
def list_audits(
    model_name: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    state: Annotated[str | None, typer.Option(help="queued, running, succeeded, ...")] = None,
    verdict: Annotated[str | None, typer.Option(help="consistent, violation, ...")] = None,
    gate: Annotated[str | None, typer.Option(help="pass or fail.")] = None,
    limit: Annotated[int, typer.Option(help="How many (newest first).")] = 20,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """The tenant's audits, newest first: a table on stderr, the JSON page on stdout."""
    params = {"model_name": model_name, "state": state, "verdict": verdict, "gate": gate}
    filters = {k: v for k, v in params.items() if v is not None}
    with connected(server, api_key) as client:
        page = client.audits(limit=limit, filters=filters)
    for a in page["items"]:
        console.print(
            f"{a['id']}  {a['state']:<9} {a['verdict'] or '-':<12} gate {a['gate'] or '-':<4} "
            f"{a['model']['name']} {a['model'].get('version') or ''}",
            highlight=False,
        )
    console.print(f"{len(page['items'])} of {page['total']}", style="dim")
    print(json.dumps(page, indent=2))


@cli.command()
def artifacts(
    limit: Annotated[int, typer.Option(help="How many (newest first).")] = 50,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """The tenant's uploaded artifacts as JSON (kind, size, what validation learned)."""
    with connected(server, api_key) as client:
        page = client.artifacts(limit=limit)
    console.print(f"{len(page['items'])} of {page['total']}", style="dim")
    print(json.dumps(page, indent=2))


class ReportFormat(StrEnum):
    json = "json"
    md = "md"
    html = "html"
    junit = "junit"


@cli.command()
def report(
    audit_id: Annotated[str, typer.Argument(help="Audit id.")],
    format: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            help="json: the stored report; md: for a pull-request comment; html: a standalone "
            "file with the plots; junit: XML with one test case per gate rule.",
        ),
    ] = ReportFormat.json,
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """Fetch a succeeded audit's report, rendered by the server (exit 3 if it has none)."""
    with connected(server, api_key) as client:
        if format is ReportFormat.json:
            text = json.dumps(client.report(audit_id), indent=2) + "\n"
        else:
            text = client.rendered_report(audit_id, format.value)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")


ModelOpt = Annotated[
    str | None, typer.Option("--model", help="A model name (default: the tenant default).")
]


@policy_cli.command("set")
def policy_set(
    model_name: ModelOpt = None,
    max_auc: Annotated[float | None, typer.Option(help="Highest AUC of any attack.")] = None,
    max_tpr_at_0_1pct_fpr: Annotated[
        float | None, typer.Option(help="Highest TPR at 0.1% FPR of any attack (0..1).")
    ] = None,
    max_epsilon: Annotated[
        float | None, typer.Option(help="Highest empirical epsilon lower bound.")
    ] = None,
    max_canary_exposure_gap: Annotated[
        float | None,
        typer.Option(
            help="Highest canary exposure gap in bits (inserted minus held-out mean "
            "exposure); not measured without a canary set."
        ),
    ] = None,
    verdict_not_violation: Annotated[
        bool, typer.Option(help="Fail when the verdict is violation.")
    ] = True,
    no_inserted_canary_extracted: Annotated[
        bool, typer.Option(help="Fail when an inserted canary was extracted.")
    ] = True,
    inconclusive: Annotated[
        GateResult,
        typer.Option(
            help="What an inconclusive verdict does to the gate (with "
            "--verdict-not-violation): fail (closed, the default) or pass."
        ),
    ] = GateResult.FAIL,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """Set (replace whole) the tenant's default policy, or one model name's."""
    rules = {
        "max_auc": max_auc,
        "max_tpr_at_0_1pct_fpr": max_tpr_at_0_1pct_fpr,
        "max_epsilon_lower_bound": max_epsilon,
        "max_canary_exposure_gap": max_canary_exposure_gap,
        "verdict_not_violation": verdict_not_violation,
        "no_inserted_canary_extracted": no_inserted_canary_extracted,
        "inconclusive": inconclusive.value,
    }
    with connected(server, api_key) as client:
        print(json.dumps(client.set_policy(rules, model_name=model_name), indent=2))


@policy_cli.command("list")
def policy_list(server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = "") -> None:
    """The tenant's policies as JSON (none set: audits use the built-in default)."""
    with connected(server, api_key) as client:
        print(json.dumps(client.policies(), indent=2))


@policy_cli.command("delete")
def policy_delete(
    model_name: ModelOpt = None, server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = ""
) -> None:
    """Delete the tenant default or one model name's policy."""
    with connected(server, api_key) as client:
        client.delete_policy(model_name=model_name)


@canaries_cli.command("create")
def canaries_create(
    out: Annotated[Path, typer.Option(help="Write the training records (JSONL) here.")],
    template: Annotated[
        str, typer.Option(help="pin, phone, account, or text with {d} / {d*n} slots.")
    ] = "pin",
    count: Annotated[int, typer.Option(help="How many canaries.")] = 20,
    repetitions: Annotated[int, typer.Option(help="Copies of each inserted canary.")] = 20,
    label: Annotated[
        list[str] | None, typer.Option(help="A label to draw from (classifiers; repeat).")
    ] = None,
    kind: Annotated[str, typer.Option(help="secret, or audit (many, each inserted once).")] = (
        "secret"
    ),
    task: Annotated[str, typer.Option(help="text-classification or causal-lm.")] = (
        "text-classification"
    ),
    seed: Annotated[int | None, typer.Option(help="Seed (default: random).")] = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """Generate a canary set; write the records to mix into training and print the set's id."""
    body: dict[str, Any] = {
        "task": task,
        "kind": kind,
        "template": template,
        "count": count,
        "repetitions": repetitions,
        "seed": seed,
        "labels": label or None,
    }
    with connected(server, api_key) as client:
        created = client.create_canary_set(body)
    with out.open("w") as handle:
        for record in created["records"]:
            handle.write(json.dumps(record) + "\n")
    console.print(
        f"canary set {created['id']}: {created['n_inserted']} inserted, "
        f"{created['n_held_out']} held out; {len(created['records'])} records in {out}. "
        f"Train with them, then audit with --canary-set {created['id']}."
    )
    print(created["id"])


@cli.command("webhook-secret")
def webhook_secret(server: ServerOpt = DEFAULT_SERVER, api_key: KeyOpt = "") -> None:
    """Create or rotate the tenant's webhook signing secret and print it (shown once)."""
    with connected(server, api_key) as client:
        print(client.rotate_webhook_secret())


@split_cli.command("create")
def split_create(
    data: Annotated[
        Path,
        typer.Option(help="Candidate records (JSONL/CSV) to split.", exists=True, dir_okay=False),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Write the members to train on here (default: <data>-members.jsonl)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the coin (default: drawn by the service).")
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: KeyOpt = "",
) -> None:
    """Upload candidates; the service draws each one's membership with a fair coin. Writes the
    members to train on (JSONL) and prints the split id to audit with `audit --split`."""
    target = out or data.with_name(f"{data.stem}-members.jsonl")
    with connected(server, api_key) as client:
        dataset = client.upload(data, "dataset")
        body: dict[str, Any] = {"dataset": dataset["id"]}
        if seed is not None:
            body["seed"] = seed
        created = client.create_split(body)
        target.write_bytes(client.split_records(created["id"], "members"))
    console.print(
        f"audit split {created['id']}: {created['n_members']} members, "
        f"{created['n_non_members']} non-members of {created['n_candidates']} candidates; "
        f"members in {target}. Train on exactly those, then audit with --split {created['id']}."
    )
    print(created["id"])
