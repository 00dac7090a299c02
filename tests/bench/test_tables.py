"""The README tables come from the committed results files only: newest full run per benchmark,
paired ratios, nothing outside the markers touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import scoring_floor, tables
from bench.harness import median

INTRO = "# Title\n\nProse before the block.\n\n"
OUTRO = "\nProse after the block.\n"


def _document(date: str, benchmarks: dict, *, quick: bool = False, device: str = "cpu") -> dict:
    return {
        "date": date,
        "duration_s": 600.0,
        "command": "python -m bench.run",
        "quick": quick,
        "machine": {"cpu_model": "Test CPU", "usable_cores": 2, "ram_gib": 8.0},
        "device": device,
        "threads_per_process": 1,
        "load_average": {"before": [0.5, 0.5, 0.5], "after": [0.7, 0.6, 0.5]},
        "versions": {"python": "3.11", "torch": "2.13.0", "transformers": "5"},
        "benchmarks": benchmarks,
    }


def _throughput(leakgate_s: list[float], floor_s: list[float]) -> dict:
    """A tiny-BERT throughput result as files before paired ratios stored it: rounds only."""
    payload = {
        "n_records": 1000,
        "seconds": {"floor": floor_s, "leakgate": leakgate_s, "naive": floor_s},
        "tokenize_pass_seconds": [0.1] * len(floor_s),
        "max_abs_logit_difference": 0.0,
        "torch_threads": 1,
    }
    unpaired = median(floor_s) / median(leakgate_s)
    return {
        "settings": {"batch_size": 32, "max_length": 128, "repeats": len(floor_s)},
        "child": {"payload": payload},
        "summary": {
            "n_records": 1000,
            "scorers": {
                name: {
                    "median_records_per_s": 1000 / median(s),
                    "records_per_s": [1000 / x for x in s],
                }
                for name, s in (("floor", floor_s), ("leakgate", leakgate_s), ("naive", floor_s))
            },
            "leakgate_over_floor": unpaired,
            "target": ">= 0.9",
            "meets_target": unpaired >= 0.9,
            "max_abs_logit_difference": 0.0,
            "tokenize_pass_share_of_floor": 0.3,
        },
    }


def _floor(leakgate_s: list[float], floor_s: list[float]) -> dict:
    """A real-size scoring result whose summary comes from `scoring_floor.summarise`."""
    payload = {
        "n_records": 16,
        "batch_size": 16,
        "n_members": 10_000,
        "n_non_members": 10_000,
        "tokens": 16 * 128,
        "n_parameters": 110_000_000,
        "flops_per_pass": 16 * 2 * 85e6 * 128,
        "rounds": [
            {"leakgate_s": lg, "floor_s": fl, "matmul_flops_per_s": 60e9}
            for lg, fl in zip(leakgate_s, floor_s, strict=True)
        ],
    }
    settings = scoring_floor.settings(False)
    return {
        "settings": settings,
        "runs": {
            "bert-base/128": {
                "child": {"payload": payload},
                "summary": scoring_floor.summarise(payload),
            }
        },
    }


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    # Rounds where the ratio of medians (1.0) and the median of paired ratios differ.
    old = _document(
        "2026-01-01T00:00:00+00:00",
        {"scoring_throughput": _throughput([1.0, 2.0, 3.0], [0.8, 2.5, 2.0])},
    )
    new = _document(
        "2026-02-01T00:00:00+00:00",
        {"scoring_floor": _floor([10.0, 12.0, 11.0], [9.0, 10.0, 10.5])},
    )
    quick = _document(
        "2026-03-01T00:00:00+00:00", {"scoring_floor": _floor([1.0], [9.0])}, quick=True
    )
    for name, document in (("old.json", old), ("new.json", new), ("new-quick.json", quick)):
        (folder / name).write_text(json.dumps(document))
    (folder / "canaries.json").write_text(json.dumps({"not": "a bench.run file"}))
    return folder


@pytest.fixture
def readmes(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "README.md", tmp_path / "bench-README.md"]
    for path in paths:
        path.write_text(f"{INTRO}{tables.BEGIN}\nstale numbers: 0.82-0.96\n{tables.END}{OUTRO}")
    return paths


def _block(text: str) -> str:
    return text[text.index(tables.BEGIN) : text.index(tables.END)]


def test_blocks_come_from_the_newest_full_run_of_each_benchmark(results, readmes):
    changed = tables.update(results, readmes)

    assert len(changed) == 3  # latest.md and both READMEs
    for path in readmes:
        text = path.read_text()
        assert text.startswith(INTRO) and text.endswith(OUTRO)
        block = _block(text)
        assert "0.82-0.96" not in block
        # Each row names its file; the quick run is ignored although it is the newest.
        assert "`old.json`" in block and "`new.json`" in block and "new-quick" not in block
    assert _block(readmes[0].read_text()) == _block(readmes[1].read_text())


def test_tiny_bert_ratio_is_recomputed_as_the_paired_median(results, readmes):
    tables.update(results, readmes)
    block = _block(readmes[0].read_text())

    paired = median([0.8 / 1.0, 2.5 / 2.0, 2.0 / 3.0])
    row = next(line for line in block.splitlines() if "tiny BERT" in line)
    assert "(paired median)" in row and f"| {paired:.2f} |" in row
    assert f"| {median([0.8, 2.5, 2.0]) / median([1.0, 2.0, 3.0]):.2f} |" not in row


def test_sizes_table_gives_the_paired_median_of_the_floor_rounds(results, readmes):
    tables.update(results, readmes)
    block = _block(readmes[0].read_text())

    paired = median([9.0 / 10.0, 10.0 / 12.0, 10.5 / 11.0])
    rows = [line for line in block.splitlines() if line.startswith("| bert-base | 128 |")]
    assert len(rows) == 1 and f"| {paired:.2f} |" in rows[0]


def test_update_is_idempotent_and_check_sees_staleness(results, readmes):
    tables.update(results, readmes)
    assert tables.update(results, readmes) == []
    newer = _document("2026-04-01T00:00:00+00:00", {"scoring_floor": _floor([20.0], [10.0])})
    (results / "newer.json").write_text(json.dumps(newer))
    rendered = tables.rendered(results, readmes)
    assert rendered[readmes[0]] != readmes[0].read_text()
    assert "`newer.json`" in _block(rendered[readmes[0]]) and "`new.json`" not in _block(
        rendered[readmes[0]]
    )


def test_a_readme_without_markers_is_an_error(results, readmes):
    readmes[1].write_text("no markers here\n")
    with pytest.raises(ValueError, match=r"has no .* block"):
        tables.update(results, readmes)


def test_a_gpu_run_adds_its_own_rows_without_replacing_the_cpu_ones(results, readmes):
    gpu = _document(
        "2026-05-01T00:00:00+00:00", {"scoring_floor": _floor([1.0], [0.5])}, device="cuda"
    )
    (results / "gpu.json").write_text(json.dumps(gpu))
    tables.update(results, readmes)
    block = _block(readmes[0].read_text())

    assert "`gpu.json`" in block and "`new.json`" in block
    assert any("[cuda]" in line and "`gpu.json`" in line for line in block.splitlines())
