"""SentencePiece-style tokenizers (``▁`` for a space, byte fallback) in the Tokens lens and in attribution.

One tokenizer is built here with the ``tokenizers`` library (a Metaspace BPE with byte fallback, like Llama 2's);
the other is Gemma 3's real tokenizer. Expected values come from the text itself (its UTF-8 bytes, its grapheme
clusters by ``regex``'s ``\\X``) and from the tokenizer's own ``encode``/``decode``.
"""
from types import SimpleNamespace

import pytest
import regex

from explorer import tokens
from explorer.tokens import backends

MARK = "\u2581"
MIXED = "Hi there ♩ 👨‍👩‍👧 日本語 café مرحبا 𓀀!"


def _sentencepiece_byte_fallback(style: str):
    """A tiny BPE whose vocabulary knows ``▁``, a few letters and merges, and the 256 ``<0xNN>`` byte pieces.

    ``style="metaspace"``: a ``Metaspace`` pre-tokenizer and decoder; ``"llama2"``: no pre-tokenizer, a normalizer
    that prepends ``▁`` and replaces spaces with it, and a decoder that turns it back (Llama 2's fast tokenizer).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece in [MARK, "a", "b", "c", "h", "i", "e", "r", "t", f"{MARK}a", "ab", f"{MARK}ab", f"{MARK}c"]:
        vocab[piece] = len(vocab)
    merges = [(MARK, "a"), ("a", "b"), (f"{MARK}a", "b"), (MARK, "c")]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    if style == "metaspace":
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=MARK, prepend_scheme="first")
        tok.decoder = decoders.Sequence([decoders.Metaspace(replacement=MARK, prepend_scheme="first"),
                                         decoders.ByteFallback(), decoders.Fuse()])
    else:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend(MARK), normalizers.Replace(" ", MARK)])
        tok.decoder = decoders.Sequence([decoders.Replace(MARK, " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")


@pytest.fixture(params=["metaspace", "llama2"])
def built(request, monkeypatch):
    """The built tokenizer (both styles) registered as a backend named ``built-metaspace``."""
    backend = backends.HFBackend("built-metaspace", _sentencepiece_byte_fallback(request.param))
    monkeypatch.setitem(backends._BACKENDS, "built-metaspace", backend)
    return backend


def _check_groups(text: str, result) -> None:
    """Each group's bytes are its span's UTF-8, and a group is a whole number of grapheme clusters."""
    clusters = regex.findall(r"\X", text)
    bounds = {0}
    for c in clusters:
        bounds.add(max(bounds) + len(c))
    groups = {}
    for t in result.tokens:
        groups.setdefault(t.group, []).append(t)
    for members in groups.values():
        start, end = min(t.start for t in members), max(t.end for t in members)
        assert start in bounds and end in bounds, members
        raw = b"".join(bytes.fromhex(t.bytes_hex) for t in members)
        assert raw.lstrip(b" ") == text[start:end].encode("utf-8").lstrip(b" ")
        assert len(members) == 1 or all(t.partial for t in members)


def test_marker_and_kind_are_inferred(built):
    assert backends.space_marker(built.tokenizer) == MARK and backends.byte_fallback(built.tokenizer)
    result = tokens.tokenize_one("ab c", "built-metaspace")
    assert result.kind == "SentencePiece (byte fallback)"
    # ▁ shows as a space (the chips draw it as ·), including the one the tokenizer prepends to the text
    assert [t.text for t in result.tokens] == [" ab", " c"]
    assert [(t.start, t.end) for t in result.tokens] == [(0, 2), (2, 4)]
    assert result.ids == built.tokenizer("ab c", add_special_tokens=False)["input_ids"]
    assert result.decoded == "ab c" and result.lossless


def test_byte_fallback_pieces_of_one_character_are_grouped(built):
    text = "ab ♩"
    result = tokens.tokenize_one(text, "built-metaspace")
    labels = built.tokenizer.convert_ids_to_tokens(result.ids)
    assert labels == [f"{MARK}ab", MARK, "<0xE2>", "<0x99>", "<0xA9>"]
    note = result.tokens[2:]
    assert [t.text for t in note] == ["<E2>", "<99>", "<A9>"]
    assert all(t.partial for t in note) and len({t.group for t in note}) == 1
    assert b"".join(bytes.fromhex(t.bytes_hex) for t in note) == "♩".encode("utf-8")
    assert not result.tokens[0].partial and not result.tokens[1].partial
    assert [(t.start, t.end) for t in note] == [(3, 4)] * 3
    _check_groups(text, result)


def test_an_emoji_family_is_one_group(built):
    text = "a 👨‍👩‍👧 b"
    result = tokens.tokenize_one(text, "built-metaspace")
    family = [t for t in result.tokens if 2 <= t.start < 7]
    assert len(family) == len("👨‍👩‍👧".encode("utf-8"))  # every byte is a fallback piece
    assert len({t.group for t in family}) == 1 and all(t.partial for t in family)
    _check_groups(text, result)


def test_chips_box_the_byte_pieces_and_show_no_raw_marker(built):
    from components.tabs.tokens.figures import chips_html

    html = chips_html(list(tokens.tokenize_one("ab ♩", "built-metaspace").tokens), 100)
    assert MARK not in html and "&lt;0xE2&gt;" not in html
    assert html.count("tok-group") == 1 and "·" in html


def test_attribution_words_follow_the_same_inference(built):
    """The question is encoded once (as the model reads it) and its tokens are grouped by word. (Encoding each
    word apart, as before, gives a Llama-2-style tokenizer an extra ``▁`` per word: ids the model never reads.)"""
    from explorer.hallucination.answer import user_message
    from explorer.hallucination.attribution import _prompt_parts

    engine = SimpleNamespace(tokenizer=built.tokenizer)
    question = "ab c ♩ ab"
    content = user_message(question)
    prefix, seg_ids, suffix, words = _prompt_parts(engine, question)
    assert prefix == [] and suffix == [] and "".join(words) == content
    flat = [t for ids in seg_ids for t in ids]
    assert flat == built.tokenizer(content, add_special_tokens=False)["input_ids"]
    assert len(seg_ids) == len(words)
    note = [i for i, w in enumerate(words) if "♩" in w][0]
    labels = built.tokenizer.convert_ids_to_tokens(seg_ids[note])
    assert labels == [MARK, "<0xE2>", "<0x99>", "<0xA9>"]


# --- Gemma 3's real tokenizer --------------------------------------------------------------------------------


def test_gemma_is_sentencepiece_with_byte_fallback():
    result = tokens.tokenize_one(MIXED, "gemma-3-270m")
    tok = backends.get_backend("gemma-3-270m").tokenizer
    assert result.kind == "SentencePiece (byte fallback)"
    assert result.ids == tok(MIXED, add_special_tokens=False)["input_ids"]
    assert result.decoded == MIXED and result.lossless
    assert not any(MARK in t.text for t in result.tokens)
    assert any(t.text.startswith(" ") for t in result.tokens)
    _check_groups(MIXED, result)


def test_gemma_groups_byte_pieces_and_the_emoji_family():
    result = tokens.tokenize_one(MIXED, "gemma-3-270m")
    labels = backends.get_backend("gemma-3-270m").tokenizer.convert_ids_to_tokens(result.ids)
    hieroglyph = MIXED.index("𓀀")
    pieces = [(t, label) for t, label in zip(result.tokens, labels) if t.start == hieroglyph]
    assert [label for _, label in pieces] == ["<0xF0>", "<0x93>", "<0x80>", "<0x80>"]
    assert len({t.group for t, _ in pieces}) == 1 and all(t.partial for t, _ in pieces)
    family_start = MIXED.index("👨")
    family = [t for t in result.tokens if family_start <= t.start < family_start + len("👨‍👩‍👧")]
    assert len(family) > 1 and len({t.group for t in family}) == 1 and all(t.partial for t in family)
    assert "".join(MIXED[t.start:t.end] for t in family) == "👨‍👩‍👧"


def test_gemma_attribution_words_follow_the_tokens_lens():
    from explorer.hallucination.answer import user_message
    from explorer.hallucination.attribution import _prompt_parts

    tok = backends.get_backend("gemma-3-270m").tokenizer
    question = "Who wrote 𓀀 and 👨‍👩‍👧?"
    content = user_message(question)
    _, seg_ids, _, words = _prompt_parts(SimpleNamespace(tokenizer=tok), question)
    assert [t for ids in seg_ids for t in ids] == tok(content, add_special_tokens=False)["input_ids"]
    assert "".join(words) == content and len(words) == len(seg_ids)
    for ids, word in zip(seg_ids, words):
        assert tok.decode(ids) == word
