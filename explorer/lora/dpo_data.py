"""Preference data for DPO: built-in sets, typed pairs, JSONL uploads, and TRL's tokenisation of a pair.

A preference pair is ``{"prompt", "chosen", "rejected"}``: the same prompt answered twice, the first answer
preferred (Rafailov et al. 2023, "Direct Preference Optimization"). Each pair is tokenised the way TRL's
``DPOTrainer`` tokenises conversational data: ``prompt_ids`` = the chat template of the user turn with the
assistant header; ``chosen_ids`` / ``rejected_ids`` = what the template of the whole conversation adds after
that prefix (the answer, its end-of-turn marker and the template's trailing newline). TRL's
``DataCollatorForPreference`` pads them into one batch ``[chosen..., rejected...]`` with a completion mask.

Built-in sets live in ``data/dpo/`` (written for this app, 32 pairs each) with four held-out pairs each
(``*_heldout.jsonl``) whose prompts are never trained on: the KL-to-reference probe and the before/after answers
use them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from explorer.core.config import data_path
from explorer.lora.data import check_size, common_prefix, read_jsonl, template_ids

DATA_DIR = data_path("dpo")

# name shown in the UI -> (training file, held-out file) under data/dpo/
BUILTIN_PREFERENCES: dict[str, tuple[str, str]] = {
    "Concise vs rambling": ("concise.jsonl", "concise_heldout.jsonl"),
    "Polite refusal (fictional secrets)": ("refusal.jsonl", "refusal_heldout.jsonl"),
    "Consistent persona (Juniper)": ("persona.jsonl", "persona_heldout.jsonl"),
}
DEFAULT_SET = "Concise vs rambling"
FIELDS = ("prompt", "chosen", "rejected")
MAX_PAIR_TOKENS = 256  # prompt (with the chat template) + the longer answer, tokens


@dataclass(frozen=True)
class PairIds:
    """One pair after the chat template (TRL's ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids``, lists of ints)."""

    prompt_ids: list
    chosen_ids: list
    rejected_ids: list

    def as_trl(self) -> dict:
        """The example dict ``DataCollatorForPreference`` expects."""
        return {"prompt_ids": self.prompt_ids, "chosen_ids": self.chosen_ids, "rejected_ids": self.rejected_ids}


def _read(filename: str) -> list[dict]:
    with open(os.path.join(DATA_DIR, filename), encoding="utf-8") as handle:
        return parse_preference_jsonl(handle.read(), max_bytes=None)


def builtin_preferences(name: str) -> list[dict]:
    """The built-in set ``name`` as ``[{"prompt", "chosen", "rejected"}, ...]``.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if name not in BUILTIN_PREFERENCES:
        raise ValueError(f"Unknown preference set {name!r}; choose one of {sorted(BUILTIN_PREFERENCES)}.")
    return _read(BUILTIN_PREFERENCES[name][0])


def heldout_pairs(name: str | None) -> list[dict]:
    """The held-out pairs of the built-in set ``name`` (of the default set for typed or uploaded data)."""
    return _read(BUILTIN_PREFERENCES.get(name or "", BUILTIN_PREFERENCES[DEFAULT_SET])[1])


def check_pair(example, where: str) -> dict:
    """Validate one pair and return it with exactly the three fields.

    Raises:
        ValueError: not an object, a missing or empty field, or chosen identical to rejected (``where`` names it).
    """
    if not isinstance(example, dict):
        raise ValueError(f"{where}: expected an object with 'prompt', 'chosen' and 'rejected'.")
    missing = [f for f in FIELDS if not isinstance(example.get(f), str) or not example[f].strip()]
    if missing:
        raise ValueError(f"{where}: {', '.join(repr(m) for m in missing)} must be non-empty text.")
    if example["chosen"].strip() == example["rejected"].strip():
        raise ValueError(f"{where}: 'chosen' and 'rejected' are identical, so there is no preference to learn.")
    return {f: example[f] for f in FIELDS}


def parse_preference_jsonl(text: str, max_bytes: int | None) -> list[dict]:
    """Parse JSONL text, one ``{"prompt", "chosen", "rejected"}`` object per line (blank lines skipped).

    Raises:
        ValueError: over ``max_bytes`` (bytes of UTF-8), no pairs, or malformed lines (the message lists the
            1-based line numbers of every bad line, up to ten).
    """
    return read_jsonl(text, max_bytes, check_pair,
                      "The preference set is empty: add at least one prompt/chosen/rejected pair.")


def validate_pairs(pairs, max_bytes: int | None) -> list[dict]:
    """Check a preference set given as a list (rows left wholly blank are dropped).

    Raises:
        ValueError: not a list, empty, over ``max_bytes`` (as JSON, bytes), or a bad pair (see :func:`check_pair`).
    """
    if not isinstance(pairs, list):
        raise ValueError("dataset must be a list of {'prompt', 'chosen', 'rejected'} objects.")
    pairs = [p for p in pairs if not (isinstance(p, dict) and not any(str(v or "").strip() for v in p.values()))]
    if not pairs:
        raise ValueError("The preference set is empty: add at least one prompt/chosen/rejected pair.")
    check_size(json.dumps(pairs, ensure_ascii=False), max_bytes)
    return [check_pair(p, f"pair {i + 1}") for i, p in enumerate(pairs)]


def tokenize_pair(tokenizer, pair: dict, max_tokens: int = MAX_PAIR_TOKENS, where: str = "pair") -> PairIds:
    """Tokenise a pair as TRL's ``DPOTrainer`` does for conversational data (see the module docstring).

    Raises:
        ValueError: prompt + the longer answer is over ``max_tokens`` tokens (``where`` names the pair).
    """
    user = [{"role": "user", "content": pair["prompt"]}]
    prompt = template_ids(tokenizer, user, add_generation_prompt=True)
    full = {k: template_ids(tokenizer, user + [{"role": "assistant", "content": pair[k]}], add_generation_prompt=False)
            for k in ("chosen", "rejected")}
    longest = max(len(v) for v in full.values())
    if longest > max_tokens:
        raise ValueError(f"{where} is {longest} tokens long with the chat template; the cap is {max_tokens}. "
                         f"Shorten it: {pair['prompt'][:60]!r}")
    n = min(common_prefix(prompt, full["chosen"]), common_prefix(prompt, full["rejected"]))
    return PairIds(prompt_ids=prompt[:n], chosen_ids=full["chosen"][n:], rejected_ids=full["rejected"][n:])


def tokenize_pairs(tokenizer, pairs: list[dict], max_tokens: int = MAX_PAIR_TOKENS) -> list[PairIds]:
    """:func:`tokenize_pair` for every pair (errors name the pair by its 1-based number)."""
    return [tokenize_pair(tokenizer, p, max_tokens, f"pair {i + 1}") for i, p in enumerate(pairs)]


def collate_pairs(pairs: list[PairIds], pad_id: int) -> dict:
    """TRL's ``DataCollatorForPreference``: ``input_ids``, ``attention_mask``, ``completion_mask``, each shape
    ``(2 · len(pairs), pos)``, right-padded, chosen rows first then rejected rows."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    return DataCollatorForPreference(pad_token_id=pad_id)([p.as_trl() for p in pairs])
