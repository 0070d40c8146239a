"""The Fine-tuning tab (key 'lora'): a live PEFT LoRA fine-tune (SFT) and DPO on preference pairs, before/after
answers, adapters."""
from components import gpu_budget as g
from components.registry import TabSpec
from components.tabs.lora.tab import build_lora_tab

SPEC = TabSpec(
    key='lora', label='Fine-tuning', order=60, build=build_lora_tab,
    api_names=('lora_train', 'lora_generate', 'dpo_train'),
    share_params=('dataset_name', 'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'use_rslora', 'qlora', 'learning_rate', 'steps', 'batch_size'),
    # train / lora_train / train_dpo / dpo_train start the server-side run thread (not a GPU call); LoRA's chunks are
    # sized by gpu_budget. held_out answers 4 held-out prompts with up to 3 models.
    gpu={'ask': g.generation(), 'shift': g.generation(per_token=0.02), 'norms': g.fixed(10),
         'compare_all': g.generation(per_token=0.2), 'lora_generate': g.generation(),
         'held_out': g.generation(per_token=0.12)},
)
