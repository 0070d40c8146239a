"""Training data for the LoRA lens: built-in sets, typed pairs, JSONL uploads, and the response-only mask.

A dataset is a list of conversations. Each example is wrapped by the model's chat template and the
loss is computed on the assistant's tokens only (the response and its end-of-turn marker); the
system prompt, the user turn and the assistant header get label ``-100``, which
``transformers``' causal-LM loss ignores. This is the usual supervised fine-tuning recipe
(Ouyang et al. 2022, "Training language models to follow instructions"; TRL's
``assistant_only_loss``).

Built-in sets live in ``data/lora/``: ``fictional_facts.jsonl`` (30 question/answer pairs about the
invented island of Veloria, which the base model cannot know) and ``pirate_style.jsonl``
(20 everyday questions answered in a fixed pirate persona).
"""
from __future__ import annotations

from explorer.core.config import data_path

import json
import os
from dataclasses import dataclass

import numpy as np

DATA_DIR = data_path("lora")

# name shown in the UI -> file under data/lora/
BUILTIN_DATASETS: dict[str, str] = {
    "Fictional facts (Veloria)": "fictional_facts.jsonl",
    "Style: pirate persona": "pirate_style.jsonl",
}
IGNORE_INDEX = -100
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class TokenizedExample:
    """One example after the chat template.

    Attributes:
        input_ids: token ids, shape ``(seq_len,)``, int64.
        labels: same shape; the token id where the loss is computed, ``-100`` elsewhere.
    """

    input_ids: np.ndarray
    labels: np.ndarray

    @property
    def trained_tokens(self) -> int:
        """Number of tokens the loss is computed on."""
        return int((self.labels != IGNORE_INDEX).sum())


