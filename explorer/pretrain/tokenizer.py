"""The pretraining tokenizer: a small byte-level BPE (the `tokenizers` library) trained on the corpus.

A vocabulary of :data:`VOCAB_SIZE` tokens keeps the embedding matrix from dwarfing a model of a few hundred
thousand parameters (SmolLM2's 49,152-token vocabulary at d_model 128 alone would be 6.3 M parameters).
It is trained once on the first megabyte of the corpus and shipped as ``data/pretrain/tokenizer.json``;
``python -m explorer.pretrain.tokenizer`` writes it again (identically: BPE training is deterministic).
"""
from __future__ import annotations

import functools
import os

import numpy as np

from explorer.core.config import data_path
from explorer.pretrain.corpus import SEPARATOR, TRAIN_SEED, corpus_text

VOCAB_SIZE = 512
EOS = "<|endoftext|>"
TOKENIZER_FILE = data_path("pretrain", "tokenizer.json")
TRAIN_CHARS = 2**20


def train_tokenizer(text: str, vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on ``text`` (``EOS`` is token 0).

    Raises:
        ValueError: ``vocab_size`` below 257 (the 256 bytes plus the end-of-text token).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 257:
        raise ValueError(f"vocab_size must be at least 257 (got {vocab_size})")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.split(SEPARATOR), trainer=trainer)
    return tok


@functools.lru_cache(maxsize=1)
def load_tokenizer():
    """The shipped tokenizer (``data/pretrain/tokenizer.json``).

    Raises:
        FileNotFoundError: the file is missing (run ``python -m explorer.pretrain.tokenizer``).
    """
    from tokenizers import Tokenizer

    if not os.path.exists(TOKENIZER_FILE):
        raise FileNotFoundError(f"{TOKENIZER_FILE} is missing: run python -m explorer.pretrain.tokenizer")
    return Tokenizer.from_file(TOKENIZER_FILE)


def encode_documents(docs: list[str], tok=None) -> np.ndarray:
    """Token ids of ``docs``, each followed by the end-of-text token, as one int64 array of shape ``(tokens,)``."""
    tok = tok or load_tokenizer()
    eos = tok.token_to_id(EOS)
    ids: list[int] = []
    for enc in tok.encode_batch(docs):
        ids.extend(enc.ids)
        ids.append(eos)
    return np.asarray(ids, dtype=np.int64)


def decode(ids, tok=None) -> str:
    """Text of token ids (the end-of-text token shown as a newline)."""
    tok = tok or load_tokenizer()
    return tok.decode([int(i) for i in ids], skip_special_tokens=False).replace(EOS, "\n")


if __name__ == "__main__":
    os.makedirs(os.path.dirname(TOKENIZER_FILE), exist_ok=True)
    train_tokenizer(corpus_text(TRAIN_CHARS, TRAIN_SEED)).save(TOKENIZER_FILE)
    print(f"wrote {TOKENIZER_FILE}")
