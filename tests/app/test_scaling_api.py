"""/scaling_fit and /moe_compare through gradio_client on the app launched in-process."""
from __future__ import annotations

import pytest


def test_scaling_fit_api(client):
    out = client.predict(None, api_name="/scaling_fit")
    assert {"runs", "fit", "intervals", "compute", "optimal_params", "optimal_tokens",
            "tokens_per_param_optimal"} <= set(out)
    assert all({"non_embedding_params", "tokens", "loss"} <= set(r) for r in out["runs"])
    assert 6 * out["optimal_params"] * out["optimal_tokens"] == pytest.approx(out["compute"], rel=1e-9)
    far = client.predict(out["compute"] * 100, api_name="/scaling_fit")
    assert "extrapolation" in " ".join(far["notices"])
    with pytest.raises(Exception, match="compute"):
        client.predict(-5, api_name="/scaling_fit")


def test_moe_compare_api(client):
    out = client.predict({"steps": 2, "d_model": 16, "experts": 3, "top_k": 2, "aux_loss": 0}, api_name="/moe_compare")
    assert {"dense_losses", "moe_losses", "router_load", "active_params", "total_params"} <= set(out)
    assert len(out["dense_losses"]) == len(out["moe_losses"]) == 2 and out["moe_no_aux_losses"] == []
    assert all(sum(step) == out["tokens_routed"] * 2 for step in out["router_load"])
    with pytest.raises(Exception, match="top_k"):
        client.predict({"experts": 2, "top_k": 4}, api_name="/moe_compare")
    with pytest.raises(Exception, match="experts must be between"):
        client.predict({"experts": 1000}, api_name="/moe_compare")
