"""Token streams for pretraining: the clean corpus, its corrupted copies, and batches drawn from them.

Training batches are random windows of ``seq_len`` tokens from one long token stream (documents joined by the
end-of-text token), drawn with a private ``torch.Generator`` seeded by the run's seed, as in nanoGPT's
``get_batch``. Validation is always scored on the same fixed windows of the clean validation stream
(:data:`explorer.pretrain.corpus.VALID_SEED`), so every variant is judged on the same text.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from explorer.pretrain.corpus import TRAIN_SEED, VALID_SEED, documents, duplicate_documents, shuffle_words
from explorer.pretrain.tokenizer import encode_documents

TRAIN_DOCS = 12_000  # about 1.0 M tokens
VALID_DOCS = 400  # about 35 K tokens
REPEAT_SHARE = 256  # the repeated variant keeps 1/256 of the training documents (~4 K tokens)
VALID_WINDOWS = 16  # fixed validation windows scored at each evaluation


@dataclass(frozen=True)
class CorpusData:
    """A training token stream and the (shared) clean validation stream.

    Attributes:
        name: what the visitor reads ("clean grammar stories, seed 1234").
        train: int64 token ids, shape ``(train_tokens,)``. valid: int64 ids, shape ``(valid_tokens,)``.
        documents: training documents in the stream.
    """

    name: str
    train: np.ndarray
    valid: np.ndarray
    documents: int

    @property
    def train_tokens(self) -> int:
        """Tokens in the training stream."""
        return int(self.train.size)


@functools.lru_cache(maxsize=1)
def _valid() -> np.ndarray:
    return encode_documents(documents(VALID_DOCS, VALID_SEED))


@functools.lru_cache(maxsize=1)
def _train_docs() -> tuple[str, ...]:
    return tuple(documents(TRAIN_DOCS, TRAIN_SEED))


@functools.lru_cache(maxsize=4)
def corpus(variant: str = "clean") -> CorpusData:
    """The token data of one variant (encoded once per process).

    Variants (same documents, same size, so the same compute buys the same number of tokens):
        ``clean``: the grammar's stories. ``corrupted``: half the documents with their words shuffled and a
        third replaced by duplicates of others. ``repeated``: only the first 1/:data:`REPEAT_SHARE` of the
        documents (~4 K tokens), so the data-quality runs (150 steps x 1,024 tokens) see them about 38 times.

    Raises:
        ValueError: an unknown variant.
    """
    docs = list(_train_docs())
    if variant == "clean":
        name = f"clean grammar stories (seed {TRAIN_SEED})"
    elif variant == "corrupted":
        half = len(docs) // 2
        docs = duplicate_documents(shuffle_words(docs[:half], seed=1) + docs[half:], share=1 / 3, seed=2)
        name = "corrupted copy: half the stories word-shuffled, a third replaced by duplicates"
    elif variant == "repeated":
        docs = docs[:len(docs) // REPEAT_SHARE]
        name = f"1/{REPEAT_SHARE} of the stories, repeated (~38 epochs in the data-quality runs)"
    else:
        raise ValueError(f"variant must be one of {VARIANTS} (got {variant!r})")
    return CorpusData(name=name, train=encode_documents(docs), valid=_valid(), documents=len(docs))


VARIANTS = ("clean", "corrupted", "repeated")


def check_seq_len(seq_len: int, data: CorpusData) -> None:
    """Raise ``ValueError`` when ``seq_len`` windows do not fit the training or validation stream."""
    limit = min(data.train_tokens, data.valid.size) - 1
    if seq_len > limit:
        raise ValueError(f"seq_len {seq_len} is longer than the corpus allows ({limit} tokens)")


def batch(tokens: np.ndarray, batch_size: int, seq_len: int, generator):
    """``(batch_size, seq_len)`` int64 tensor of random windows of ``tokens``, starts drawn with ``generator``."""
    import torch

    starts = torch.randint(0, tokens.size - seq_len, (batch_size,), generator=generator).numpy()
    return torch.from_numpy(np.stack([tokens[s:s + seq_len] for s in starts]))


def valid_batches(data: CorpusData, seq_len: int, batch_size: int) -> list:
    """The fixed validation windows (:data:`VALID_WINDOWS` of them, evenly spaced) in tensors of ``batch_size``."""
    import torch

    starts = np.linspace(0, data.valid.size - seq_len - 1, VALID_WINDOWS).astype(int)
    windows = torch.from_numpy(np.stack([data.valid[s:s + seq_len] for s in starts]))
    return list(torch.split(windows, max(batch_size, 1)))
