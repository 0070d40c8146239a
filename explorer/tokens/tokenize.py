"""The Tokens lens: what a text looks like to a model, token by token, for several tokenizers.

``run(text, tokenizers)`` returns, for each tokenizer, every token with its id, its raw bytes,
and the character span it covers in ``text``. Byte-level tokenizers (GPT-2 style BPE, tiktoken)
and SentencePiece tokenizers with byte fallback (Gemma, Llama 2) can split one UTF-8 character over several
tokens, and any tokenizer can split one grapheme cluster (an emoji family, a letter with combining accents): such
tokens are flagged ``partial`` and share a ``group`` with their neighbours, so the UI can draw them together. ``chat_template`` shows how a
prompt is wrapped as system/user/assistant messages, with special tokens counted apart.

References: Sennrich et al. 2016 (BPE); Radford et al. 2019 (byte-level BPE, GPT-2);
the handbook's rule of thumb of ~0.75 words per English token.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Iterator

from explorer.core.config import get_limits
from explorer.core.progress import Progress, run_to_end
from explorer.core.provenance import Provenance, measured
from explorer.core.progress import to_api  # noqa: F401 (the lens serialiser: result.to_api(**view))
from explorer.tokens.backends import OFFLINE_TOKENIZERS, Encoded, get_backend
from models.registry import DEFAULT_MODEL

_SENTINEL = "\ue000"  # private-use character standing in for the user's text inside the template


def _hex_errors(err: UnicodeDecodeError):
    return "".join(f"<{b:02X}>" for b in err.object[err.start:err.end]), err.end


codecs.register_error("llm_explorer_hex", _hex_errors)


@dataclass(frozen=True)
class Token:
    """One token of a text.

    Attributes:
        id: token id in the tokenizer's vocabulary.
        text: readable form: the characters it stands for, bytes of incomplete UTF-8 characters as
            ``<F0><9F>``, or the vocabulary piece (``##ing``, ``[UNK]``) for WordPiece.
        bytes_hex: the token's bytes in hex (``"f09f"``); for WordPiece, the bytes of the text it covers.
        start, end: character offsets into the input (Python string indices), ``text[start:end]``.
        special: True for special tokens (``<|im_end|>``, ``[SEP]``).
        partial: True when the token holds only part of a character as a reader sees it (a grapheme cluster:
            part of its UTF-8 bytes, or one code point of an emoji family), or parts of two.
        group: index of the character group: consecutive tokens covering the same grapheme cluster share it.
    """

    id: int
    text: str
    bytes_hex: str
    start: int
    end: int
    special: bool
    partial: bool
    group: int


@dataclass(frozen=True)
class TokenizerResult:
    """One tokenizer's view of the text.

    Attributes:
        name, kind, vocab_size: which tokenizer (vocabulary size in tokens).
        tokens: every token, in order (``count == len(tokens)``).
        chars, words: characters and whitespace-separated words of the text.
        lossless: True when ``decoded == text`` (WordPiece lowercases and strips accents).
        decoded: ``decode(encode(text))``.
    """

    name: str
    kind: str
    vocab_size: int
    tokens: tuple[Token, ...]
    chars: int
    words: int
    lossless: bool
    decoded: str

    @property
    def count(self) -> int:
        """Number of tokens."""
        return len(self.tokens)

    @property
    def ids(self) -> list[int]:
        """Token ids in order."""
        return [t.id for t in self.tokens]

    @property
    def chars_per_token(self) -> float:
        """Characters per token (0 for an empty text)."""
        return self.chars / self.count if self.count else 0.0

    @property
    def tokens_per_100_words(self) -> float:
        """Tokens per 100 words (0 for a text without words)."""
        return 100.0 * self.count / self.words if self.words else 0.0


@dataclass(frozen=True)
class TokenizationResult:
    """The text and each tokenizer's result, in the order asked for.

    ``provenance``: measured, the tokenizers named in its ``source``.
    """

    text: str
    results: tuple[TokenizerResult, ...]
    provenance: Provenance = field(default_factory=lambda: measured("tokenizers"))

    def to_api(self) -> dict:
        """The ``/tokenize`` JSON: ``{"tokenizers": [{"name", "vocab_size", "count", "kind", "lossless",
        "tokens": [{"id", "text", "bytes_hex", "start", "end"}]}], "provenance": {...}}`` (start/end are Python
        string indices; provenance as :meth:`explorer.core.provenance.Provenance.to_api`)."""
        return {"provenance": self.provenance.to_api(), "tokenizers": [
            {"name": r.name, "vocab_size": r.vocab_size, "count": r.count, "kind": r.kind, "lossless": r.lossless,
             "tokens": [{"id": t.id, "text": t.text, "bytes_hex": t.bytes_hex, "start": t.start, "end": t.end}
                        for t in r.tokens]}
            for r in self.results]}


@dataclass(frozen=True)
class ChatTemplateResult:
    """A prompt wrapped by a model's chat template.

    Attributes:
        rendered: the template's output string (offsets of ``tokens`` index into it).
        tokens: tokens of ``rendered`` with the chosen handling of special-token text in the prompt.
        special_count, content_count: tokens that are special vs not (``special + content == len(tokens)``).
        count_parsed: total tokens when special-token text typed in the prompt is parsed as special tokens.
        count_plain: total tokens when it is kept as plain text.
        parse_special: which of the two ``tokens`` shows.
    """

    rendered: str
    tokens: tuple[Token, ...]
    special_count: int
    content_count: int
    count_parsed: int
    count_plain: int
    parse_special: bool
    provenance: Provenance = field(default_factory=lambda: measured("tokenizer chat template"))


def validate_text(text: str) -> str:
    """Check text a user sent before tokenizing it.

    Raises:
        ValueError: not a string, too long (``max_tokenize_chars``), a NUL character, or a lone
            surrogate (not encodable as UTF-8); the message gives the position.
    """
    if not isinstance(text, str):
        raise ValueError("The text must be a string.")
    cap = get_limits().max_tokenize_chars
    if len(text) > cap:
        raise ValueError(f"The text is {len(text):,} characters long; the limit is {cap:,}.")
    nul = text.find("\x00")
    if nul >= 0:
        raise ValueError(f"The text contains a NUL character (\\x00) at position {nul}; remove it.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"The text contains a lone surrogate (U+{ord(text[exc.start]):04X}) at position "
                         f"{exc.start}, which is not valid Unicode text.") from None
    return text


def _char_index_of_bytes(text: str) -> list[int]:
    """For each UTF-8 byte of ``text``, the index of the character it belongs to; plus one end entry."""
    index = []
    for i, ch in enumerate(text):
        index.extend([i] * len(ch.encode("utf-8")))
    index.append(len(text))
    return index


def grapheme_index(text: str) -> list[int]:
    """For each character of ``text``, the index of its grapheme cluster (what a reader sees as one character:
    an emoji family joined by U+200D, a letter with combining accents, ``\\r\\n``); plus one end entry.

    Uses the ``regex`` package's ``\\X`` (Unicode extended grapheme clusters, UAX #29).
    """
    import regex

    index = []
    for i, cluster in enumerate(regex.findall(r"\X", text)):
        index.extend([i] * len(cluster))
    index.append(index[-1] + 1 if index else 0)
    return index


def _readable(piece: bytes) -> str:
    return piece.decode("utf-8", errors="llm_explorer_hex")


def _tokens_from_bytes(text: str, enc: Encoded) -> list[Token]:
    """Tokens of a byte-level tokenizer: spans and groups from the cumulative bytes of the pieces.

    A token is ``partial`` when it shares a grapheme cluster with a neighbour (part of a UTF-8 character, or one
    code point of a cluster such as an emoji family); such tokens share a ``group``.
    """
    byte_char = _char_index_of_bytes(text)
    cluster = grapheme_index(text)
    byte_cluster = [cluster[c] for c in byte_char]
    n_bytes = len(byte_char) - 1
    tokens, offset, group, last_end_cluster = [], 0, -1, -1
    for tid, piece, special in zip(enc.ids, enc.pieces, enc.special):
        b0, b1 = min(offset, n_bytes), min(offset + len(piece), n_bytes)
        start = byte_char[b0]
        end = byte_char[b1 - 1] + 1 if b1 > b0 else start
        partial = (0 < b0 < n_bytes and byte_cluster[b0 - 1] == byte_cluster[b0]) or \
                  (0 < b1 < n_bytes and byte_cluster[b1 - 1] == byte_cluster[b1])
        if not (tokens and byte_cluster[b0] < last_end_cluster):
            group += 1
        tokens.append(Token(tid, _readable(piece), piece.hex(), start, end, special, partial, group))
        if b1 > b0:
            last_end_cluster = max(last_end_cluster, byte_cluster[b1 - 1] + 1)
        offset += len(piece)
    return tokens


def _tokens_from_spans(text: str, enc: Encoded) -> list[Token]:
    """Tokens of a tokenizer that reports character offsets (WordPiece, SentencePiece).

    Tokens whose spans share a grapheme cluster (SentencePiece byte-fallback pieces of one character, code points
    of one emoji family) are ``partial`` and share a ``group``. With ``enc.pieces`` (SentencePiece) the text is the
    piece with ``▁`` shown as a space and byte pieces as ``<E2>``; otherwise the vocabulary label (``##ing``).
    """
    cluster = grapheme_index(text)
    ranges = [(cluster[min(a, len(text))], cluster[b - 1] + 1 if b > a else cluster[min(a, len(text))])
              for a, b in enc.spans]
    tokens, group, last_end = [], -1, -1
    for i, (tid, (start, end), label, special) in enumerate(zip(enc.ids, enc.spans, enc.labels, enc.special)):
        c0, c1 = ranges[i]
        if not (tokens and c0 < last_end):
            group += 1
        partial = c1 > c0 and ((i > 0 and c0 < ranges[i - 1][1]) or (i + 1 < len(ranges) and ranges[i + 1][0] < c1))
        if enc.pieces is not None:
            shown, raw = _readable(enc.pieces[i]), enc.pieces[i]
        else:
            shown, raw = label, text[start:end].encode("utf-8")
        tokens.append(Token(tid, shown, raw.hex(), start, end, special, partial, group))
        last_end = max(last_end, c1)
    return tokens


def encode_tokens(backend, text: str, parse_special: bool = True) -> list[Token]:
    """Tokens of ``text`` under one backend (:mod:`explorer.tokens.backends`), with spans and grapheme groups.

    The one place that turns a tokenizer's output into :class:`Token` s; the attribution lens groups words with it.
    """
    enc = backend.encode(text, parse_special=parse_special)
    return _tokens_from_spans(text, enc) if enc.spans is not None else _tokens_from_bytes(text, enc)


def tokenize_one(text: str, name: str, parse_special: bool = True) -> TokenizerResult:
    """Tokenize ``text`` with one tokenizer (no BOS/[CLS] added).

    Raises:
        ValueError: invalid text (see :func:`validate_text`) or unknown tokenizer.
    """
    validate_text(text)
    backend = get_backend(name)
    tokens = encode_tokens(backend, text, parse_special)
    decoded = backend.decode([t.id for t in tokens])
    return TokenizerResult(backend.name if backend.name else name, backend.kind, backend.vocab_size, tuple(tokens),
                           len(text), len(text.split()), decoded == text, decoded)


def iter_run(text: str, tokenizers: list[str] | None = None,
             parse_special: bool = True) -> Iterator[Progress | TokenizationResult]:
    """Tokenize ``text`` with each tokenizer in order: a :class:`Progress` before each one, then the result.

    Args:
        text: any Unicode text (may be empty).
        tokenizers: names (``smollm2-135m-instruct``, ``gemma-3-270m``, ``cl100k_base``, ``o200k_base``,
            ``all-minilm-l6-v2`` or a Hub id); ``None`` for the five offline ones; one name as a string is accepted.
        parse_special: whether special-token text typed in ``text`` becomes special tokens.
    Yields:
        :class:`Progress` items, then the :class:`TokenizationResult` (provenance ``measured``).
    Raises:
        ValueError: invalid text, empty tokenizer list, a name that is not a string, or unknown tokenizer
            (lists what is available).
    """
    if isinstance(tokenizers, str):
        tokenizers = [tokenizers]
    names = list(OFFLINE_TOKENIZERS if tokenizers is None else tokenizers)
    if any(not isinstance(n, str) for n in names):
        raise ValueError(f"Tokenizer names must be strings, such as {', '.join(OFFLINE_TOKENIZERS)}.")
    if not names:
        raise ValueError(f"Choose at least one tokenizer: {', '.join(OFFLINE_TOKENIZERS)}.")
    validate_text(text)
    results = []
    for i, name in enumerate(names):
        yield Progress(i / len(names), f"tokenizer {i + 1} of {len(names)}: {name}")
        results.append(tokenize_one(text, name, parse_special))
    source = "tokenizers " + ", ".join(r.name for r in results) + ("" if parse_special else " (special text kept plain)")
    yield TokenizationResult(text, tuple(results), measured(source))


def run(text: str, tokenizers: list[str] | None = None, parse_special: bool = True) -> TokenizationResult:
    """Tokenize ``text`` with each tokenizer, in order (:func:`iter_run` drained).

    Returns:
        :class:`TokenizationResult`.
    Raises:
        ValueError: see :func:`iter_run`.
    """
    return run_to_end(iter_run(text, tokenizers, parse_special))


def _tokens_of(text: str, name: str, parse_special: bool) -> list[Token]:
    return list(tokenize_one(text, name, parse_special).tokens) if text else []


def chat_template(text: str, model: str = DEFAULT_MODEL, system: str | None = None,
                  parse_special: bool = True) -> ChatTemplateResult:
    """Wrap ``text`` as a user message with the model's chat template and tokenize it.

    The template's own markup (``<|im_start|>``, role names) is always parsed as special tokens;
    ``parse_special`` decides only for special-token text typed inside ``text``. With it on, the
    ids equal ``tokenizer.apply_chat_template(..., tokenize=True)``.

    Raises:
        ValueError: invalid text, or the model's tokenizer has no chat template.
    """
    validate_text(text)
    backend = get_backend(model)
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{model} has no chat template.")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": _SENTINEL}]
    rendered_with_slot = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix, suffix = rendered_with_slot.split(_SENTINEL, 1)
    rendered = prefix + text + suffix

    def assemble(parse: bool) -> list[Token]:
        parts, out, offset = [(prefix, True), (text, parse), (suffix, True)], [], 0
        group_base = 0
        for part, special_parse in parts:
            for tok in _tokens_of(part, model, special_parse):
                out.append(Token(tok.id, tok.text, tok.bytes_hex, tok.start + offset, tok.end + offset,
                                 tok.special, tok.partial, tok.group + group_base))
            offset += len(part)
            group_base = (out[-1].group + 1) if out else 0
        return out

    parsed, plain = assemble(True), assemble(False)
    shown = parsed if parse_special else plain
    special = sum(t.special for t in shown)
    return ChatTemplateResult(rendered, tuple(shown), special, len(shown) - special, len(parsed), len(plain),
                              parse_special, measured(f"{model} chat template", model=model))
