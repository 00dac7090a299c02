"""The real-size scoring benchmark, run end to end on shrunken architectures: paired rounds
kept, ratios and shares computed from them, leakgate's output equal to the bare loop's."""

from __future__ import annotations

import pytest

from bench import scoring_floor
from bench.harness import median

pytestmark = pytest.mark.slow

TINY = {
    "bert-base": {
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    },
    "gpt2-small": {"n_embd": 32, "n_layer": 1, "n_head": 2, "vocab_size": 6000},
}
SETTINGS = {
    "n_members": 60,
    "n_non_members": 60,
    "lengths": [32],
    "records_per_round": {"32": 8},
    "batch_size": 4,
    "rounds": 3,
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cache = tmp_path_factory.mktemp("floor-cache")
    return scoring_floor.run(
        quick=True, config_overrides=TINY, settings_overrides=SETTINGS, cache_dir=cache
    )


@pytest.mark.parametrize("key", ["bert-base/32", "gpt2-small/32"])
def test_every_round_is_kept_and_the_ratio_is_their_paired_median(result, key):
    run = result["runs"][key]
    assert run["child"]["ok"], run["child"].get("stderr_tail")
    payload, summary = run["child"]["payload"], run["summary"]

    rounds = payload["rounds"]
    assert len(rounds) == SETTINGS["rounds"] == len(summary["paired_ratios"])
    assert [r["first"] for r in rounds] == ["leakgate", "floor", "leakgate"]
    ratios = [r["floor_s"] / r["leakgate_s"] for r in rounds]
    assert summary["paired_ratios"] == pytest.approx(ratios)
    assert summary["leakgate_over_floor"] == pytest.approx(median(ratios))
    assert summary["batch_size"] == 4 and summary["n_records_per_round"] == 8
    # Texts are 96+ words, so truncation makes every record exactly 32 tokens long.
    assert summary["tokens_per_record"] == 32
    assert summary["floor_share_of_matmul"] > 0 and summary["leakgate_share_of_matmul"] > 0
    assert summary["full_audit_s"] == pytest.approx(120 / summary["leakgate_records_per_s"])


@pytest.mark.parametrize("key", ["bert-base/32", "gpt2-small/32"])
def test_leakgate_and_the_bare_loop_compute_the_same_thing(result, key):
    assert result["runs"][key]["child"]["payload"]["max_abs_difference"] < 1e-4


def test_the_table_has_one_row_per_model_and_length(result):
    rows = scoring_floor.table(result)[2:]
    assert [row.split(" | ")[:2] for row in rows] == [["| bert-base", "32"], ["| gpt2-small", "32"]]
