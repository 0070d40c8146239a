"""Checks made before anything is downloaded from the Hugging Face Hub.

A Hub id is validated against the Hub's naming rules, then its metadata is fetched with a short
timeout so that an offline machine answers within seconds. Gated, missing, remote-code-only,
non-safetensors and too-large repositories are refused with a message naming the embedded models.
"""
from __future__ import annotations

import os

from models.registry import EMBEDDED, is_valid_hub_id
from models.settings import hub_allow_list

HUB_TIMEOUT_S = 5.0
_OFFER = "Use one of the embedded models instead: " + ", ".join(EMBEDDED) + "."


def hub_offline() -> bool:
    """True when the Hub must not be contacted (``HF_HUB_OFFLINE`` set)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def allowed(model_id: str) -> bool:
    """True when the configured allow-list (``LLM_EXPLORER_HUB_ALLOW_LIST``) is empty or holds the id."""
    allow = hub_allow_list()
    return not allow or model_id in allow


def check_model(model_id: str, max_params: int | None = None, need_weights: bool = True):
    """Check that a Hub model can be loaded safely, before downloading any weights.

    Args:
        model_id: ``owner/name``.
        need_weights: False when only the tokenizer is wanted (skips the weight checks).
        max_params: refuse models with more parameters than this (default: what fits in half the
            available RAM in fp32).
    Returns:
        The ``huggingface_hub`` ``ModelInfo``.
    Raises:
        ValueError: invalid id, not allowed, offline or unreachable, missing, gated/private, no
            safetensors weights, needs remote code, or too large; each message offers the embedded models.
    """
    if not is_valid_hub_id(model_id):
        raise ValueError(f"{model_id!r} is not a valid Hugging Face Hub id (expected 'owner/name'). {_OFFER}")
    if not allowed(model_id):
        raise ValueError(f"{model_id!r} is not on this server's allow-list. {_OFFER}")
    if hub_offline():
        raise ValueError(f"The Hugging Face Hub is not reachable from here (offline mode), so {model_id!r} "
                         f"cannot be loaded. {_OFFER}")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        info = HfApi().model_info(model_id, timeout=HUB_TIMEOUT_S, files_metadata=False)
    except GatedRepoError:
        raise ValueError(f"{model_id!r} is gated on the Hub (needs an accepted licence and a token). {_OFFER}") from None
    except RepositoryNotFoundError:
        raise ValueError(f"{model_id!r} does not exist on the Hub or is private. {_OFFER}") from None
    except Exception as exc:  # connection errors, timeouts, proxies: all mean "unreachable"
        raise ValueError(f"The Hugging Face Hub is not reachable ({type(exc).__name__}). {_OFFER}") from None
    if getattr(info, "gated", False) or getattr(info, "private", False):
        raise ValueError(f"{model_id!r} is gated or private. {_OFFER}")
    if not need_weights:
        return info
    files = [s.rfilename for s in (info.siblings or [])]
    if not any(f.endswith(".safetensors") for f in files):
        raise ValueError(f"{model_id!r} has no safetensors weights; only safetensors are loaded. {_OFFER}")
    config = getattr(info, "config", None) or {}
    if "auto_map" in config:
        raise ValueError(f"{model_id!r} needs custom remote code, which is never run here. {_OFFER}")
    params = getattr(getattr(info, "safetensors", None), "total", None)
    if params:
        if max_params is None:
            import psutil

            max_params = psutil.virtual_memory().available // 8
        if params > max_params:
            raise ValueError(f"{model_id!r} has {params / 1e9:.1f} B parameters (~{params * 4 / 2**30:.1f} GiB in fp32); "
                             f"this server accepts at most {max_params / 1e9:.2f} B. {_OFFER}")
    return info
