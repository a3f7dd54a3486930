"""Two-stage LLaVA training: projector alignment, then visual instruction tuning (full, LoRA, QLoRA).

Run `python -m training --config training/configs/stage1.yaml`; see README.md, "Training".
"""

import logging

# bitsandbytes (imported through peft) warns at import, on every CPU machine, that an optional fast
# kernel package is not installed; it changes nothing we do.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from .config import TrainConfig, load_config  # noqa: E402
from .data import BadRowError, LlavaCollator, LlavaDataset, ModalityLengthGroupedSampler, RowEncoder, read_rows  # noqa: E402
from .engine import LlavaTrainer, TrainResult, train  # noqa: E402

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
