"""Canaries on real tiny models: generation, exposure, inversion, decoding, the report section."""

from __future__ import annotations

import random

import numpy as np
import pytest
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from attacks.canaries import Template, generate_canaries, training_records
from attacks.canaries.audit import CanaryOptions, measure_canaries
from attacks.canaries.exposure import (
    EXTRAPOLATION_TOLERANCE_BITS,
    MIN_RESOLVED,
    measure_exposure,
)
from attacks.canaries.extraction import decode_causal_lm, invert_classifier
from attacks.canaries.model import CanaryModel, tokenize_canaries
from attacks.testing import build_tiny_causal_lm, train_tiny_causal_lm
from demo.intent import INTENTS, make_intent_records, train_intent_classifier

PIN = Template.resolve("pin")


def test_generation_is_seeded_distinct_and_split_at_random():
    canaries = generate_canaries(PIN, count=200, repetitions=3, seed=7, labels=["a", "b", "c"])
    again = generate_canaries(PIN, count=200, repetitions=3, seed=7, labels=["a", "b", "c"])
    assert canaries == again
    assert canaries != generate_canaries(PIN, count=200, repetitions=3, seed=8, labels=["a", "b"])
    assert len({c.secret for c in canaries}) == 200
    assert all(c.text == f"my pin code is {' '.join(c.secret)}" for c in canaries)
    inserted = sum(c.inserted for c in canaries)
    assert 70 <= inserted <= 130  # Binomial(200, 1/2): far outside 5 sigma otherwise
    assert {c.label for c in canaries} == {"a", "b", "c"}
    records = training_records(canaries)
    assert len(records) == 3 * inserted
    held_out = {c.text for c in canaries if not c.inserted}
    assert not held_out & {r["text"] for r in records}


