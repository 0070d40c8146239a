"""The LoRA tab: a live PEFT fine-tune, before/after answers, adapters."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.lora.tab import build_lora_tab

SPEC = TabSpec(
    key='lora', label='LoRA', order=60, build=build_lora_tab,
    api_names=('lora_train', 'lora_generate'),
    share_params=('dataset_name', 'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'use_rslora', 'qlora', 'learning_rate', 'steps', 'batch_size'),
    # train / lora_train start the server-side run thread (not a GPU call); its chunks are sized by gpu_budget.
    gpu={'ask': g.generation(), 'shift': g.generation(per_token=0.02), 'norms': g.fixed(10),
         'compare_all': g.generation(per_token=0.2), 'lora_generate': g.generation()},
)
