"""The Prompting & agents tab: prompting patterns measured, benchmark scoring, contamination caught, and tools,
agents and safety (agent loop, valid-call rates, injection and jailbreaks, constitutional self-critique)."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.prompting.tab import build_prompting_tab

SPEC = TabSpec(
    key="prompting", label="Prompting & agents", order=80, build=build_prompting_tab,
    api_names=("prompting", "benchmark", "contamination", "agent", "tool", "injection", "critique"),
    share_params=("task", "pattern", "k", "n_samples", "limit"),
    gpu={"run_pattern": g.generation(default_tokens="prompting_reasoning_tokens", per_token=0.05),
         "prompting_api": g.generation(default_tokens="prompting_reasoning_tokens", per_token=0.05),
         "run_benchmark": g.generation(default_tokens="max_score_tokens", per_token=0.01),
         "benchmark_api": g.generation(default_tokens="max_score_tokens", per_token=0.01),
         "run_contamination": g.generation(default_tokens="max_score_tokens", per_token=0.05),
         "contamination_api": g.generation(default_tokens="max_score_tokens", per_token=0.05),
         "run_agent": g.generation(default_tokens="agent_step_tokens", samples="max_steps", per_token=0.05),
         "agent_api": g.generation(default_tokens="agent_step_tokens", samples="max_steps", per_token=0.05),
         "run_rates": g.generation(default_tokens="agent_step_tokens", samples="limit", per_token=0.1),
         "run_injection": g.generation(default_tokens="max_score_tokens", per_token=0.01),
         "injection_api": g.generation(default_tokens="max_score_tokens", per_token=0.01),
         "run_critique": g.generation(default_tokens="critique_tokens", per_token=0.2),
         "critique_api": g.generation(default_tokens="critique_tokens", per_token=0.2)},
    cached=("prompting",),
)
