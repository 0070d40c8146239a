"""Talk files: a room's scenes with their results in one file, for a talk that must survive a dead laptop.

Format (``SCHEMA_VERSION`` 1): a zip archive holding

- ``manifest.json``: ``{"format": "llm-explorer-talk", "schema_version": 1, "created" (UTC ISO 8601),
  "app_version", "room", "scenes": [member names in order], "sha256": {member name: hex digest}}``;
- one ``scenes/NN-<tab>.json`` per scene: ``{"title", "tab", "params" (the share-link parameters that open the
  view), "provenance" (the result's own, as measured), "result" (the lens's JSON), "figure" (the main figure as
  plotly JSON: ``{"data": [...], "layout": {...}}``)}``.

Reading checks, in order, and refuses with the reason (``ValueError``): a zip at all, the uncompressed size
(``max_bytes``), the manifest, the format name, the schema version, that the members are exactly those listed,
and each member's SHA-256. Loaded scenes carry provenance kind ``stored`` naming the file and when it was exported.
Nothing here renders: the figure is kept as the JSON that plotly itself wrote.
"""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass

from explorer.core.provenance import Provenance

FORMAT = "llm-explorer-talk"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
_MEMBER = re.compile(r"scenes/\d{2,4}-[a-z0-9_]{1,40}\.json")
SUFFIX = ".llmtalk.zip"


@dataclass(frozen=True)
class StoredScene:
    """One scene read from a talk file.

    Attributes:
        title: what the presenter called it (tab and prompt by default).
        tab: the tab key it was made in (``"attention"``).
        params: share-link parameters (``{"tab", "prompt", "model", "<tab>.<setting>": value}``), as strings.
        result: the lens's JSON result as exported.
        figure: the main figure, plotly JSON (``{"data": [...], "layout": {...}}``).
        measured: the result's provenance when it was computed (``Provenance.to_api()`` form).
        provenance: kind ``stored``: this file, the export time, and the original measurement.
    """

    title: str
    tab: str
    params: dict
    result: object
    figure: dict
    measured: dict
    provenance: Provenance


@dataclass(frozen=True)
class Talk:
    """A talk file's content: ``created`` (UTC ISO 8601), ``app_version``, ``room`` code, ``scenes``."""

    created: str
    app_version: str
    room: str
    scenes: tuple[StoredScene, ...]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_talk(scenes: list[dict], path: str, room: str = "", max_bytes: int = 64 * 2**20) -> str:
    """Write ``scenes`` (dicts with ``title``, ``tab``, ``figure``; optional ``params``, ``result``,
    ``provenance``) to the zip ``path`` with its manifest; returns ``path``.

    Raises:
        ValueError: ``scenes`` is empty, a scene lacks a ``tab`` or a figure with ``data``, or the file would exceed
            ``max_bytes`` uncompressed.
    """
    if not scenes:
        raise ValueError("scenes: nothing to export yet; run at least one tab first")
    members: dict[str, bytes] = {}
    for index, scene in enumerate(scenes):
        tab = str(scene.get("tab", ""))
        figure = scene.get("figure")
        if not re.fullmatch(r"[a-z0-9_]{1,40}", tab):
            raise ValueError(f"scenes[{index}]: tab must be a tab key (got {tab!r})")
        if not isinstance(figure, dict) or not isinstance(figure.get("data"), list):
            raise ValueError(f"scenes[{index}]: figure must be plotly JSON with a 'data' list")
        body = {"title": str(scene.get("title") or tab), "tab": tab,
                "params": {str(k): str(v) for k, v in dict(scene.get("params") or {}).items()},
                "provenance": scene.get("provenance") or {}, "result": scene.get("result"), "figure": figure}
        members[f"scenes/{index:02d}-{tab}.json"] = json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    total = sum(len(b) for b in members.values())
    if total > max_bytes:
        raise ValueError(f"scenes: the talk file would be {total / 2**20:.1f} MB; the limit is "
                         f"{max_bytes / 2**20:.0f} MB (LLM_EXPLORER_MAX_TALK_BYTES)")
    from explorer.serving.cache import package_version

    manifest = {"format": FORMAT, "schema_version": SCHEMA_VERSION,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "app_version": package_version(), "room": str(room), "scenes": list(members),
                "sha256": {name: _sha256(data) for name, data in members.items()}}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=1))
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _refuse(name: str, why: str):
    return ValueError(f"Talk file {name} refused: {why}")


