"""Which layers a quantisation method touches (shared by ``methods.py`` and ``error.py`` without a cycle)."""
from __future__ import annotations


def quantizable_linear_names(model) -> list[str]:
    """Names of the linear layers a method quantises: every ``nn.Linear`` except the output head.

    bitsandbytes layers subclass ``nn.Linear``, so the same names come back from a quantised copy.
    """
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [name for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not head]


def output_head_names(model) -> list[str]:
    """Module names of the output head (``lm_head``), which every method leaves in the reference dtype."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [name for name, module in model.named_modules() if head is not None and module is head]
