"""Synthetic bank-intent data and a tiny BERT trained to memorise it, for demos and tests."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from attacks.batching import pad_batch

MAX_LENGTH = 64
"""Token budget per utterance; also the model's position-embedding size."""

EXAMPLE_LABEL_NOISE = 0.2
"""Share of wrong labels in the bundled example: enough to force visible memorisation."""

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]

# fmt: off
_FIRST_NAMES = [
    "alice", "bob", "carlos", "dana", "emeka", "fatima", "george", "hana", "ivan", "julia",
    "kenji", "laura", "mohammed", "nina", "oscar", "priya", "quentin", "rosa", "samir", "tara",
    "umar", "valeria", "wei", "ximena", "yusuf", "zoe", "anton", "beatriz", "chloe", "diego",
    "elif", "farid", "greta", "hugo", "ingrid", "jonas", "kasia", "luca", "mei", "noah",
]
_LAST_NAMES = [
    "smith", "garcia", "okafor", "nguyen", "kowalski", "haddad", "muller", "tanaka", "rossi",
    "fernandes", "ivanova", "obrien", "schmidt", "dubois", "kim", "patel", "jensen", "moreau",
    "silva", "novak", "petrov", "yilmaz", "andersson", "costa", "weber", "lopez", "chen", "ali",
    "khan", "murphy", "bianchi", "horvat", "larsen", "mendes", "sato", "varga", "zhang", "reyes",
]
_CITIES = [
    "london", "manchester", "leeds", "bristol", "glasgow", "cardiff", "dublin", "berlin",
    "madrid", "lisbon", "paris", "lyon", "milan", "vienna", "prague", "warsaw", "krakow",
    "amsterdam", "rotterdam", "brussels", "zurich", "geneva", "oslo", "stockholm", "helsinki",
    "copenhagen", "athens", "porto", "seville", "munich", "hamburg", "toronto", "boston",
]
_STREETS = [
    "high street", "station road", "church lane", "park avenue", "mill road", "king street",
    "queens road", "elm grove", "victoria street", "market square", "river walk", "oak drive",
    "maple close", "harbour view", "castle hill", "bridge street", "north parade", "linden way",
]
_MERCHANTS = [
    "amazon", "tesco", "netflix", "spotify", "uber", "ryanair", "ikea", "zara", "apple store",
    "shell garage", "starbucks", "deliveroo", "booking com", "ebay", "lidl", "aldi", "h&m",
    "easyjet", "airbnb", "steam", "currys", "boots", "costa coffee", "trainline", "asos",
    "just eat", "decathlon", "primark", "waitrose", "sainsburys", "argos", "paypal",
]
_MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
]
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_ACCOUNTS = [
    "current account", "savings account", "joint account", "business account",
    "student account", "isa", "premier account", "basic account", "fixed saver",
]
_CARDS = ["debit card", "credit card", "visa card", "mastercard", "business card", "bank card"]
_LOANS = ["personal loan", "car loan", "mortgage", "home improvement loan", "student loan",
          "business loan", "debt consolidation loan", "overdraft"]
_RELATIONS = ["my sister", "my landlord", "my brother", "my mum", "my dad", "a friend",
              "my partner", "my colleague", "my son", "my daughter", "my flatmate"]
_OPENERS = ["", "", "", "hi,", "hello,", "hey,", "good morning,", "excuse me,", "hi there,",
            "quick question,", "sorry to bother you,", "urgent:"]
_CLOSERS = ["", "", "", "thanks", "thank you", "please", "cheers", "asap please",
            "thanks in advance", "as soon as possible", "many thanks"]
# fmt: on

