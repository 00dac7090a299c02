"""Tiny text classifiers and causal LMs saved like real ones, for tests that must not download."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
)

_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def build_tiny_text_classifier(
    folder: Path,
    texts: list[str],
    labels: list[str],
    *,
    hidden_size: int = 32,
    layers: int = 1,
    seed: int = 0,
) -> Path:
    """Save a random-weight BERT classifier and a whitespace word-level tokenizer into `folder`.

    The vocabulary holds the words of `texts`; classes are the sorted distinct `labels`.
    Weights use a wide initialisation so different texts get visibly different logits.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate(_SPECIAL_TOKENS)}
    for text in texts:
        for word in text.split():
            vocab.setdefault(word, len(vocab))

    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=512,
    ).save_pretrained(folder)

    names = sorted(set(labels))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=512,
        initializer_range=0.5,
        pad_token_id=vocab["[PAD]"],
        id2label=dict(enumerate(names)),
        label2id={name: index for index, name in enumerate(names)},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


_END_OF_TEXT = "<|endoftext|>"
_UNKNOWN = "<unk>"


def build_tiny_causal_lm(
    folder: Path, texts: list[str], *, hidden_size: int = 32, layers: int = 2, seed: int = 0
) -> Path:
    """Save a random-weight GPT-2 and a whitespace word-level tokenizer trained on `texts`.

    Like GPT-2, `<|endoftext|>` is the BOS and EOS token, nothing is added to encoded texts
    and there is no pad token, so loading must supply one. Words outside `texts` map to <unk>.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordLevel(unk_token=_UNKNOWN))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.train_from_iterator(
        texts, trainers.WordLevelTrainer(special_tokens=[_END_OF_TEXT, _UNKNOWN], min_frequency=1)
    )
    end_of_text = tokenizer.token_to_id(_END_OF_TEXT)
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=_END_OF_TEXT,
        eos_token=_END_OF_TEXT,
        unk_token=_UNKNOWN,
        model_max_length=128,
    ).save_pretrained(folder)

    config = GPT2Config(
        vocab_size=tokenizer.get_vocab_size(),
        n_positions=128,
        n_embd=hidden_size,
        n_layer=layers,
        n_head=2,
        bos_token_id=end_of_text,
        eos_token_id=end_of_text,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def train_tiny_causal_lm(
    folder: Path, texts: list[str], *, epochs: int, lr: float = 3e-3, seed: int = 0
) -> Path:
    """Fit the model in `folder` to `texts` in place (full-batch AdamW), making them members."""
    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder, local_files_only=True, use_safetensors=True
    )
    pad_id = tokenizer.eos_token_id
    encoded = [tokenizer(text)["input_ids"] for text in texts]
    longest = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(texts), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)

    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        for _ in range(epochs):
            optimizer.zero_grad()
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            loss.backward()
            optimizer.step()
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def train_tiny_lora_adapter(
    base_dir: Path,
    adapter_dir: Path,
    texts: list[str],
    labels: list[str],
    *,
    steps: int = 20,
    rank: int = 4,
    lr: float = 1e-2,
    seed: int = 0,
) -> Path:
    """Fit a LoRA adapter (query/value, head saved whole) of the classifier in `base_dir` to
    `texts` and write it with peft's `save_pretrained`: adapter_config.json +
    adapter_model.safetensors, as a PEFT fine-tuning pipeline leaves it."""
    from peft import LoraConfig, TaskType, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    base = BertForSequenceClassification.from_pretrained(
        base_dir, local_files_only=True, use_safetensors=True
    )
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=rank, lora_alpha=2 * rank, target_modules=["query", "value"]
    )
    model = get_peft_model(base, config)
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    label2id = cast(dict[str, int], base.config.label2id)
    targets = torch.tensor([label2id[label] for label in labels])
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0
        )
        for _ in range(steps):
            optimizer.zero_grad()
            model(**batch, labels=targets).loss.backward()
            optimizer.step()
    model.eval()
    model.save_pretrained(str(adapter_dir))
    return Path(adapter_dir)


def train_tiny_lm_lora_adapter(
    base_dir: Path,
    adapter_dir: Path,
    texts: list[str],
    *,
    steps: int = 40,
    rank: int = 4,
    lr: float = 2e-2,
    seed: int = 0,
) -> Path:
    """Fit a LoRA adapter (peft's default modules: GPT-2's c_attn) of the causal LM in
    `base_dir` to `texts` (full-batch AdamW) and write it as peft's `save_pretrained` does,
    task_type CAUSAL_LM, so `texts` are its members."""
    from peft import LoraConfig, TaskType, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    base = AutoModelForCausalLM.from_pretrained(
        base_dir, local_files_only=True, use_safetensors=True
    )
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=rank, lora_alpha=2 * rank, lora_dropout=0.0)
    model = get_peft_model(base, config)
    encoded = [tokenizer(text)["input_ids"] for text in texts]
    longest = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(texts), longest), tokenizer.eos_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    model.eval()  # no dropout in the base: the adapter alone fits the texts
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0
        )
        for _ in range(steps):
            optimizer.zero_grad()
            model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
            optimizer.step()
    model.save_pretrained(str(adapter_dir))
    return Path(adapter_dir)
