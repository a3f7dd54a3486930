"""The one model loader, used by the CLI chat, the app, the server, evaluation and training.

`load_model()` returns a `LoadedModel`: the transformers model and processor plus what this project
adds on top (the resolved chat template, its stop rules, the system prompt). The same flag set
(`add_model_arguments`) is shared by every command.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig

from .conversation import Conversation
from .errors import CosmosLlavaError, ModelLoadError, first_line
from .templates import DEFAULT_SYSTEM_PROMPT, ChatTemplate, resolve_chat_template

log = logging.getLogger(__name__)

QUANT_CHOICES = ("none", "8bit", "4bit")
DTYPE_CHOICES = ("auto", "bfloat16", "float16", "float32")
# In transformers 5 these are the module names; listing them replaces bitsandbytes' defaults, so all
# three are named: the vision tower and projector are small and precision-sensitive, lm_head too.
UNQUANTIZED_MODULES = ["model.vision_tower", "model.multi_modal_projector", "lm_head"]


def model_thread() -> ThreadPoolExecutor:
    """The single thread that runs all of one model's compute (loading and every generate call).

    On CPU each thread that runs torch ops gets its own OpenMP team, and two teams on the same cores
    slow each other down: measured here, generate in a fresh thread ran ~30% slower than on the
    thread that loaded the model. One long-lived thread per model avoids that, and serialises that
    model's requests, which is what a single GPU wants anyway.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="cosmos-llava-model")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    processor: object
    template: ChatTemplate
    system_prompt: str | None
    name: str
    quant: str = "none"
    executor: ThreadPoolExecutor = field(default_factory=model_thread, repr=False)
    context_limit: int | None = None  # overrides the config's max_position_embeddings (--context-length)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def config(self):
        return getattr(self.model, "config")

    @property
    def context_length(self) -> int:
        return self.context_limit or int(self.config.text_config.max_position_embeddings)

    @property
    def image_token_count(self) -> int:
        """Placeholder tokens (= image features) per image."""
        return int(self.config.image_seq_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def vision_dtype(self) -> torch.dtype:
        """Pixel values must match the (never quantized) vision tower's dtype."""
        for name, param in self.model.named_parameters():
            if "vision_tower" in name and param.is_floating_point():
                return param.dtype
        return default_dtype()

    def new_conversation(self, system_prompt: str | None = None) -> Conversation:
        prompt = self.system_prompt if system_prompt is None else (system_prompt or None)
        return Conversation(system_prompt=prompt if self.template.uses_system_prompt else None)


def default_dtype() -> torch.dtype:
    return torch.bfloat16 if torch.cuda.is_available() else torch.float32


def quantization_config(quant: str) -> BitsAndBytesConfig | None:
    if quant not in QUANT_CHOICES:
        raise CosmosLlavaError(f"unknown quantization '{quant}'; choose one of: {', '.join(QUANT_CHOICES)}")
    if quant == "none":
        return None
    _require_bitsandbytes(quant)
    if quant == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(UNQUANTIZED_MODULES))
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
        llm_int8_skip_modules=list(UNQUANTIZED_MODULES),
    )


def _require_bitsandbytes(quant: str) -> None:
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError(f"--quant {quant} needs bitsandbytes, which is not installed (pip install bitsandbytes)")
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:  # broken CUDA libraries, unsupported platform, ...
        raise ModelLoadError(f"--quant {quant}: bitsandbytes cannot run on this machine: {first_line(exc)}") from None


def _check_folder(model: str) -> None:
    path = Path(model)
    if not path.exists():
        if model.startswith((".", "/", "~")) or model.count("/") > 1:
            raise ModelLoadError(f"model folder not found: {model}")
        return  # a hub id: transformers resolves it (and honours HF_HUB_OFFLINE)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"no config.json in '{model}': not a model folder")
    config = json.loads(config_file.read_text())
    if "mm_vision_tower" in config:
        raise ModelLoadError(
            f"'{model}' is an original-LLaVA checkpoint; convert it first: "
            f"python -m cosmos_llava convert --src {model} --out DIR"
        )
    if config.get("model_type") != "llava":
        raise ModelLoadError(f"'{model}' is a '{config.get('model_type')}' model, not a LLaVA model")