def builtin_dataset(name: str) -> list[dict]:
    """The built-in set ``name`` as ``[{"prompt", "response"}, ...]``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"Unknown built-in dataset {name!r}; choose one of {sorted(BUILTIN_DATASETS)}.")
    with open(os.path.join(DATA_DIR, BUILTIN_DATASETS[name]), encoding="utf-8") as handle:
        return parse_jsonl(handle.read(), max_bytes=None)


def _check_messages(messages, where: str) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list of {{'role', 'content'}}.")
    clean = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in _ROLES \
                or not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: each message needs a role in {_ROLES} and a text content.")
        clean.append({"role": message["role"], "content": message["content"]})
    if not any(m["role"] == "assistant" and m["content"].strip() for m in clean):
        raise ValueError(f"{where}: the conversation has no assistant message to train on.")
    return clean


def to_messages(example, where: str = "example") -> list[dict]:
    """Normalise one example (``{"prompt", "response"}`` or ``{"messages": [...]}``) to chat messages.

    Raises:
        ValueError: missing or empty fields; ``where`` names the example in the message.
    """
    if not isinstance(example, dict):
        raise ValueError(f"{where}: expected an object with 'prompt' and 'response' (or 'messages').")
    if "messages" in example:
        return _check_messages(example["messages"], where)
    prompt, response = example.get("prompt"), example.get("response")
    if not isinstance(prompt, str) or not isinstance(response, str) or not prompt.strip() or not response.strip():
        raise ValueError(f"{where}: 'prompt' and 'response' must both be non-empty text.")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def pairs_from_messages(messages: list[dict]) -> list[dict]:
    """One ``{"prompt", "response"}`` per assistant turn (prompt = the user turn before it), for the pairs table."""
    pairs, prompt = [], ""
    for message in messages:
        if message["role"] == "user":
            prompt = message["content"]
        elif message["role"] == "assistant":
            pairs.append({"prompt": prompt, "response": message["content"]})
    return pairs


def first_prompt(messages: list[dict]) -> str:
    """The first user turn of a conversation (the first message if it has none)."""
    return next((m["content"] for m in messages if m["role"] == "user"), messages[0]["content"])


def parse_jsonl(text: str, max_bytes: int | None) -> list[dict]:
    """Parse JSONL text: one ``{"prompt", "response"}`` or ``{"messages": [...]}`` object per line.

    Blank lines are skipped. Returns the objects as given (validated).

    Raises:
        ValueError: over ``max_bytes`` (bytes of UTF-8), no examples, or malformed lines (the message
            lists the 1-based line numbers of every bad line, up to ten).
    """
    def check(obj, where):
        to_messages(obj, where)
        return obj

    return read_jsonl(text, max_bytes, check, "The dataset is empty: add at least one prompt/response pair.")


def read_jsonl(text: str, max_bytes: int | None, check, empty_message: str) -> list:
    """``check(obj, "line N")`` for each JSON object of ``text`` (one per line, blank lines skipped); the results.

    Raises:
        ValueError: over ``max_bytes`` (bytes of UTF-8); lines that are not JSON or that ``check`` refuses (one
            message listing up to ten, by 1-based line number); no objects at all (``empty_message``).
    """
    check_size(text, max_bytes)
    items, bad = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(f"line {number}: not valid JSON ({exc.msg})")
            continue
        try:
            items.append(check(obj, f"line {number}"))
        except ValueError as exc:
            bad.append(str(exc))
    if bad:
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise ValueError(f"The JSONL has {len(bad)} malformed line(s): {'; '.join(bad[:10])}{more}.")
    if not items:
        raise ValueError(empty_message)
    return items


def check_size(text: str, max_bytes: int | None) -> None:
    """Raise ``ValueError`` if ``text`` is larger than ``max_bytes`` bytes of UTF-8 (``None`` = no cap)."""
    size = len(text.encode("utf-8"))
    if max_bytes is not None and size > max_bytes:
        raise ValueError(f"The dataset is {size:,} bytes; the cap is {max_bytes:,} bytes. Use fewer or shorter pairs.")


def validate_dataset(examples, max_bytes: int | None) -> list[list[dict]]:
    """Check a dataset given as a list of examples and return it as lists of chat messages.

    Raises:
        ValueError: not a list, empty, over ``max_bytes`` (as JSON, bytes), or a malformed example.
    """
    if not isinstance(examples, list):
        raise ValueError("The dataset must be a list of {'prompt', 'response'} objects.")
    examples = [e for e in examples if not (isinstance(e, dict) and not any(str(v).strip() for v in e.values()))]
    if not examples:
        raise ValueError("The dataset is empty: add at least one prompt/response pair.")
    check_size(json.dumps(examples, ensure_ascii=False), max_bytes)
    return [to_messages(example, f"example {i + 1}") for i, example in enumerate(examples)]


def template_ids(tokenizer, messages: list[dict], add_generation_prompt: bool) -> list[int]:
    """Token ids of ``messages`` through the tokenizer's chat template (a plain list of ints)."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True,
                                        return_dict=False)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two id lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize_example(tokenizer, messages: list[dict], max_tokens: int) -> TokenizedExample:
    """Apply the chat template and mark the assistant tokens as trained.

    For each assistant turn ``k``, the tokens between the template of ``messages[:k]`` with the
    generation prompt (ends with the assistant header) and the template of ``messages[:k+1]`` are
    the response tokens (content plus end-of-turn marker).

    Raises:
        ValueError: the example is longer than ``max_tokens`` tokens.
    """
    full = template_ids(tokenizer, messages, add_generation_prompt=False)
    if len(full) > max_tokens:
        raise ValueError(f"An example is {len(full)} tokens long after the chat template; the cap is {max_tokens}. "
                         f"Shorten it: {messages[-1]['content'][:60]!r}")
    labels = np.full(len(full), IGNORE_INDEX, dtype=np.int64)
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = common_prefix(template_ids(tokenizer, messages[:k], add_generation_prompt=True), full)
        end = common_prefix(template_ids(tokenizer, messages[:k + 1], add_generation_prompt=False), full)
        labels[start:end] = np.asarray(full[start:end], dtype=np.int64)
    return TokenizedExample(input_ids=np.asarray(full, dtype=np.int64), labels=labels)


def tokenize_dataset(tokenizer, conversations: list[list[dict]], max_tokens: int) -> list[TokenizedExample]:
    """:func:`tokenize_example` for every conversation (see there for errors)."""
    return [tokenize_example(tokenizer, messages, max_tokens) for messages in conversations]


def token_view(tokenizer, example: TokenizedExample) -> list[tuple[str, str | None]]:
    """``(piece, "trained" | None)`` per token, for a highlighted view of which tokens carry the loss."""
    pieces = [tokenizer.decode([int(i)]) for i in example.input_ids]
    return [(piece, "trained" if label != IGNORE_INDEX else None) for piece, label in zip(pieces, example.labels)]


def batch_order(n_examples: int, batch_size: int, steps: int, seed: int) -> list[np.ndarray]:
    """Example indices for each step: seeded shuffles of the whole set, one epoch after another.

    Returns ``steps`` arrays of ``min(batch_size, n_examples)`` indices each.
    """
    rng = np.random.default_rng(seed)
    size = min(batch_size, n_examples)
    order: list[int] = []
    batches = []
    for _ in range(steps):
        while len(order) < size:
            order.extend(rng.permutation(n_examples).tolist())
        batches.append(np.asarray(order[:size]))
        order = order[size:]
    return batches


def collate(examples: list[TokenizedExample], pad_id: int):
    """Right-pad a batch into torch tensors ``input_ids``, ``attention_mask``, ``labels``, shape ``(batch, pos)``."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.from_numpy(example.input_ids)
        labels[row, :n] = torch.from_numpy(example.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