_TEMPLATES: dict[str, list[str]] = {
    "check_balance": [
        "what is the balance on my {account}",
        "how much money do i have in my {account}",
        "can you tell me my {account} balance as of {date}",
        "show me the balance of the {account} ending {digits}",
        "i need to know how much is left in my {account} before paying {merchant}",
        "is there at least {amount} available in my {account}",
        "check balance for account {digits} please",
        "what was my balance on {date} after the {merchant} payment",
        "do i have enough in my {account} to cover {amount}",
        "balance enquiry for {name}, {account}",
    ],
    "transfer_money": [
        "send {amount} to {relation} from my {account}",
        "transfer {amount} to {name} on {date}",
        "i want to move {amount} from my {account} to my {account2}",
        "please pay {name} {amount} for the rent",
        "make a transfer of {amount} to account {digits}",
        "can i wire {amount} to {relation} in {city}",
        "set up a payment of {amount} to {name} every {weekday}",
        "move {amount} into the {account} on {date}",
        "how do i send {amount} to {name} abroad in {city}",
        "pay {amount} to {merchant} from account {digits}",
    ],
    "card_lost": [
        "i lost my {card} in {city}",
        "my {card} was stolen on {date}",
        "i can't find my {card} ending {digits}, please block it",
        "someone took my wallet with the {card} near {street}",
        "freeze my {card} right now, it is missing since {weekday}",
        "my {card} got stolen at {merchant} in {city}",
        "i think i left my {card} at {merchant} on {date}",
        "report a lost {card} for {name}",
        "need a replacement {card}, the old one disappeared in {city}",
        "cancel my {card} ending {digits}, it was lost on {date}",
    ],
    "open_account": [
        "i would like to open a {account}",
        "how do i open a new {account} for {relation}",
        "can {name} open a {account} online",
        "what do i need to open a {account} in {city}",
        "sign me up for a {account} starting {date}",
        "i want a {account} with a {card}",
        "open a {account} for {name} with {amount} deposit",
        "is it possible to open a {account} at the {city} branch on {weekday}",
        "apply for a new {account} please, my name is {name}",
        "start a {account} and move {amount} into it",
    ],
    "loan_rate": [
        "what is the interest rate on a {loan}",
        "how much would a {loan} of {amount} cost per month",
        "what rate can i get for a {loan} over {years} years",
        "compare the apr of your {loan} for {amount}",
        "is the {loan} rate fixed or variable for {years} years",
        "can {name} get a better rate on the {loan}",
        "current rates for a {loan} in {city}",
        "if i borrow {amount} as a {loan}, what is the rate",
        "did the {loan} interest rate change on {date}",
        "quote me a {loan} rate for {amount} over {years} years",
    ],
    "change_address": [
        "i moved to {house} {street}, {city}",
        "update my address to {house} {street} in {city}",
        "please change the address on my {account} to {city}",
        "my new address is {house} {street}, {city} from {date}",
        "how do i update my home address after moving to {city}",
        "change the postal address for {name} to {house} {street}",
        "i am relocating to {city} on {date}, update my details",
        "send my {card} to my new address {house} {street}",
        "correct my address, it should be {house} {street} not {house2} {street2}",
        "we moved from {city2} to {city}, change our address",
    ],
    "dispute_charge": [
        "i do not recognise a charge of {amount} from {merchant}",
        "dispute the {amount} payment to {merchant} on {date}",
        "{merchant} charged me {amount} twice",
        "there is a transaction of {amount} in {city} that i did not make",
        "i was billed {amount} by {merchant} after i cancelled",
        "refund the {merchant} charge of {amount} from {date}",
        "why did {merchant} take {amount} from my {card}",
        "unknown payment of {amount} on my {card} ending {digits}",
        "raise a chargeback for {merchant}, {amount} on {weekday}",
        "{merchant} never delivered but took {amount}, i want to dispute it",
    ],
    "close_account": [
        "please close my {account}",
        "i want to shut down my {account} ending {digits}",
        "close the {account} and send the remaining {amount} to {name}",
        "how do i close my {account} after moving to {city}",
        "cancel my {account} effective {date}",
        "terminate the {account} held by {name}",
        "i am leaving the bank, close everything by {date}",
        "close my {account} and my {card}",
        "shut my {account}, i have moved my salary to another bank",
        "delete my {account} and transfer {amount} to {relation}",
    ],
}

