"""The training run: Hugging Face `Trainer` (so `accelerate launch`, DeepSpeed and FSDP work unchanged)
with LLaVA's additions: a modality/length-grouped sampler, a separate projector learning rate,
projector-only checkpoints for stage 1, and a report of every row not trained on as written."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from transformers import PreTrainedModel, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from cosmos_llava.errors import CosmosLlavaError
from cosmos_llava.loading import load_prompt_format, prompt_format

from . import model as model_side
from .config import TrainConfig, as_dict
from .data import (
    REPORT_FILE,
    DataReport,
    LlavaCollator,
    LlavaDataset,
    ModalityLengthGroupedSampler,
    RowEncoder,
    pad_token_id,
    read_rows,
)

log = logging.getLogger(__name__)

CONFIG_FILE = "train_config.yaml"


class LlavaTrainer(Trainer):
    def __init__(self, *args, train_config: TrainConfig, **kwargs):
        self.train_config = train_config
        super().__init__(*args, **kwargs)

    # -- data order ---------------------------------------------------------------------------------
    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.train_config.group_by_modality_length and isinstance(dataset, LlavaDataset):
            global_batch = self.args.train_batch_size * self.args.world_size * self.args.gradient_accumulation_steps
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return ModalityLengthGroupedSampler(dataset.lengths, dataset.is_multimodal, global_batch, seed)
        return super()._get_train_sampler(train_dataset)

    # -- optimizer: own learning rates for the projector and the vision tower -------------------------
    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        lr = self.args.learning_rate
        projector_lr = self.train_config.projector_lr or lr
        vision_lr = self.train_config.vision_lr or lr
        groups: dict[tuple[float, float], list] = {}
        for name, param in opt_model.named_parameters():
            if not param.requires_grad:
                continue
            group_lr = projector_lr if "multi_modal_projector" in name else vision_lr if "vision_tower" in name else lr
            weight_decay = self.args.weight_decay if name in decay else 0.0
            groups.setdefault((group_lr, weight_decay), []).append(param)
        # The main learning rate's groups go first: the Trainer logs the first group's rate.
        ordered = sorted(groups.items(), key=lambda item: item[0][0] != lr)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(
            [{"params": params, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), params in ordered],
            **optimizer_kwargs,
        )
        return self.optimizer

    # -- loss ------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                      num_items_in_batch=num_items_in_batch)
        if "pixel_values" not in inputs and self.args.world_size > 1 and self._multimodal_trains(model):
            # A text-only batch leaves the projector without gradients on this rank while another rank
            # has images: DDP (without find_unused_parameters) and ZeRO-3 would hang or fail. A zero-
            # weighted pass over a blank image keeps every rank's graph identical.
            blank = self._blank_image(model)
            if isinstance(result, tuple):
                result = (result[0] + 0.0 * blank, *result[1:])
            else:
                result = result + 0.0 * blank
        return result

    def _multimodal_trains(self, model) -> bool:
        return any(p.requires_grad for n, p in model.named_parameters()
                   if "multi_modal_projector" in n or "vision_tower" in n)

    def _blank_image(self, model) -> torch.Tensor:
        llava = model_side._llava(self.accelerator.unwrap_model(model))
        size = llava.config.vision_config.image_size
        param = next(llava.model.vision_tower.parameters())
        pixels = torch.zeros(1, 3, size, size, device=param.device, dtype=param.dtype)
        features = llava.model.get_image_features(pixel_values=pixels).pooler_output
        features = torch.cat(features) if isinstance(features, (list, tuple)) else features
        return features.float().sum()

    # -- saving ----------------------------------------------------------------------------------------
    _in_checkpoint = False

    def _save_checkpoint(self, model, trial):
        self._in_checkpoint = True
        try:
            return super()._save_checkpoint(model, trial)
        finally:
            self._in_checkpoint = False

    def _save(self, output_dir=None, state_dict=None):
        output_dir = output_dir or self.args.output_dir
        if not self.train_config.save_projector_only:
            unwrapped = self.accelerator.unwrap_model(self.model)
            if self._in_checkpoint and isinstance(unwrapped, PreTrainedModel) and state_dict is None:
                # transformers 5 saves LLaVA under its legacy key names (language_model.model.*), but the
                # Trainer resumes with a non-strict load_state_dict on the in-memory names: nothing would
                # load and the run would silently restart from the initial weights. Checkpoints therefore
                # keep the in-memory names (from_pretrained reads both); the final save stays standard.
                os.makedirs(output_dir, exist_ok=True)
                unwrapped.save_pretrained(output_dir, is_main_process=self.args.should_save,
                                          save_original_format=False)
                if self.args.should_save and self.processing_class is not None:
                    self.processing_class.save_pretrained(output_dir)
                return None
            return super()._save(output_dir, state_dict)
        if self.args.should_save:
            model_side.save_projector(self.accelerator.unwrap_model(self.model), output_dir,
                                      extra={"base_model": str(self.train_config.model or self.train_config.llm)})
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        if not self.train_config.save_projector_only:
            self._check_checkpoint_keys(resume_from_checkpoint, model or self.model)
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        model_side.load_projector(self.accelerator.unwrap_model(model or self.model), resume_from_checkpoint)


    def _check_checkpoint_keys(self, checkpoint: str, model) -> None:
        """The Trainer loads checkpoint weights non-strictly; refuse a checkpoint whose names don't match
        instead of resuming from the initial weights without a word."""
        unwrapped = self.accelerator.unwrap_model(model)
        single, index = Path(checkpoint) / "model.safetensors", Path(checkpoint) / "model.safetensors.index.json"
        if not isinstance(unwrapped, PreTrainedModel) or self.is_fsdp_enabled or self.is_deepspeed_enabled:
            return
        if single.is_file():
            from safetensors import safe_open

            with safe_open(str(single), "pt") as handle:
                saved = set(handle.keys())
        elif index.is_file():
            saved = set(json.loads(index.read_text())["weight_map"])
        else:
            return
        state = unwrapped.state_dict()
        saved_storage = {state[k].data_ptr() for k in saved if k in state}
        # tied weights (lm_head = embeddings) are saved once
        missing = {k for k in set(state) - saved if state[k].data_ptr() not in saved_storage}
        if missing:
            raise CosmosLlavaError(
                f"checkpoint {checkpoint} does not match the model: {len(missing)} weights missing "
                f"(e.g. {sorted(missing)[0]}); it was not written by this version of the trainer"
            )


class _ProgressLog(TrainerCallback):
    """Keeps the loss history for the closing summary."""

    def __init__(self):
        self.losses: list[tuple[int, float]] = []
        self.mean_loss: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append((state.global_step, float(logs["loss"])))
        if logs and "train_loss" in logs:
            self.mean_loss = float(logs["train_loss"])


@dataclass
class TrainResult:
    output_dir: Path
    global_step: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    report: DataReport = field(default_factory=DataReport)
    trainable_parameters: int = 0
    total_parameters: int = 0
    resumed_from: str | None = None
    mean_loss: float | None = None  # the Trainer's train_loss: the mean over this run's steps

    def summary(self) -> list[str]:
        lines = self.report.lines()
        logged = [f"{loss:.4f} at step {step}" for step, loss in self.losses[:1] + self.losses[1:][-1:]]
        mean = f"run mean {self.mean_loss:.4f}" if self.mean_loss is not None else ""
        if logged or mean:
            lines.append("loss: " + "; ".join(filter(None, [" -> ".join(logged), mean])))
        lines.append(f"saved to {self.output_dir}")
        return lines


def training_arguments(config: TrainConfig) -> TrainingArguments:
    kwargs = dict(config.trainer)
    cuda = torch.cuda.is_available()
    if kwargs.get("bf16") == "auto":
        kwargs["bf16"] = cuda and torch.cuda.is_bf16_supported()
    if kwargs.get("tf32") == "auto":
        kwargs["tf32"] = True if cuda and torch.cuda.get_device_capability()[0] >= 8 else None
    kwargs.setdefault("dataloader_pin_memory", cuda)
    if not cuda and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        kwargs.setdefault("use_cpu", True)  # several CPU processes: the Trainer then joins them over gloo
    checkpointing = kwargs.get("activation_checkpointing") or kwargs.get("gradient_checkpointing")
    if checkpointing and not (kwargs.get("activation_checkpointing_kwargs") or kwargs.get("gradient_checkpointing_kwargs")):
        # non-reentrant: gradients reach the trainable projector through frozen, checkpointed blocks
        kwargs["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    deepspeed = kwargs.get("deepspeed")
    if isinstance(deepspeed, str):
        if not Path(deepspeed).is_file():
            raise CosmosLlavaError(f"DeepSpeed config not found: {deepspeed}")
        if importlib.util.find_spec("deepspeed") is None:
            raise CosmosLlavaError("the 'deepspeed' option needs DeepSpeed installed: pip install deepspeed")
    _check_reporters(kwargs.get("report_to"))
    try:
        return TrainingArguments(**kwargs)
    except (ValueError, TypeError, ImportError) as exc:
        raise CosmosLlavaError(f"bad training option: {str(exc).splitlines()[0]}") from None


def _check_reporters(report_to) -> None:
    """A logger whose package is missing fails only after the model has loaded: say so up front."""
    from transformers.integrations import integration_utils

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    for name in names:
        available = getattr(integration_utils, f"is_{name}_available", None)
        if available is not None and not available():
            raise CosmosLlavaError(f"report_to={name} needs its package installed: pip install {name}")


def resolve_resume(config: TrainConfig, output_dir: str) -> str | None:
    if not config.resume:
        return None
    if config.resume == "auto":
        return get_last_checkpoint(output_dir) if os.path.isdir(output_dir) else None
    if not os.path.isdir(config.resume):
        raise CosmosLlavaError(f"checkpoint to resume from not found: {config.resume}")
    return config.resume


def build_dataset(config: TrainConfig, fmt) -> LlavaDataset:
    rows, skipped = read_rows(config.data, config.image_folder, check_images=config.check_images,
                              skip_bad_rows=config.skip_bad_rows)
    encoder = RowEncoder.for_model(fmt, config.max_length)
    return LlavaDataset(rows, encoder, fmt.processor.image_processor, config.skip_bad_rows,
                        DataReport(skipped=list(skipped)), images_only=config.stage == 1)


def write_records(out: Path, config: TrainConfig, report: DataReport) -> None:
    """The run's config and data report next to its checkpoints (rewritten at the end)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(yaml.safe_dump(as_dict(config), allow_unicode=True, sort_keys=False),
                                   encoding="utf-8")
    (out / REPORT_FILE).write_text(json.dumps(report.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")


def train(config: TrainConfig, callbacks: list[TrainerCallback] = (), echo=print) -> TrainResult:
    """Run one stage as configured; returns what happened. `echo` gets the human-readable report."""
    args = training_arguments(config)  # before the model loads: DeepSpeed ZeRO-3 must see it first
    main = args.process_index == 0
    say = echo if main else (lambda *_: None)
    set_seed(args.seed)

    # Data first when the model is a folder: a bad row should stop the run before minutes of loading.
    dataset = None
    if config.model:
        dataset = build_dataset(config, load_prompt_format(config.model, config.template, config.system_prompt))
    loaded = model_side.load_for_training(config, args)
    fmt = prompt_format(loaded.processor, loaded.config, config.template, config.system_prompt)
    if dataset is None:
        dataset = build_dataset(config, fmt)
    out = Path(args.output_dir)
    if main:
        write_records(out, config, dataset.report)
    for line in dataset.report.lines():
        say(line)

    net = model_side.prepare_model(loaded, config, args)
    trainable, total = model_side.count_parameters(net)
    say(f"stage {config.stage} ({config.method}): training {trainable:,} of {total:,} parameters")
    resume = resolve_resume(config, args.output_dir)
    if resume:
        say(f"resuming from {resume}")

    progress = _ProgressLog()
    trainer = LlavaTrainer(
        model=net,
        args=args,
        train_dataset=dataset,
        data_collator=LlavaCollator(pad_token_id(fmt.tokenizer), pack_to=config.max_length if config.packing else None),
        processing_class=loaded.processor,
        train_config=config,
        callbacks=[progress, *callbacks],
    )
    trainer.train(resume_from_checkpoint=resume)

    record = {"stage": config.stage, "method": config.method, "data": str(config.data),
              "steps": trainer.state.global_step}
    base = model_side._llava(net)
    if isinstance(getattr(base.config, "cosmos_llava", None), dict):
        base.config.cosmos_llava = {**base.config.cosmos_llava, "training": record}
    trainer.save_model()
    if main:
        write_records(out, config, dataset.report)
    result = TrainResult(out, trainer.state.global_step, progress.losses, dataset.report, trainable, total, resume,
                         progress.mean_loss)
    for line in result.summary():
        say(line)
    return result