def test_templates_built_in_and_custom():
    assert Template.resolve("phone").candidate_space == 10**10
    assert Template.resolve("account").n_slots == 8
    custom = Template("door code {d*3} then {d}", alphabet="abc")
    assert custom.candidate_space == 81
    assert custom.render("abca") == "door code a b c then a"
    assert custom.prefix == "door code"
    with pytest.raises(ValueError, match="secret slots"):
        Template("no slots here")
    with pytest.raises(ValueError, match="braces"):
        Template("my {name} is {d}")
    with pytest.raises(ValueError, match="at least two"):
        Template("{d}", alphabet="a")
    with pytest.raises(ValueError, match="do not fit"):
        generate_canaries(Template("{d}"), count=6, seed=0)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny BERT intent classifier trained with 16 pin canaries, a random label each,
    20 repetitions each; about half of them held out."""
    folder = tmp_path_factory.mktemp("canary-classifier")
    base = make_intent_records(200, seed=0)
    canaries = generate_canaries(PIN, count=16, repetitions=20, seed=3, labels=INTENTS)
    vocab = [r["text"] for r in base] + [PIN.render(str(d) * 4) for d in range(10)]
    train_intent_classifier(folder, base + training_records(canaries), epochs=15, vocab_texts=vocab)
    model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    label_ids = [INTENTS.index(c.label) for c in canaries]
    tokens = tokenize_canaries(tokenizer, PIN, canaries, label_ids)
    return model, tokenizer, canaries, label_ids, tokens


def _split(canaries, values):
    inserted = np.array([c.inserted for c in canaries])
    values = np.asarray(values, dtype=np.float64)
    assert inserted.any() and (~inserted).any()
    return values[inserted], values[~inserted]


@pytest.mark.slow
def test_inserted_canaries_have_higher_exposure_and_extrapolation_agrees(classifier):
    model, _, canaries, _, tokens = classifier
    target = CanaryModel(model, "text-classification")
    exact = measure_exposure(target, tokens, 10)
    assert all(e.method == "exact" and e.n_scored == 10**4 for e in exact)
    inserted, held_out = _split(canaries, [e.exposure for e in exact])
    assert inserted.mean() > held_out.mean() + 3, (inserted, held_out)
    assert held_out.mean() < 2

    n_samples = 2000
    sampled = measure_exposure(target, tokens, 10, force_extrapolation=True, n_samples=n_samples)
    assert all(e.method == "extrapolated" and e.n_scored == n_samples for e in sampled)
    for e, s in zip(exact, sampled, strict=True):
        # Where the sample resolves the share (well above MIN_RESOLVED candidates expected
        # at or above the secret), the estimate must match the exact rank.
        if 2.0**-e.exposure * n_samples >= 3 * MIN_RESOLVED:
            assert abs(e.exposure - s.exposure) <= EXTRAPOLATION_TOLERANCE_BITS, (e, s)
    inserted_x, held_out_x = _split(canaries, [s.exposure for s in sampled])
    assert inserted_x.mean() > held_out_x.mean() + 3


@pytest.mark.slow
def test_inversion_ranks_inserted_secrets_far_above_chance_and_held_out_not(classifier):
    model, _, canaries, _, tokens = classifier
    results = invert_classifier(CanaryModel(model, "text-classification"), tokens, steps=200)
    inserted, held_out = _split(canaries, [r.rank for r in results])
    # Chance puts the true secret's median rank at 5000 of 10^4.
    assert np.median(inserted) < 2500, inserted
    assert np.median(held_out) > 2500, held_out
    accuracy_inserted, _ = _split(canaries, [r.per_position_accuracy for r in results])
    assert accuracy_inserted.mean() > 0.1  # the 1/|alphabet| baseline


@pytest.mark.slow
def test_beam_rescoring_returns_secrets_of_the_alphabet(classifier):
    model, _, _, _, tokens = classifier
    results = invert_classifier(
        CanaryModel(model, "text-classification"), tokens[:4], steps=20, beam=16
    )
    assert all(r.recovered.shape == (4,) and r.recovered.max() < 10 for r in results)


@pytest.mark.slow
def test_canary_section_of_the_report_masks_secrets_unless_revealed(classifier):
    model, tokenizer, canaries, label_ids, _ = classifier
    canaries, label_ids = canaries[:6], label_ids[:6]
    kwargs = dict(
        canary_set="cs1",
        kind="secret",
        canaries=canaries,
        template=PIN,
        label_ids=label_ids,
        # A budget below 10^4 makes exposure extrapolated: cheap, and that path is covered too.
        options=CanaryOptions(exposure_budget=1000, exposure_samples=500, inversion_steps=30),
    )
    section = measure_canaries(model, tokenizer, "text-classification", **kwargs)
    summary = section.summary
    assert summary.n_inserted + summary.n_held_out == len(canaries) == len(section.canaries)
    assert summary.exposure_method == "extrapolated" and summary.candidate_space == 10**4
    assert summary.mean_exposure_inserted > summary.mean_exposure_held_out
    assert summary.chance_position_accuracy == 0.1
    bound = summary.one_run_bound
    assert bound is not None and bound.n_canaries == len(canaries) and bound.score == "exposure"
    assert all(c.secret is None and c.recovered is None for c in section.canaries)
    revealed = measure_canaries(model, tokenizer, "text-classification", reveal=True, **kwargs)
    assert [c.secret for c in revealed.canaries] == [c.secret for c in canaries]
    assert all(c.recovered is not None and len(c.recovered) == 4 for c in revealed.canaries)


@pytest.mark.slow
def test_audit_canaries_are_scored_by_their_label(classifier):
    model, tokenizer, _, _, _ = classifier
    texts = [r["text"] for r in make_intent_records(40, seed=5)]
    canaries = generate_canaries(None, texts=texts, count=40, seed=1, labels=INTENTS)
    section = measure_canaries(
        model,
        tokenizer,
        "text-classification",
        canary_set="cs2",
        kind="audit",
        canaries=canaries,
        template=None,
        label_ids=[INTENTS.index(c.label) for c in canaries],
    )
    assert section.summary.mean_exposure_inserted is None
    assert all(c.score <= 0 and c.exposure is None for c in section.canaries)
    assert section.summary.one_run_bound.score == "label log-probability"


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    """A tiny GPT-2 trained on filler text plus one pin canary repeated 30 times; the other
    canaries are held out. (Decoding from a shared prefix can recover one secret only.)"""
    rng = random.Random(0)
    drawn = generate_canaries(PIN, count=8, repetitions=30, seed=11)
    first = next(c for c in drawn if c.inserted)
    canaries = [first] + [c for c in drawn if not c.inserted]
    filler = [
        f"the {rng.choice(['cat', 'dog', 'bird'])} sat on the {rng.choice(['mat', 'log'])}"
        for _ in range(60)
    ]
    vocab = filler + [c.text for c in canaries] + [PIN.render(str(d) * 4) for d in range(10)]
    folder = build_tiny_causal_lm(tmp_path_factory.mktemp("canary-lm"), vocab, hidden_size=64)
    planted = [r["text"] for r in training_records(canaries)]
    train_tiny_causal_lm(folder, filler + planted, epochs=100)
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer, canaries


@pytest.mark.slow
def test_decoding_recovers_inserted_canaries_from_a_language_model(language_model):
    model, tokenizer, canaries = language_model
    tokens = tokenize_canaries(tokenizer, PIN, canaries, None)
    target = CanaryModel(model, "causal-lm")
    for beam in (1, 4):
        results = decode_causal_lm(target, tokens, beam=beam)
        for canary, result in zip(canaries, results, strict=True):
            assert result.extracted == canary.inserted, (canary, result, beam)
    exposures = measure_exposure(target, tokens[:3], 10)
    assert exposures[0].rank == 1  # the inserted canary; two held-out ones follow
    assert max(e.exposure for e in exposures[1:]) < exposures[0].exposure - 5


@pytest.mark.slow
def test_audit_canaries_give_a_one_run_bound_only_when_trained_on(tmp_path):
    """300 audit canaries (intent texts with random labels, each inserted once or held out):
    a model trained with the inserted ones gives a clearly positive one-run bound; the same
    recipe trained without any canary gives about none."""
    pool = make_intent_records(450, seed=2, id_prefix="p")
    base, texts = pool[:150], [r["text"] for r in pool[150:]]
    canaries = generate_canaries(None, texts=texts, count=300, seed=1, labels=INTENTS)
    label_ids = [INTENTS.index(c.label) for c in canaries]
    bounds = {}
    for name, records in (("planted", base + training_records(canaries)), ("clean", base)):
        folder = tmp_path / name
        train_intent_classifier(folder, records, epochs=15, vocab_texts=[r["text"] for r in pool])
        model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
        section = measure_canaries(
            model,
            AutoTokenizer.from_pretrained(folder),
            "text-classification",
            canary_set=name,
            kind="audit",
            canaries=canaries,
            template=None,
            label_ids=label_ids,
        )
        bounds[name] = section.summary.one_run_bound
    planted, clean = bounds["planted"], bounds["clean"]
    assert planted.n_canaries == 300 and planted.confidence == 0.95
    assert planted.value > 1.0 and planted.n_correct >= 0.9 * planted.n_guesses, planted
    assert clean.value < 0.5, clean
