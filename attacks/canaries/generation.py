"""Canary templates and generation: secrets with random slots, planted at random.

A canary is a text with a random secret (e.g. four digits) and, for classifiers, a random
label of its own. Each canary is inserted into training or held out with probability 1/2, so
the held-out half measures what the model says about secrets it never saw.

Why a label per canary: a classifier learns only what it needs to fit the label. When every
canary shares one label, the template's prefix explains it and nothing of the secret is
memorised (inserted and held-out canaries then look the same); a random label per canary can
only be fitted by memorising the secret.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import Literal

DIGITS = "0123456789"
MAX_SLOTS = 32

_SLOT = re.compile(r"\{d(?:\*(\d+))?\}")

BUILT_IN_TEMPLATES: dict[str, str] = {
    "pin": "my pin code is {d}{d}{d}{d}",
    "phone": "call me at {d*10}",
    "account": "my account number is {d*8}",
}

CanaryKind = Literal["secret", "audit"]


@dataclass(frozen=True)
class Template:
    """A canary text with secret slots: `{d}` is one character of `alphabet`, `{d*n}` n of them.

    Every secret character is written as its own word ("my pin code is 4 0 7 1"), so a
    word-level or subword tokenizer gives one token per secret position; that is what lets
    exposure swap candidates in without re-tokenising and the inversion work per position.
    """

    text: str
    alphabet: str = DIGITS

    def __post_init__(self) -> None:
        if len(set(self.alphabet)) != len(self.alphabet) or len(self.alphabet) < 2:
            raise ValueError("alphabet needs at least two distinct characters")
        if any(c.isspace() or c in "{}" for c in self.alphabet):
            raise ValueError("alphabet characters cannot be whitespace or braces")
        if not 1 <= self.n_slots <= MAX_SLOTS:
            raise ValueError(
                f"template {self.text!r} needs 1 to {MAX_SLOTS} secret slots ({{d}} or {{d*n}})"
            )
        if "{" in _SLOT.sub("", self.text) or "}" in _SLOT.sub("", self.text):
            raise ValueError(f"template {self.text!r} has braces that are not {{d}} or {{d*n}}")

    @classmethod
    def resolve(cls, name_or_text: str, alphabet: str = DIGITS) -> Template:
        """A built-in by name (pin, phone, account), or a custom template text."""
        return cls(BUILT_IN_TEMPLATES.get(name_or_text, name_or_text), alphabet)

    @property
    def n_slots(self) -> int:
        return sum(int(m.group(1) or 1) for m in _SLOT.finditer(self.text))

    @property
    def candidate_space(self) -> int:
        """|R|: how many secrets the template can hold."""
        return len(self.alphabet) ** self.n_slots

    @property
    def prefix(self) -> str:
        """The text before the first secret character: what an extraction attack starts from."""
        text, spans = self.render_with_spans(self.alphabet[0] * self.n_slots)
        return text[: spans[0][0]].rstrip()

    def render(self, secret: str) -> str:
        """The canary text for one secret, each secret character a separate word."""
        return self.render_with_spans(secret)[0]

    def render_with_spans(self, secret: str) -> tuple[str, list[tuple[int, int]]]:
        """The canary text and the character span of each secret character in it."""
        if len(secret) != self.n_slots:
            raise ValueError(
                f"secret has {len(secret)} characters; the template needs {self.n_slots}"
            )
        marked = _SLOT.sub(lambda m: " " + " ".join("\0" * int(m.group(1) or 1)) + " ", self.text)
        chars = iter(secret)
        words, spans, at = [], [], 0
        for word in marked.split():
            if word == "\0":
                word = next(chars)
                spans.append((at, at + 1))
            words.append(word)
            at += len(word) + 1
        return " ".join(words), spans

    def random_secret(self, rng: random.Random) -> str:
        return "".join(rng.choice(self.alphabet) for _ in range(self.n_slots))


@dataclass(frozen=True)
class Canary:
    """One planted (or held-out) canary. `label` is None for language models."""

    id: str
    text: str
    secret: str | None
    label: str | None
    inserted: bool
    repetitions: int

    def to_dict(self) -> dict:
        return asdict(self)


def generate_canaries(
    template: Template | None,
    *,
    count: int,
    repetitions: int = 1,
    seed: int,
    labels: list[str] | None = None,
    texts: list[str] | None = None,
    id_prefix: str = "canary",
) -> list[Canary]:
    """Draw `count` canaries with distinct secrets, a random label each (when `labels` are
    given) and a fair coin for inserted vs held out.

    With `texts` instead of a template (audit canaries from a dataset), each canary is one of
    those texts, picked without replacement, with no secret: its random label is what a model
    must memorise.
    """
    if count < 1 or repetitions < 1:
        raise ValueError("count and repetitions must be at least 1")
    if (template is None) == (texts is None):
        raise ValueError("give a template or texts, not both")
    if labels is not None and len(set(labels)) < 2:
        raise ValueError("give at least two distinct labels to draw canary labels from")
    rng = random.Random(f"canaries:{seed}")
    if template is not None:
        if count > template.candidate_space // 2:
            raise ValueError(
                f"{count} canaries do not fit a space of {template.candidate_space} secrets "
                "(at most half of it, so that secrets stay distinct and guessing stays hard)"
            )
        secrets: list[str | None] = []
        seen: set[str] = set()
        while len(secrets) < count:
            drawn = template.random_secret(rng)
            if drawn not in seen:
                seen.add(drawn)
                secrets.append(drawn)
        bodies = [template.render(s) for s in secrets if s is not None]
    else:
        assert texts is not None
        distinct = list(dict.fromkeys(texts))
        if count > len(distinct):
            raise ValueError(f"{count} canaries need {count} distinct texts; got {len(distinct)}")
        bodies = rng.sample(distinct, count)
        secrets = [None] * count
    canaries = []
    width = len(str(count - 1))
    for index, (body, secret) in enumerate(zip(bodies, secrets, strict=True)):
        label = rng.choice(labels) if labels is not None else None
        canaries.append(
            Canary(
                id=f"{id_prefix}-{index:0{width}d}",
                text=body,
                secret=secret,
                label=label,
                inserted=rng.random() < 0.5,
                repetitions=repetitions,
            )
        )
    return canaries


def training_records(canaries: list[Canary]) -> list[dict]:
    """What the pipeline mixes into its training data: every inserted canary, repeated."""
    records = []
    for canary in canaries:
        if not canary.inserted:
            continue
        for copy in range(canary.repetitions):
            record = {"id": f"{canary.id}-{copy}", "text": canary.text}
            if canary.label is not None:
                record["label"] = canary.label
            records.append(record)
    return records
