"""One membership attack end to end: leakgate against IBM ART and ML Privacy Meter.

Every tool audits the same trained intent classifier on the same member and non-member
records, each in its own fresh child process (wall time from interpreter start to exit, peak
RSS of that process alone). Each tool loads the model from disk and reads the record files
itself, scores every record once, and produces membership scores:

- `leakgate`: what an audit runs (`workers.pipeline`): `TextClassifier.load`, `read_records`,
  `logits`, `classifier_signals`, the registry's `loss` attack, `evaluate_attack` with its
  bootstrap CIs, and the empirical epsilon lower bound.
- `leakgate-no-bootstrap`: the same, but point estimates only (`auc`, `roc_curve`,
  `tpr_at_fpr`) in place of `evaluate_attack`, to show what the CIs cost.
- `art-rule-based`: ART's `MembershipInferenceBlackBoxRuleBased` ("member if classified
  correctly") on every record; its scores are 0/1.
- `art-loss-nn`, `art-loss-rf`: ART's `MembershipInferenceBlackBox(input_type="loss")` with its
  default neural-network or random-forest attack model, fitted on one half of the members and
  non-members and asked for probabilities on the other half.
- `privacy-meter-population`: privacy-meter 1.0.1's `Audit` with `MetricEnum.POPULATION` (a
  loss threshold set at quantiles of the loss on population records): targets are all members
  and the evaluation half of the non-members, the population is the other non-member half.
- `baseline`: imports torch and transformers, loads the model and reads the records, nothing
  more: the memory and time every tool pays before it attacks anything.

Both peers take a `torch.nn.Module` over one input tensor, so they get the same Hugging Face
model behind a small adapter (token ids in, logits out, attention mask from the pad id), with
every record tokenized by the model's own tokenizer and padded to the longest record, as their
fixed `input_shape` requires. Each tool thus scores every record exactly once.

AUCs are compared on one common evaluation half (the same members and non-members for every
tool), computed with scikit-learn's `roc_auc_score` from each tool's own per-record scores after
its clock stopped; each tool's own headline number is kept too.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import Payload, Stopwatch, Target, child_main, median, run_child

if TYPE_CHECKING:
    import numpy as np

MODULE = "bench.end_to_end_vs_peers"
LEAKGATE = "leakgate"
TOOLS = (
    "baseline",
    "leakgate",
    "leakgate-no-bootstrap",
    "art-rule-based",
    "art-loss-nn",
    "art-loss-rf",
    "privacy-meter-population",
)
PEERS = ("art-rule-based", "art-loss-nn", "art-loss-rf", "privacy-meter-population")
TARGET_SPEEDUP = 3.0


def settings(quick: bool) -> Payload:
    """Audit defaults (batch 32, max_length 128, 1000 bootstrap resamples, delta 1e-5)."""
    return {
        "batch_size": 32,
        "max_length": 128,
        "n_bootstrap": 1000,
        "delta": 1e-5,
        "seed": 0,
        "repeats": 1 if quick else 2,
    }


def split_halves(n: int, seed: int, who: str) -> tuple[list[int], list[int]]:
    """A seeded random split of range(n) into a fitting half and an evaluation half."""
    order = list(range(n))
    random.Random(f"bench-split:{who}:{seed}").shuffle(order)
    half = n // 2
    return sorted(order[:half]), sorted(order[half:])


def run(target: Target, *, quick: bool, tools: tuple[str, ...] = TOOLS) -> Payload:
    """Run every tool `repeats` times (rotating the order each round) and summarise."""
    config = settings(quick)
    n_members = _count_lines(target.members)
    n_non_members = _count_lines(target.non_members)
    fit_m, eval_m = split_halves(n_members, config["seed"], "members")
    fit_n, eval_n = split_halves(n_non_members, config["seed"], "non-members")
    spec = {
        **config,
        "target": target.as_dict(),
        "split": {"fit_members": fit_m, "eval_members": eval_m},
    }
    spec["split"] |= {"fit_non_members": fit_n, "eval_non_members": eval_n}
    runs: dict[str, list[Payload]] = {tool: [] for tool in tools}
    order = list(tools)
    for round_ in range(config["repeats"]):
        shift = round_ % len(order)
        for tool in order[shift:] + order[:shift]:
            runs[tool].append(run_child(MODULE, tool, spec).as_dict())
    return {
        "settings": config,
        "records": {"members": n_members, "non_members": n_non_members},
        "eval_half": {"members": len(eval_m), "non_members": len(eval_n)},
        "runs": runs,
        "summary": summarise(runs),
    }


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as file:
        return sum(1 for line in file if line.strip())


def summarise(runs: dict[str, list[Payload]]) -> Payload:
    """Medians per tool over the successful runs, and each tool's ratios to leakgate."""
    tools: dict[str, Payload] = {}
    for tool, measured in runs.items():
        good = [r for r in measured if r["ok"]]
        if not good:
            errors = [r["payload"].get("error", "no result") for r in measured]
            tools[tool] = {"ok": False, "error": errors[0] if errors else "not run"}
            continue
        last = good[-1]["payload"]
        tools[tool] = {
            "ok": True,
            "n_runs": len(good),
            "wall_s": median([r["wall_s"] for r in good]),
            "work_s": median([r["payload"]["work_s"] for r in good]),
            "import_s": median([r["payload"]["laps"].get("import", 0.0) for r in good]),
            "load_s": median([r["payload"]["laps"].get("load", 0.0) for r in good]),
            "attack_s": median([r["payload"]["attack_s"] for r in good]),
            "peak_rss_mib": median([r["peak_rss_mib"] for r in good]),
            "auc_eval_half": last.get("auc_eval_half"),
            "reported": last.get("reported", {}),
            "records_scored": last.get("records_scored"),
            "notes": last.get("notes", []),
        }
    reference = tools.get(LEAKGATE, {})
    if reference.get("ok"):
        for row in tools.values():
            if row["ok"]:
                row["wall_vs_leakgate"] = row["wall_s"] / reference["wall_s"]
                row["work_vs_leakgate"] = row["work_s"] / reference["work_s"]
                row["attack_vs_leakgate"] = row["attack_s"] / reference["attack_s"]
                row["rss_vs_leakgate"] = row["peak_rss_mib"] / reference["peak_rss_mib"]
    summary: Payload = {"tools": tools}
    peers = [tools[p] | {"name": p} for p in PEERS if tools.get(p, {}).get("ok")]
    if reference.get("ok") and peers:
        fastest = min(peers, key=lambda row: row["wall_s"])
        # Same loss scores through float32 and float64 paths: equal AUC up to rounding.
        auc_ok = (reference["auc_eval_half"] or 0) >= (fastest["auc_eval_half"] or 0) - 1e-3
        summary["fastest_peer"] = {
            "name": fastest["name"],
            "speedup_wall": fastest["wall_s"] / reference["wall_s"],
            "speedup_work": fastest["work_s"] / reference["work_s"],
            "speedup_attack": fastest["attack_s"] / reference["attack_s"],
            "rss_ratio": fastest["peak_rss_mib"] / reference["peak_rss_mib"],
            "leakgate_auc_equal_or_better": auc_ok,
            "target": f">= {TARGET_SPEEDUP}x faster at equal or better AUC",
            "meets_target": auc_ok and fastest["wall_s"] / reference["wall_s"] >= TARGET_SPEEDUP,
        }
    return summary


