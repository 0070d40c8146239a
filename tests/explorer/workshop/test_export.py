"""Talk files: round trip, and refusal with the reason for a bad checksum, schema, format or member list."""
import hashlib
import json
import zipfile

import pytest

from explorer.workshop import SCHEMA_VERSION, read_talk, write_talk

FIGURE = {"data": [{"type": "bar", "x": ["a", "b"], "y": [1.5, 2.25]}], "layout": {"title": {"text": "t"}}}
SCENES = [{"title": "Tokens: hello", "tab": "tokens", "params": {"prompt": "hello", "tab": "tokens"},
           "provenance": {"kind": "measured", "source": "tokenizer", "when": 1_700_000_000.0, "model": ""},
           "result": {"tokenizers": [{"name": "x", "count": 2}]}, "figure": FIGURE},
          {"title": "KV", "tab": "kv_cache", "figure": {"data": [], "layout": {}}}]


@pytest.fixture()
def talk_path(tmp_path):
    return write_talk(SCENES, str(tmp_path / "talk.zip"), room="abc")


def _rewrite(src, dst, change):
    """Copy the zip ``src`` to ``dst`` with ``change(name, bytes) -> bytes | None`` (None drops the member)."""
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for name in a.namelist():
            data = change(name, a.read(name))
            if data is not None:
                b.writestr(name, data)
    return str(dst)


def test_round_trip_keeps_scenes_and_marks_them_stored(talk_path):
    talk = read_talk(talk_path)
    assert talk.room == "abc" and len(talk.scenes) == 2
    first = talk.scenes[0]
    assert (first.title, first.tab, first.figure, first.result) == (SCENES[0]["title"], "tokens", FIGURE,
                                                                      SCENES[0]["result"])
    assert first.provenance.kind == "stored" and "talk.zip" in first.provenance.source
    assert first.provenance.when == 1_700_000_000.0 and first.measured["kind"] == "measured"
    with zipfile.ZipFile(talk_path) as archive:  # the manifest's sums are SHA-256 of the stored bytes
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["schema_version"] == SCHEMA_VERSION == 1
        for name in manifest["scenes"]:
            assert manifest["sha256"][name] == hashlib.sha256(archive.read(name)).hexdigest()


def test_changed_member_is_refused_with_checksum_reason(talk_path, tmp_path):
    bad = _rewrite(talk_path, tmp_path / "bad.zip",
                   lambda n, d: d.replace(b"2.25", b"9.25") if n.startswith("scenes/00") else d)
    with pytest.raises(ValueError, match=r"checksum mismatch for scenes/00-tokens\.json"):
        read_talk(bad)


def test_newer_schema_wrong_format_and_member_lists_are_refused(talk_path, tmp_path):
    def manifest_edit(**changes):
        def change(name, data):
            if name != "manifest.json":
                return data
            return json.dumps({**json.loads(data), **changes}).encode()
        return change

    with pytest.raises(ValueError, match="schema version 2; this app reads version 1 to 1"):
        read_talk(_rewrite(talk_path, tmp_path / "v2.zip", manifest_edit(schema_version=2)))
    with pytest.raises(ValueError, match="format is 'other'"):
        read_talk(_rewrite(talk_path, tmp_path / "fmt.zip", manifest_edit(format="other")))
    with pytest.raises(ValueError, match="listed in the manifest but missing"):
        read_talk(_rewrite(talk_path, tmp_path / "miss.zip", lambda n, d: None if n.startswith("scenes/01") else d))
    with zipfile.ZipFile(talk_path, "a") as archive:
        archive.writestr("scenes/09-extra.json", b"{}")
    with pytest.raises(ValueError, match="scenes/09-extra.json is not in the manifest"):
        read_talk(talk_path)


def test_not_a_zip_too_large_and_empty_export_are_refused(tmp_path, talk_path):
    with pytest.raises(ValueError, match="not a zip archive"):
        read_talk(b"{\"scenes\": []}")
    with pytest.raises(ValueError, match="over the 0 MB limit"):
        read_talk(talk_path, max_bytes=100)
    with pytest.raises(ValueError, match="scenes: nothing to export"):
        write_talk([], str(tmp_path / "none.zip"))
    with pytest.raises(ValueError, match=r"scenes\[0\]: figure must be plotly JSON"):
        write_talk([{"tab": "tokens", "figure": None}], str(tmp_path / "nofig.zip"))
