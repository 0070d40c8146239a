"""The Training & scale tab (key 'training'): a tiny model pretrained live, induction heads forming, the
hyperparameter table made live, data quality vs quantity; scaling laws fitted to runs made here, a C = 6ND
calculator, and a tiny mixture of experts beside a dense model."""
from components.registry import TabSpec
from components.tabs.training.tab import build_training_tab

SPEC = TabSpec(
    key='training', label='Training & scale', order=63, build=build_training_tab,
    api_names=('pretrain', 'scaling_fit', 'moe_compare'),
    share_params=('layers', 'd_model', 'heads', 'seq_len', 'batch_size', 'steps', 'lr', 'warmup', 'weight_decay',
                  'clip', 'dropout', 'seed', 'row'),
    # training runs on the CPU in a background thread of its own (a tiny model); nothing runs on a GPU
    gpu={},
)