def markdown(result: Payload) -> list[str]:
    """Lines of the results table for this benchmark."""
    config, records, half = result["settings"], result["records"], result["eval_half"]
    lines = [
        "## 2. Loss-threshold membership attack end to end, leakgate vs peers",
        "",
        f"{records['members']} members + {records['non_members']} non-members, every tool in a "
        f"fresh process, median of {config['repeats']} run(s). Wall = process start to exit; "
        "import = the tool's imports; load = model and records from disk (and tokenizing, for "
        "the peers); attack = scoring every record and computing the result; peak RSS = the "
        "child's own `ru_maxrss`. "
        f"AUC (eval half) = scikit-learn AUC of each tool's scores on the same {half['members']} "
        f"+ {half['non_members']} records.",
        "",
        "| tool | wall s | import s | load s | attack s | peak RSS MiB | AUC (eval half) "
        "| tool's own result | wall / leakgate | attack / leakgate | RSS / leakgate |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for tool, row in result["summary"]["tools"].items():
        if not row["ok"]:
            lines.append(f"| {tool} | failed: {_cell(row['error'])} |" + " |" * 10)
            continue
        auc = row["auc_eval_half"]
        lines.append(
            f"| {tool} | {row['wall_s']:.1f} | {row['import_s']:.1f} | {row['load_s']:.1f} "
            f"| {row['attack_s']:.2f} | {row['peak_rss_mib']:.0f} "
            f"| {'n/a' if auc is None else f'{auc:.3f}'} | {_cell(_reported(row['reported']))} "
            f"| {_ratio(row, 'wall_vs_leakgate')} | {_ratio(row, 'attack_vs_leakgate')} "
            f"| {_ratio(row, 'rss_vs_leakgate')} |"
        )
    fastest = result["summary"].get("fastest_peer")
    if fastest:
        verdict = "met" if fastest["meets_target"] else "NOT met"
        auc_word = "equal or better" if fastest["leakgate_auc_equal_or_better"] else "worse"
        lines += [
            "",
            f"Fastest peer: **{fastest['name']}**; it takes **{fastest['speedup_wall']:.2f}x** "
            f"leakgate's wall time ({fastest['speedup_work']:.2f}x its time after imports, "
            f"{fastest['speedup_attack']:.2f}x its attack time) and "
            f"{fastest['rss_ratio']:.2f}x its peak RSS; leakgate's AUC is {auc_word} "
            f"(target {fastest['target']}: {verdict}).",
        ]
    notes = [
        f"- {tool}: {note}"
        for tool, row in result["summary"]["tools"].items()
        if row["ok"]
        for note in row["notes"]
    ]
    return [*lines, "", *notes, ""] if notes else [*lines, ""]


def _ratio(row: Payload, key: str) -> str:
    return f"{row[key]:.2f}x" if key in row else "n/a"


def _reported(reported: Payload) -> str:
    return "; ".join(f"{key} {_fmt(value)}" for key, value in reported.items())


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")[:160]


# --------------------------------------------------------------------------------------
# Child side: one tool per process. Heavy imports happen inside the tasks, inside the clock.
# --------------------------------------------------------------------------------------


def _finish(watch: Stopwatch, start: float, **payload: Any) -> Payload:
    """Timings of one tool: total (in-process), work (after imports), attack (after loading)."""
    total = time.perf_counter() - start
    work = total - watch.laps.get("import", 0.0)
    attack = work - watch.laps.get("load", 0.0)
    return {"laps": watch.laps, "total_s": total, "work_s": work, "attack_s": attack, **payload}


def _eval_auc(
    member_scores: np.ndarray, non_member_scores: np.ndarray, spec: Payload, *, full: bool = True
) -> float:
    """AUC on the common evaluation half; `full` says the scores cover every record."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    split = spec["split"]
    members = member_scores[split["eval_members"]] if full else member_scores
    non_members = non_member_scores[split["eval_non_members"]] if full else non_member_scores
    y_true = np.r_[np.ones(len(members)), np.zeros(len(non_members))]
    return float(roc_auc_score(y_true, np.r_[members, non_members]))


def _baseline(spec: Payload) -> Payload:
    watch, start = Stopwatch(), time.perf_counter()
    with watch.lap("import"):
        import torch  # noqa: F401
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from demo.intent import read_jsonl
    with watch.lap("load"):
        path = spec["target"]["model_dir"]
        AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        AutoTokenizer.from_pretrained(path, local_files_only=True)
        n = len(read_jsonl(spec["target"]["members"]))
        n += len(read_jsonl(spec["target"]["non_members"]))
    return _finish(watch, start, records_scored=0, records_read=n)


def _leakgate(spec: Payload, *, bootstrap: bool = True) -> Payload:
    watch, start = Stopwatch(), time.perf_counter()
    with watch.lap("import"):
        from attacks.data import read_records
        from attacks.metrics import auc, evaluate_attack, roc_curve, tpr_at_fpr
        from attacks.mia import get_attack
        from attacks.privacy.empirical import epsilon_lower_bound
        from attacks.signals import classifier_signals
        from attacks.targets import TextClassifier
    target = spec["target"]
    with watch.lap("load"):
        classifier = TextClassifier.load(Path(target["model_dir"]), device="cpu")
        members = read_records(Path(target["members"]), "jsonl")
        non_members = read_records(Path(target["non_members"]), "jsonl")
    options = {"batch_size": spec["batch_size"], "max_length": spec["max_length"]}
    with watch.lap("score"):
        member_logits = classifier.logits([r.text for r in members], **options)
        non_member_logits = classifier.logits([r.text for r in non_members], **options)
    with watch.lap("attack"):
        member_labels = classifier.label_ids([r.label for r in members])
        non_member_labels = classifier.label_ids([r.label for r in non_members])
        member_signals = classifier_signals(member_logits, member_labels)
        non_member_signals = classifier_signals(non_member_logits, non_member_labels)
        attack = get_attack("loss")
        member_scores = _attack_scores(attack, member_signals)
        non_member_scores = _attack_scores(attack, non_member_signals)
        reported: Payload = {}
        if bootstrap:
            metrics = evaluate_attack(
                "loss",
                member_scores,
                non_member_scores,
                n_bootstrap=spec["n_bootstrap"],
                seed=spec["seed"],
            )
            reported["AUC (all records)"] = metrics.auc
            reported["95% CI"] = f"{metrics.auc_ci.low:.3f}-{metrics.auc_ci.high:.3f}"
        else:
            fpr, tpr, _ = roc_curve(member_scores, non_member_scores)
            low_fpr = {rate: tpr_at_fpr(fpr, tpr, rate) for rate in (0.001, 0.01, 0.1)}
            reported["AUC (all records)"] = auc(member_scores, non_member_scores)
            reported["TPR@1%FPR"] = low_fpr[0.01]
        bound = epsilon_lower_bound(
            member_scores, non_member_scores, delta=spec["delta"], seed=spec["seed"]
        )
        reported["eps lower bound"] = bound.value
    result = _finish(watch, start, records_scored=len(members) + len(non_members))
    result["auc_eval_half"] = _eval_auc(member_scores, non_member_scores, spec)
    result["reported"] = reported
    return result


def _attack_scores(attack: Any, signals: dict[str, Any]) -> np.ndarray:
    """Scores from a registry attack, whether it takes `AttackInputs` or a signal dict."""
    try:
        from attacks.mia import AttackInputs
    except ImportError:  # the older interface: attacks took the target's signal dict
        return attack.score(signals)
    return attack.score(AttackInputs(target=signals))


def _leakgate_no_bootstrap(spec: Payload) -> Payload:
    return _leakgate(spec, bootstrap=False)


class _PeerInputs:
    """The model behind a one-tensor adapter, and every record as padded token ids."""

    def __init__(self, spec: Payload) -> None:
        import numpy as np
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from demo.intent import read_jsonl

        target = spec["target"]
        path = target["model_dir"]
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        members = read_jsonl(target["members"])
        non_members = read_jsonl(target["non_members"])
        texts = [r["text"] for r in members + non_members]
        ids = tokenizer(
            texts,
            padding="longest",
            truncation=True,
            max_length=spec["max_length"],
            return_tensors="np",
        )["input_ids"].astype(np.int64)
        label2id = model.config.label2id
        labels = np.array([label2id[r["label"]] for r in members + non_members], dtype=np.int64)
        n = len(members)
        self.x_members, self.x_non_members = ids[:n], ids[n:]
        self.y_members, self.y_non_members = labels[:n], labels[n:]
        self.num_labels = int(model.config.num_labels)
        self.module = _ids_to_logits(model, int(tokenizer.pad_token_id))
        self.loss = torch.nn.CrossEntropyLoss()

    @property
    def width(self) -> int:
        return int(self.x_members.shape[1])


def _ids_to_logits(model: Any, pad_id: int) -> Any:
    """A module taking one tensor of token ids and returning logits, as both peers expect."""
    import torch

    class IdsToLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            ids = ids.long()
            return self.model(input_ids=ids, attention_mask=(ids != pad_id).long()).logits

    return IdsToLogits().eval()


def _art_classifier(inputs: _PeerInputs) -> Any:
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=inputs.module,
        loss=inputs.loss,
        input_shape=(inputs.width,),
        nb_classes=inputs.num_labels,
        preprocessing=None,
        device_type="cpu",
    )


def _art_rule_based(spec: Payload) -> Payload:
    watch, start = Stopwatch(), time.perf_counter()
    with watch.lap("import"):
        import numpy as np
        from art.attacks.inference.membership_inference import (
            MembershipInferenceBlackBoxRuleBased,
        )
    with watch.lap("load"):
        inputs = _PeerInputs(spec)
    with watch.lap("attack"):
        attack = MembershipInferenceBlackBoxRuleBased(_art_classifier(inputs))
        member = attack.infer(inputs.x_members, inputs.y_members, probabilities=True)[:, 1]
        non_member = attack.infer(inputs.x_non_members, inputs.y_non_members, probabilities=True)
        non_member = non_member[:, 1]
    n = len(member) + len(non_member)
    result = _finish(watch, start, records_scored=n)
    result["auc_eval_half"] = _eval_auc(member, non_member, spec)
    result["reported"] = {
        "member accuracy (all records)": float(
            (np.sum(member) + np.sum(1 - non_member)) / (len(member) + len(non_member))
        )
    }
    result["notes"] = ["scores are 0/1 (correctly classified or not), so its ROC has one point"]
    return result


def _art_loss(spec: Payload, attack_model_type: str) -> Payload:
    watch, start = Stopwatch(), time.perf_counter()
    with watch.lap("import"):
        import numpy as np
        from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    with watch.lap("load"):
        inputs = _PeerInputs(spec)
    split = spec["split"]
    fit_m, eval_m = split["fit_members"], split["eval_members"]
    fit_n, eval_n = split["fit_non_members"], split["eval_non_members"]
    with watch.lap("attack"):
        attack = MembershipInferenceBlackBox(
            _art_classifier(inputs), input_type="loss", attack_model_type=attack_model_type
        )
        attack.fit(
            x=inputs.x_members[fit_m],
            y=inputs.y_members[fit_m],
            test_x=inputs.x_non_members[fit_n],
            test_y=inputs.y_non_members[fit_n],
        )
        member = attack.infer(
            inputs.x_members[eval_m], inputs.y_members[eval_m], probabilities=True
        )
        non_member = attack.infer(
            inputs.x_non_members[eval_n], inputs.y_non_members[eval_n], probabilities=True
        )
    member, non_member = np.ravel(member), np.ravel(non_member)
    n = len(fit_m) + len(fit_n) + len(eval_m) + len(eval_n)
    result = _finish(watch, start, records_scored=n)
    result["auc_eval_half"] = _eval_auc(member, non_member, spec, full=False)
    accuracy = (np.sum(member >= 0.5) + np.sum(non_member < 0.5)) / (len(member) + len(non_member))
    result["reported"] = {"attack accuracy (eval half)": float(accuracy)}
    result["notes"] = [
        "`compute_loss` runs each half through the model in one batch with autograd on "
        "(ART has no batched loss for PyTorchClassifier), which is what its memory shows"
    ]
    return result


def _art_loss_nn(spec: Payload) -> Payload:
    return _art_loss(spec, "nn")


def _art_loss_rf(spec: Payload) -> Payload:
    return _art_loss(spec, "rf")


def _import_privacy_meter() -> tuple[types.SimpleNamespace, list[str]]:
    """privacy-meter's model.py imports tensorflow (and opacus) at import time, though its
    PyTorch path never uses them: empty stand-ins are put in `sys.modules` for the import
    only (torch's compiler probes installed modules later, and must not find a fake one)."""
    import importlib.util

    stubbed: list[str] = []
    for name in ("tensorflow", "opacus"):
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            stub = types.ModuleType(name)
            stub.__spec__ = importlib.util.spec_from_loader(name, loader=None)
            stub.__dict__["GradSampleModule"] = None  # what opacus gives
            sys.modules[name] = stub
            stubbed.append(name)
    try:
        from privacy_meter.audit import Audit
        from privacy_meter.constants import InferenceGame, MetricEnum
        from privacy_meter.dataset import Dataset
        from privacy_meter.information_source import InformationSource
        from privacy_meter.model import PytorchModel
    finally:
        for name in stubbed:
            del sys.modules[name]
    api = types.SimpleNamespace(
        Audit=Audit,
        InferenceGame=InferenceGame,
        MetricEnum=MetricEnum,
        Dataset=Dataset,
        InformationSource=InformationSource,
        PytorchModel=PytorchModel,
    )
    return api, stubbed


def _privacy_meter(spec: Payload) -> Payload:
    watch, start = Stopwatch(), time.perf_counter()
    with watch.lap("import"):
        import numpy as np

        pm, stubbed = _import_privacy_meter()
    with watch.lap("load"):
        inputs = _PeerInputs(spec)
    split = spec["split"]
    fit_n, eval_n = split["fit_non_members"], split["eval_non_members"]
    with tempfile.TemporaryDirectory(prefix="privacy-meter-logs-") as logs, watch.lap("attack"):
        target_data = pm.Dataset(
            data_dict={
                "train": {"x": inputs.x_members, "y": inputs.y_members},
                "test": {"x": inputs.x_non_members[eval_n], "y": inputs.y_non_members[eval_n]},
            },
            default_input="x",
            default_output="y",
        )
        population = pm.Dataset(
            data_dict={
                "train": {"x": inputs.x_non_members[fit_n], "y": inputs.y_non_members[fit_n]}
            },
            default_input="x",
            default_output="y",
        )
        model = pm.PytorchModel(model_obj=inputs.module, loss_fn=inputs.loss)
        audit = pm.Audit(
            metrics=pm.MetricEnum.POPULATION,
            inference_game_type=pm.InferenceGame.PRIVACY_LOSS_MODEL,
            target_info_sources=pm.InformationSource(models=[model], datasets=[target_data]),
            reference_info_sources=pm.InformationSource(models=[model], datasets=[population]),
            logs_directory_names=[str(Path(logs) / "population")],
        )
        audit.prepare()
        metric_result = audit.run()[0][0]
    losses = np.asarray(metric_result.signal_values, dtype=np.float64)
    n_members = len(inputs.x_members)
    member_scores = -losses[:n_members][split["eval_members"]]
    non_member_scores = -losses[n_members:]
    n = n_members + len(eval_n) + len(fit_n)
    result = _finish(watch, start, records_scored=n)
    result["auc_eval_half"] = _eval_auc(member_scores, non_member_scores, spec, full=False)
    result["reported"] = {"roc_auc (its 100 thresholds)": float(metric_result.roc_auc)}
    result["notes"] = [
        f"imported with stand-in modules for: {', '.join(stubbed) or 'none'}; "
        "`PytorchModel.get_loss` sends each split through the model in one batch with "
        "autograd on",
    ]
    return result


TASKS = {
    "baseline": _baseline,
    "leakgate": _leakgate,
    "leakgate-no-bootstrap": _leakgate_no_bootstrap,
    "art-rule-based": _art_rule_based,
    "art-loss-nn": _art_loss_nn,
    "art-loss-rf": _art_loss_rf,
    "privacy-meter-population": _privacy_meter,
}


if __name__ == "__main__":
    child_main(TASKS)
