"""Where a number comes from: every lens result carries a :class:`Provenance`.

Kinds: ``measured`` (computed on the model just now), ``cached`` (measured earlier and served from the result
cache, with when), ``stored`` (read from a bench file in ``data/``, with the command that made it), ``formula``
(computed from a formula or a config, with its source), ``simulated`` (an illustration driven by real inputs,
such as the paged-attention block table). The UI shows it as a badge; the JSON APIs return ``to_api()``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

KINDS = ("measured", "cached", "stored", "formula", "simulated")


@dataclass(frozen=True)
class Provenance:
    """The origin of a result.

    Attributes:
        kind: one of :data:`KINDS`.
        source: the command, file, formula or code path behind the numbers (e.g. ``"engine forward, eager attention"``,
            ``"data/quantization/quality_smollm2.json (python bench/bench_quantization.py --write)"``).
        when: Unix time (seconds) the numbers were computed.
        model: the model name, or ``""`` when no model was involved.
    """

    kind: str
    source: str
    when: float = field(default_factory=time.time)
    model: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"provenance kind must be one of {KINDS} (got {self.kind!r})")

    def as_cached(self) -> "Provenance":
        """The same origin served again from the cache: kind ``cached``, ``when`` kept (when it was computed)."""
        return dataclasses.replace(self, kind="cached")

    def to_api(self) -> dict:
        """JSON form: ``{"kind", "source", "when" (Unix seconds), "model"}``."""
        return {"kind": self.kind, "source": self.source, "when": self.when, "model": self.model}


def measured(source: str, model: str = "") -> Provenance:
    """Computed on the model just now."""
    return Provenance("measured", source, model=model)


def formula(source: str, model: str = "") -> Provenance:
    """Computed from a formula or config; ``source`` names it (paper, config field)."""
    return Provenance("formula", source, model=model)


def stored(path: str, command: str, when: float | None = None, model: str = "") -> Provenance:
    """Read from a stored bench file; ``command`` is the exact command that wrote it."""
    return Provenance("stored", f"{path} ({command})", when=time.time() if when is None else when, model=model)


def simulated(source: str, model: str = "") -> Provenance:
    """An illustration computed from real inputs (not a measurement of the thing shown)."""
    return Provenance("simulated", source, model=model)


META_PACKAGES = ("torch", "transformers", "bitsandbytes", "sentence-transformers", "tokenizers", "numpy")


def run_meta(script: str, argv: list[str] | None, settings: dict) -> dict:
    """How a stored table was made: ``{"command", "date" (UTC, ISO 8601), "versions": {package: version},
    "settings"}``; ``command`` is ``python <script> <argv>`` (``argv=None``: this process's arguments)."""
    import datetime
    import platform
    import shlex
    from importlib import metadata

    import sys

    args = sys.argv[1:] if argv is None else list(argv)
    versions = {"python": platform.python_version()}
    for package in META_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {"command": " ".join(["python", script] + [shlex.quote(a) for a in args]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions, "settings": dict(settings)}


def meta_line(meta: dict | None) -> str:
    """One readable line from :func:`run_meta`'s dict: command, date, library versions, settings."""
    if not meta:
        return "how it was made (date, library versions) was not recorded"
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    settings = ", ".join(f"{k}={v}" for k, v in meta.get("settings", {}).items())
    return (f"made by `{meta.get('command', '?')}` on {meta.get('date', '?')[:19].replace('T', ' ')} UTC"
            f" ({versions}){'; settings: ' + settings if settings else ''}"
            f"{' (' + meta['note'] + ')' if meta.get('note') else ''}")