INTENTS: list[str] = sorted(_TEMPLATES)
"""Every label the example model can output, in the order of its output logits."""


@dataclass(frozen=True)
class ExampleFiles:
    """Where build_example put things, so callers need not know the layout."""

    model_dir: Path
    members: Path
    non_members: Path


def _amount(rng: random.Random) -> str:
    """A money amount in one of a few spoken/written styles, for lexical variety."""
    value = rng.choice([rng.randint(5, 99), rng.randint(100, 999), rng.randint(1000, 25000)])
    style = rng.randrange(4)
    if style == 0:
        return f"${value}"
    if style == 1:
        return f"£{value}.{rng.randint(0, 99):02d}"
    if style == 2:
        return f"{value} euros"
    return f"{value} pounds"


def _date(rng: random.Random) -> str:
    """A date in one of a few styles, for lexical variety."""
    style = rng.randrange(4)
    if style == 0:
        return f"{rng.randint(1, 28)} {rng.choice(_MONTHS)}"
    if style == 1:
        return f"{rng.choice(_MONTHS)} {rng.randint(1, 28)}"
    if style == 2:
        return f"last {rng.choice(_WEEKDAYS)}"
    return f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2021, 2025)}"


def _slots(rng: random.Random) -> dict[str, str]:
    """One random value for every slot; templates use whichever they name."""
    account, account2 = rng.sample(_ACCOUNTS, 2)
    street, street2 = rng.sample(_STREETS, 2)
    city, city2 = rng.sample(_CITIES, 2)
    return {
        "name": f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}",
        "amount": _amount(rng),
        "date": _date(rng),
        "weekday": rng.choice(_WEEKDAYS),
        "city": city,
        "city2": city2,
        "street": street,
        "street2": street2,
        "house": str(rng.randint(1, 250)),
        "house2": str(rng.randint(1, 250)),
        "merchant": rng.choice(_MERCHANTS),
        "account": account,
        "account2": account2,
        "card": rng.choice(_CARDS),
        "loan": rng.choice(_LOANS),
        "years": str(rng.randint(2, 30)),
        "digits": f"{rng.randint(0, 9999):04d}",
        "relation": rng.choice(_RELATIONS),
    }


def _utterance(rng: random.Random, intent: str) -> str:
    """Fill one template of the intent and wrap it in an optional greeting/sign-off."""
    body = rng.choice(_TEMPLATES[intent]).format(**_slots(rng))
    parts = [rng.choice(_OPENERS), body, rng.choice(_CLOSERS)]
    return " ".join(p for p in parts if p)


def make_intent_records(
    n: int, *, seed: int, label_noise: float = 0.0, id_prefix: str = "r"
) -> list[dict]:
    """Make n distinct support utterances, balanced over intents, with optional wrong labels.

    Texts and label noise use separate random streams, so the same seed yields the same
    texts whatever label_noise is; noisy labels are what forces a model to memorise.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError("label_noise must be in [0, 1]")
    text_rng = random.Random(f"intent-text:{seed}")
    noise_rng = random.Random(f"intent-noise:{seed}")

    intents = [INTENTS[i % len(INTENTS)] for i in range(n)]
    text_rng.shuffle(intents)
    seen: set[str] = set()
    records: list[dict] = []
    for i, intent in enumerate(intents):
        # Retry a few times for a text not produced yet; duplicates blur membership.
        for _ in range(50):
            text = _utterance(text_rng, intent)
            if text not in seen:
                break
        seen.add(text)
        records.append({"id": f"{id_prefix}{i:05d}", "text": text, "label": intent})

    for i in noise_rng.sample(range(n), round(label_noise * n)):
        wrong = [label for label in INTENTS if label != records[i]["label"]]
        records[i]["label"] = noise_rng.choice(wrong)
    return records


def _build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """Word-level tokenizer built from texts, so the example needs no downloaded vocab."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        texts, trainer=trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, min_frequency=1)
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=MAX_LENGTH,
    )


