"""The ``C = 6 N D`` calculator and the models drawn as points on it: parameters and training tokens, each with
its source.

``C = 6 N D`` (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", arXiv:2001.08361, section 2.1):
training costs about 6 FLOPs per parameter per token (2 for the forward pass, 4 for the backward pass).
Chinchilla's compute-optimal ratio is about 20 tokens per parameter (Hoffmann et al. 2022, arXiv:2203.15556,
Table 3); a model trained far past it is over-trained on purpose: a smaller model costs less at every inference
call (Sardana et al. 2024, "Beyond Chinchilla-Optimal", arXiv:2401.00448).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from models.shapes import get_shape

CHINCHILLA_TOKENS_PER_PARAM = 20.0
CHINCHILLA_SOURCE = "Hoffmann et al. 2022, arXiv:2203.15556, Table 3 (about 20 tokens per parameter)"
HOFFMANN_TABLE1 = "Hoffmann et al. 2022, arXiv:2203.15556, Table 1"


@dataclass(frozen=True)
class KnownModel:
    """A model drawn on the calculator.

    Attributes:
        name: display name. params: parameters (all of them, embeddings included; for a mixture of experts, all
            experts). tokens: training tokens. params_source / tokens_source: where each number comes from.
        embedded: True for the two models this app runs.
    """

    name: str
    params: float
    tokens: float
    params_source: str
    tokens_source: str
    embedded: bool = False

    @property
    def compute(self) -> float:
        """Training FLOPs by ``C = 6 N D``."""
        return training_flops(self.params, self.tokens)

    @property
    def tokens_per_param(self) -> float:
        """``D / N``."""
        return self.tokens / self.params

    def as_dict(self) -> dict:
        """JSON of the point with its compute and ratio."""
        return {"name": self.name, "params": self.params, "tokens": self.tokens, "compute": self.compute,
                "tokens_per_param": self.tokens_per_param, "params_source": self.params_source,
                "tokens_source": self.tokens_source, "embedded": self.embedded}


def _shape(name: str) -> tuple[float, str]:
    shape = get_shape(name)
    return float(shape.num_params), f"https://huggingface.co/{shape.hub_id} (model card; config.json)"


def known_models() -> list[KnownModel]:
    """The calculator's points, the embedded models first."""
    smol, smol_src = _shape("SmolLM2 135M")
    gemma, gemma_src = _shape("Gemma 3 270M")
    l2_7, l2_7_src = _shape("Llama-2 7B")
    l2_70, l2_70_src = _shape("Llama-2 70B")
    l3_8, l3_8_src = _shape("Llama-3 8B")
    l3_70, l3_70_src = _shape("Llama-3 70B")
    return [
        KnownModel("SmolLM2-135M", smol, 2e12, smol_src,
                   "https://huggingface.co/HuggingFaceTB/SmolLM2-135M (model card: trained on 2 trillion tokens)",
                   embedded=True),
        KnownModel("Gemma 3 270M", gemma, 6e12, gemma_src,
                   "https://huggingface.co/google/gemma-3-270m (model card: the 270M model was trained with "
                   "6 trillion tokens)", embedded=True),
        KnownModel("GPT-3", 175e9, 300e9, HOFFMANN_TABLE1, HOFFMANN_TABLE1),
        KnownModel("Gopher", 280e9, 300e9, HOFFMANN_TABLE1, HOFFMANN_TABLE1),
        KnownModel("Chinchilla", 70e9, 1.4e12, HOFFMANN_TABLE1, HOFFMANN_TABLE1),
        KnownModel("Llama-2 7B", l2_7, 2e12, l2_7_src, "Touvron et al. 2023, Llama 2, arXiv:2307.09288, Table 1"),
        KnownModel("Llama-2 70B", l2_70, 2e12, l2_70_src, "Touvron et al. 2023, Llama 2, arXiv:2307.09288, Table 1"),
        KnownModel("Llama-3 8B", l3_8, 15e12, l3_8_src,
                   "https://huggingface.co/meta-llama/Meta-Llama-3-8B (model card: 15T+ tokens)"),
        KnownModel("Llama-3 70B", l3_70, 15e12, l3_70_src,
                   "https://huggingface.co/meta-llama/Meta-Llama-3-70B (model card: 15T+ tokens)"),
    ]


def training_flops(params: float, tokens: float) -> float:
    """``C = 6 N D`` FLOPs for ``params`` parameters trained on ``tokens`` tokens.

    Raises:
        ValueError: either is not a finite number > 0.
    """
    for name, value in (("params", params), ("tokens", tokens)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number (got {value!r})") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a finite number > 0 (got {value})")
    return 6.0 * float(params) * float(tokens)


def calculate(params: float, tokens: float) -> dict:
    """The calculator's answer: ``{"params", "tokens", "compute" (6ND FLOPs), "tokens_per_param",
    "chinchilla_ratio" (tokens per parameter / 20), "chinchilla_tokens" (20 N), "verdict"}``.

    Raises:
        ValueError: see :func:`training_flops`.
    """
    compute = training_flops(params, tokens)
    ratio = float(tokens) / float(params)
    times = ratio / CHINCHILLA_TOKENS_PER_PARAM
    if times > 2:
        verdict = (f"over-trained {times:,.0f}x past Chinchilla's ~20 tokens per parameter: more training compute "
                   "than the compute-optimal split, bought for a smaller model that is cheaper at every inference")
    elif times < 0.5:
        verdict = "under-trained: the same compute would reach a lower loss with a smaller model on more tokens"
    else:
        verdict = "close to Chinchilla's compute-optimal ~20 tokens per parameter"
    return {"params": float(params), "tokens": float(tokens), "compute": compute, "tokens_per_param": ratio,
            "chinchilla_ratio": times, "chinchilla_tokens": CHINCHILLA_TOKENS_PER_PARAM * float(params),
            "verdict": verdict}
