"""Two-stage LLaVA training: projector alignment, then visual instruction tuning (full, LoRA, QLoRA).

Run `python -m training --config training/configs/stage1.yaml`; see README.md, "Training".
"""

from .config import TrainConfig, load_config
from .data import BadRowError, LlavaCollator, LlavaDataset, ModalityLengthGroupedSampler, RowEncoder, read_rows
from .engine import LlavaTrainer, TrainResult, train

__all__ = [
    "BadRowError",
    "LlavaCollator",
    "LlavaDataset",
    "LlavaTrainer",
    "ModalityLengthGroupedSampler",
    "RowEncoder",
    "TrainConfig",
    "TrainResult",
    "load_config",
    "read_rows",
    "train",
]