def read_talk(source, max_bytes: int = 64 * 2**20, name: str | None = None) -> Talk:
    """Read and verify a talk file (``source``: a path or the file's bytes).

    Raises:
        ValueError: "Talk file <name> refused: <reason>" when the file is not a zip, too large, has no valid
            manifest, another format or a schema version this app cannot read, members that differ from the
            manifest's list, a SHA-256 that does not match, or a scene without a figure.
    """
    label = name or (os.path.basename(source) if isinstance(source, str) else "(upload)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise _refuse(label, f"not a zip archive ({exc})") from None
    with archive:
        infos = archive.infolist()
        size = sum(info.file_size for info in infos)
        if size > max_bytes:
            raise _refuse(label, f"{size / 2**20:.1f} MB uncompressed, over the {max_bytes / 2**20:.0f} MB limit")
        names = [info.filename for info in infos]
        if MANIFEST not in names:
            raise _refuse(label, "no manifest.json")
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except (ValueError, UnicodeDecodeError) as exc:
            raise _refuse(label, f"manifest.json is not JSON ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise _refuse(label, f"format is {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                                 f"not {FORMAT!r}")
        version = manifest.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
            raise _refuse(label, f"schema version {version!r}; this app reads version 1 to {SCHEMA_VERSION}")
        order, sums = manifest.get("scenes"), manifest.get("sha256")
        if not isinstance(order, list) or not isinstance(sums, dict) or set(order) != set(sums) or not order:
            raise _refuse(label, "the manifest must list the scenes and one SHA-256 for each")
        bad = [n for n in order if not isinstance(n, str) or not _MEMBER.fullmatch(n)]
        if bad:
            raise _refuse(label, f"unexpected member name {bad[0]!r}")
        present = set(names) - {MANIFEST}
        if present - set(order):
            raise _refuse(label, f"{sorted(present - set(order))[0]} is not in the manifest")
        if set(order) - present:
            raise _refuse(label, f"{sorted(set(order) - present)[0]} is listed in the manifest but missing")
        created = str(manifest.get("created", ""))
        scenes = []
        for member in order:
            data = archive.read(member)
            if _sha256(data) != str(sums[member]).lower():
                raise _refuse(label, f"checksum mismatch for {member}: SHA-256 {_sha256(data)[:16]}... is not the "
                                     f"manifest's {str(sums[member])[:16]}... (the file was changed or damaged)")
            try:
                body = json.loads(data)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _refuse(label, f"{member} is not JSON ({exc})") from None
            figure = body.get("figure") if isinstance(body, dict) else None
            if not isinstance(figure, dict) or not isinstance(figure.get("data"), list):
                raise _refuse(label, f"{member} has no figure")
            measured = body.get("provenance") if isinstance(body.get("provenance"), dict) else {}
            origin = f"{measured.get('kind', 'unknown')}" + (f" on {measured['model']}" if measured.get("model") else "")
            provenance = Provenance("stored", f"{label} (talk file exported {created}; originally {origin}: "
                                              f"{measured.get('source', 'source not recorded')})",
                                    when=float(measured.get("when") or 0.0) or _timestamp(created),
                                    model=str(measured.get("model", "")))
            scenes.append(StoredScene(title=str(body.get("title", member)), tab=str(body.get("tab", "")),
                                      params=dict(body.get("params") or {}), result=body.get("result"),
                                      figure=figure, measured=measured, provenance=provenance))
    return Talk(created=created, app_version=str(manifest.get("app_version", "")), room=str(manifest.get("room", "")),
                scenes=tuple(scenes))


def _timestamp(iso: str) -> float:
    try:
        return datetime.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0