def load_model(
    model: str,
    quant: str = "none",
    dtype: str | torch.dtype = "auto",
    device_map: str | None = None,
    adapter: str | None = None,
    template: str | None = None,
    system_prompt: str | None = None,
    context_length: int | None = None,
) -> LoadedModel:
    """Load a LLaVA folder or hub id, optionally quantized and with a LoRA adapter.

    dtype "auto" is bf16 on CUDA and fp32 on CPU. `device_map=None` is "auto" on CUDA; "none" loads
    without a device map (what a trainer that places the model itself wants). `system_prompt=None`
    uses the model's recorded prompt (or the default Turkish one); "" means no system prompt.
    `context_length` replaces the config's max_position_embeddings as the prompt + reply budget.
    """
    model = str(model)
    _check_folder(model)
    if context_length is not None and context_length < 1:
        raise CosmosLlavaError(f"--context-length must be at least 1, got {context_length}")
    qconfig = quantization_config(quant)
    torch_dtype = default_dtype() if dtype == "auto" else (getattr(torch, dtype) if isinstance(dtype, str) else dtype)
    if device_map is None:
        device_map = "auto" if torch.cuda.is_available() else ("cpu" if qconfig else None)
    elif device_map == "none":
        device_map = None
    kwargs = dict(dtype=torch_dtype)
    if device_map is not None:
        kwargs["device_map"] = device_map
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig

    def load():
        try:
            processor = AutoProcessor.from_pretrained(model, backend="pil")
            net = AutoModelForImageTextToText.from_pretrained(model, **kwargs)
        except OSError as exc:
            raise ModelLoadError(f"cannot load model '{model}': {first_line(exc)}") from None
        except (RuntimeError, ValueError, ImportError) as exc:
            if qconfig is not None:
                raise ModelLoadError(f"--quant {quant} failed on this machine: {first_line(exc)}") from None
            raise
        if adapter:
            net = _attach_adapter(net, adapter)
        return processor, net.eval()

    executor = model_thread()
    try:
        processor, net = executor.submit(load).result()
    except BaseException:
        executor.shutdown(wait=False)
        raise

    loaded = loaded_from_parts(net, processor, model, executor, quant=quant, template=template,
                               system_prompt=system_prompt)
    loaded.context_limit = context_length
    return loaded


def loaded_from_parts(net, processor, name: str, executor: ThreadPoolExecutor, quant: str = "none",
                      template: str | None = None, system_prompt: str | None = None) -> LoadedModel:
    """Wrap a model and processor already in memory as `load_model` does: pad setting, chat template
    and system prompt from the model's recorded settings. `executor` must be the thread that built it."""
    fmt = prompt_format(processor, net.config, template=template, system_prompt=system_prompt)
    return LoadedModel(net, processor, fmt.template, fmt.system_prompt, name=name, quant=quant, executor=executor)


@dataclass
class PromptFormat:
    """Everything that turns a conversation into model inputs, without the weights."""

    processor: object
    template: ChatTemplate
    system_prompt: str | None
    image_token_count: int

    @property
    def tokenizer(self):
        return self.processor.tokenizer


def prompt_format(processor, config, template: str | None = None, system_prompt: str | None = None) -> PromptFormat:
    """Apply a model's recorded settings (pad aspect ratio, chat template, system prompt) to its processor."""
    meta = getattr(config, "cosmos_llava", None) or {}
    if meta.get("image_aspect_ratio") == "pad":
        processor.image_processor.do_pad = True
    chat_template = resolve_chat_template(processor, recorded_name=meta.get("template"), override=template)
    if system_prompt is None:
        system_prompt = meta.get("system_prompt", DEFAULT_SYSTEM_PROMPT)
    return PromptFormat(processor, chat_template, system_prompt or None, int(config.image_seq_length))


def load_prompt_format(model: str, template: str | None = None, system_prompt: str | None = None) -> PromptFormat:
    """The processor and prompt settings of a LLaVA folder, without loading its weights (fast)."""
    model = str(model)
    _check_folder(model)
    try:
        processor = AutoProcessor.from_pretrained(model, backend="pil")
        config = AutoConfig.from_pretrained(model)
    except OSError as exc:
        raise ModelLoadError(f"cannot load model '{model}': {first_line(exc)}") from None
    return prompt_format(processor, config, template=template, system_prompt=system_prompt)


def _attach_adapter(net, adapter: str):
    if not Path(adapter).exists() and adapter.count("/") != 1:
        raise ModelLoadError(f"adapter folder not found: {adapter}")
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(net, adapter)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load adapter '{adapter}': {first_line(exc)}") from None


def add_model_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The model flags every command shares."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required, help="LLaVA model folder or Hugging Face hub id")
    group.add_argument("--quant", choices=QUANT_CHOICES, default="none", help="bitsandbytes quantization")
    group.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help="auto: bf16 on CUDA, fp32 on CPU")
    group.add_argument("--device-map", default=None, help="transformers device_map (default: auto on CUDA)")
    group.add_argument("--adapter", default=None, help="LoRA adapter folder to apply")
    group.add_argument("--template", default=None, help="override the chat template: llama3, mistral, vicuna_v1, plain")
    group.add_argument("--system-prompt", default=None, help="system prompt ('' for none; default: the model's)")
    group.add_argument("--context-length", type=int, default=None,
                       help="tokens for prompt + reply (default: the model's max_position_embeddings)")


def load_from_args(args: argparse.Namespace) -> LoadedModel:
    return load_model(
        args.model,
        quant=args.quant,
        dtype=args.dtype,
        device_map=args.device_map,
        adapter=args.adapter,
        template=args.template,
        system_prompt=args.system_prompt,
        context_length=args.context_length,
    )
