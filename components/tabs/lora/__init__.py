"""The LoRA tab: a live PEFT fine-tune, before/after answers, adapters."""
from components.registry import TabSpec
from components.tabs.lora.tab import build_lora_tab

SPEC = TabSpec(
    key='lora', label='LoRA', order=60, build=build_lora_tab,
    api_names=('lora_train', 'lora_generate'),
    share_params=('dataset_name', 'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'use_rslora', 'qlora', 'learning_rate', 'steps', 'batch_size'),
    gpu_seconds=lambda limits: int(limits.max_run_seconds),
)
