"""Training configuration: a YAML recipe plus `key=value` overrides, checked before anything loads.

A config is flat. Keys of our own (below, `TrainConfig`) describe the model, data and stage; any other key
must be a `transformers.TrainingArguments` field (learning_rate, per_device_train_batch_size, save_steps,
deepspeed, fsdp, report_to, ...) and is passed straight through, so every engine option the Trainer
knows is available without a second list to keep in sync. A config may start from another with
`defaults: other.yaml` (a path relative to the config's own folder); its keys then override.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cosmos_llava.errors import CosmosLlavaError

STAGES = (1, 2)
METHODS = ("full", "lora", "qlora")


@dataclass
class TrainConfig:
    # What to start from: a LLaVA folder (composed, converted, or a stage-1 output) ...
    model: str | None = None
    # ... or a vision encoder and an LLM, composed in memory (stage 1 from scratch).
    vision: str | None = None
    llm: str | None = None
    projector_type: str = "mlp2x_gelu"
    llm_template: str | None = None  # when composing: a named template for an LLM that has none
    # Projector weights saved by a projector-only stage-1 run (projector.safetensors or its folder).
    projector: str | None = None

    stage: int = 2
    method: str = "full"  # stage 2: full, lora or qlora (stage 1 trains the projector only)
    tune_vision: bool = False  # stage 2: also train the vision tower
    tune_projector: bool = True  # stage 2: train the projector too (with LoRA: as a fully trained module)
    projector_lr: float | None = None  # default: learning_rate
    vision_lr: float | None = None  # default: learning_rate

    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )

    data: str | None = None
    image_folder: str | None = None
    template: str | None = None  # override the model's chat template (stage 1 uses "plain")
    system_prompt: str | None = None  # default: the model's recorded prompt; "" for none
    max_length: int = 2048
    group_by_modality_length: bool = True
    packing: bool = False  # padding-free batches: each batch's rows packed into sequences of up to max_length
    skip_bad_rows: bool = False
    check_images: bool = True  # open every image header before training starts

    dtype: str = "auto"  # weights of the frozen parts: auto = bf16 on CUDA, fp32 on CPU
    save_projector_only: bool = False  # stage 1: save (and checkpoint) only the projector
    resume: str | None = None  # a checkpoint folder, or "auto" for the newest in output_dir

    # Everything else: transformers.TrainingArguments fields.
    trainer: dict[str, Any] = field(default_factory=dict)


OWN_KEYS = {f.name for f in dataclasses.fields(TrainConfig)} - {"trainer"}

# Our defaults for TrainingArguments (LLaVA's recipe); a config can change any of them.
TRAINER_DEFAULTS: dict[str, Any] = {
    "output_dir": "runs/cosmos-llava",
    "num_train_epochs": 1,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 2e-5,
    "weight_decay": 0.0,
    "warmup_steps": 0.03,  # a float < 1 is a fraction of the total steps
    "lr_scheduler_type": "cosine",
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 500,
    "save_total_limit": 2,
    "report_to": "none",
    "bf16": "auto",  # auto: on when the GPU supports it
    "tf32": "auto",
    "seed": 42,
    "remove_unused_columns": False,  # the collator needs pixel_values and labels as they are
    "dataloader_num_workers": 0,
    "disable_tqdm": False,  # a progress bar even when library logging is quieted (the CLI quiets it)
}


def trainer_fields() -> dict[str, str]:
    """TrainingArguments field names and their type annotations (as text)."""
    from transformers import TrainingArguments

    return {f.name: str(f.type) for f in dataclasses.fields(TrainingArguments) if f.init}


def parse_override(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise CosmosLlavaError(f"bad override '{item}': expected key=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise CosmosLlavaError(f"config {path} includes itself through 'defaults'")
    if not path.is_file():
        raise CosmosLlavaError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CosmosLlavaError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise CosmosLlavaError(f"config {path} must be a mapping of keys to values")
    base = data.pop("defaults", None)
    if base:
        merged = _read_yaml(path.parent / base, seen + (path,))
        merged.update(data)
        return merged
    return data


def load_config(path: str | Path | None = None, overrides: list[str] = (), **values) -> TrainConfig:
    """Read a YAML config, apply `key=value` overrides (then keyword values), validate, return it."""
    raw: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    for item in overrides:
        key, value = parse_override(item)
        raw[key] = value
    raw.update(values)
    return build_config(raw)


# PyYAML reads "1e-3" (no dot) as a string, YAML 1.1's rule; every config writer means a number.
_SCIENTIFIC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _coerce(value: Any) -> Any:
    return float(value) if isinstance(value, str) and _SCIENTIFIC.match(value.strip()) else value


def build_config(raw: dict[str, Any]) -> TrainConfig:
    known_trainer = trainer_fields()
    own: dict[str, Any] = {}
    trainer = dict(TRAINER_DEFAULTS)
    for key, value in raw.items():
        value = _coerce(value)
        if key in OWN_KEYS:
            own[key] = value
        elif key in known_trainer:
            if value is False and "bool" not in known_trainer[key]:
                value = "no"  # YAML 1.1 reads `save_strategy: no` as false; the option means the word
            trainer[key] = value
        else:
            raise CosmosLlavaError(
                f"unknown config key '{key}': not a training option nor a transformers.TrainingArguments field"
            )
    config = TrainConfig(**own, trainer=trainer)
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    if config.stage not in STAGES:
        raise CosmosLlavaError(f"stage must be 1 or 2, got {config.stage!r}")
    if config.method not in METHODS:
        raise CosmosLlavaError(f"unknown method '{config.method}'; choose one of: {', '.join(METHODS)}")
    if config.stage == 1 and config.method != "full":
        raise CosmosLlavaError("stage 1 trains the projector only: method must be 'full'")
    if config.save_projector_only and config.stage != 1:
        raise CosmosLlavaError("save_projector_only is for stage 1 (stage 2 trains more than the projector)")
    if bool(config.model) == bool(config.vision or config.llm):
        raise CosmosLlavaError("give either 'model' (a LLaVA folder) or both 'vision' and 'llm'")
    if (config.vision is None) != (config.llm is None):
        raise CosmosLlavaError("composing needs both 'vision' and 'llm'")
    if not config.data:
        raise CosmosLlavaError("no training data: set 'data' to a LLaVA JSON or JSONL file")
    if not isinstance(config.max_length, int) or config.max_length < 16:
        raise CosmosLlavaError(f"max_length must be an integer >= 16, got {config.max_length!r}")
    if not config.trainer.get("output_dir"):
        raise CosmosLlavaError("output_dir is required")


def as_dict(config: TrainConfig) -> dict[str, Any]:
    """The flat form (as written in YAML), for logs and for the record saved with the model."""
    out = {k: v for k, v in dataclasses.asdict(config).items() if k != "trainer"}
    out.update(config.trainer)
    return out