def train_intent_classifier(
    folder: Path,
    records: list[dict],
    *,
    epochs: int = 30,
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
    lr: float = 1e-3,
    batch_size: int = 32,
    vocab_texts: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Train a tiny BERT intent classifier on records and save it (safetensors) to folder.

    vocab_texts widens the vocabulary beyond the training texts, so that records the model
    never saw are not all [UNK] (which would make membership trivially visible).
    """
    started = time.perf_counter()
    if not records:
        raise ValueError("records must not be empty")
    if epochs < 0 or batch_size < 1:
        raise ValueError("epochs must be >= 0 and batch_size >= 1")
    if hidden_size % 2:
        raise ValueError("hidden_size must be even (the model has 2 attention heads)")
    unknown = {r["label"] for r in records} - set(INTENTS)
    if unknown:
        raise ValueError(f"unknown intent labels: {sorted(unknown)}")

    texts = [r["text"] for r in records]
    tokenizer = _build_tokenizer(vocab_texts or texts)
    label2id = {label: i for i, label in enumerate(INTENTS)}
    targets = torch.tensor([label2id[r["label"]] for r in records], dtype=torch.long)
    encoded: list[list[int]] = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    pad_id = tokenizer.pad_token_id

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=MAX_LENGTH,
        pad_token_id=pad_id,
        id2label=dict(enumerate(INTENTS)),
        label2id=label2id,
    )
    model = BertForSequenceClassification(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order_gen = torch.Generator().manual_seed(seed)

    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(records), generator=order_gen).tolist()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad_batch([encoded[i] for i in idx], pad_id)
            loss = model(input_ids=ids, attention_mask=mask, labels=targets[idx]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if progress is not None:
            progress(epoch + 1, epochs)

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(encoded), 128):
            ids, mask = pad_batch(encoded[start : start + 128], pad_id)
            predicted = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)
            correct += int((predicted == targets[start : start + 128]).sum())

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)  # transformers writes model.safetensors, never pickles
    tokenizer.save_pretrained(folder)
    return {
        "train_accuracy": correct / len(records),
        "seconds": time.perf_counter() - started,
        "records": len(records),
        "epochs": epochs,
        "vocab_size": len(tokenizer),
    }


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    """Write one JSON object per line: the record format the audit API accepts."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Read records written by write_jsonl, skipping blank lines."""
    with Path(path).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def build_example(
    dest: Path,
    *,
    seed: int = 0,
    n_members: int = 300,
    n_non_members: int = 300,
    epochs: int = 30,
    progress: Callable[[int, int], None] | None = None,
) -> ExampleFiles:
    """Build the bundled audit example: a model that memorised members, plus both record sets.

    Members and non-members are a random split of one pool, so the only systematic
    difference between them is whether the model trained on them.
    """
    if n_members < 1 or n_non_members < 1:
        raise ValueError("need at least one member and one non-member")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    pool = make_intent_records(
        n_members + n_non_members, seed=seed, label_noise=EXAMPLE_LABEL_NOISE, id_prefix="ex"
    )
    random.Random(f"intent-split:{seed}").shuffle(pool)
    members, non_members = pool[:n_members], pool[n_members:]

    files = ExampleFiles(
        model_dir=dest / "model",
        members=dest / "members.jsonl",
        non_members=dest / "non_members.jsonl",
    )
    train_intent_classifier(
        files.model_dir,
        members,
        epochs=epochs,
        seed=seed,
        vocab_texts=[r["text"] for r in pool],
        progress=progress,
    )
    write_jsonl(files.members, members)
    write_jsonl(files.non_members, non_members)
    return files
