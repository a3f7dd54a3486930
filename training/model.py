"""The model side of training: load through the core loader, choose what trains, LoRA / QLoRA,
and the projector-only weights a stage-1 run can hand to stage 2."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from cosmos_llava.compose import compose
from cosmos_llava.errors import CosmosLlavaError, ModelLoadError
from cosmos_llava.loading import LoadedModel, load_model, loaded_from_parts, model_thread

from .config import TrainConfig

log = logging.getLogger(__name__)

PROJECTOR_FILE = "projector.safetensors"
# LoRA goes on the language model only: a bare "q_proj" would also match the vision tower's layers.
_LANGUAGE_MODEL_PATTERN = r".*language_model\..*\.({names})$"


def frozen_dtype(config: TrainConfig, args) -> str:
    """dtype of the frozen weights: the run's mixed-precision dtype, fp32 without one."""
    if config.dtype != "auto":
        return config.dtype
    return "bfloat16" if args.bf16 else ("float16" if args.fp16 else "float32")


def load_for_training(config: TrainConfig, args) -> LoadedModel:
    """The starting model: a LLaVA folder through the core loader (4-bit for QLoRA), or composed from a
    vision encoder and an LLM. Not placed on a device: the Trainer (or DeepSpeed / FSDP) does that."""
    dtype = frozen_dtype(config, args)
    if config.model:
        quant = "4bit" if config.method == "qlora" else "none"
        # bitsandbytes places weights at load time; otherwise the trainer places the model.
        device_map = {"": str(args.device)} if quant != "none" else "none"
        loaded = load_model(config.model, quant=quant, dtype=dtype, device_map=device_map,
                            template=config.template, system_prompt=config.system_prompt)
    else:
        if config.method == "qlora":
            raise CosmosLlavaError("QLoRA starts from a saved LLaVA folder: compose or run stage 1 first")
        net, processor = compose(config.vision, config.llm, projector=config.projector_type,
                                 template=config.llm_template, dtype=getattr(torch, dtype), seed=args.seed)
        loaded = loaded_from_parts(net, processor, f"{config.vision} + {config.llm}", model_thread(),
                                   template=config.template, system_prompt=config.system_prompt)
    loaded.executor.shutdown(wait=False)  # training computes on the main thread
    if config.projector:
        load_projector(loaded.model, config.projector)
    return loaded


def projector_type(net) -> str:
    return (getattr(net.config, "cosmos_llava", None) or {}).get("projector", "mlp2x_gelu")


def _llava(net):
    """The LlavaForConditionalGeneration inside a PEFT wrapper."""
    return net.get_base_model() if hasattr(net, "get_base_model") else net


def set_trainable(net, config: TrainConfig) -> None:
    """Stage 1: the projector only. Stage 2 (full): projector + language model (+ vision tower if asked).
    A LLaVA-1 `linear` projector keeps its identity second layer frozen (see cosmos_llava.compose)."""
    net.requires_grad_(False)
    projector = net.model.multi_modal_projector
    if config.stage == 1 or config.tune_projector:
        projector.requires_grad_(True)
        if projector_type(net) == "linear":
            projector.linear_2.requires_grad_(False)
    if config.stage == 2 and config.method == "full":
        net.model.language_model.requires_grad_(True)
        net.lm_head.requires_grad_(True)
    if config.stage == 2 and config.tune_vision:
        net.model.vision_tower.requires_grad_(True)


def apply_lora(net, config: TrainConfig, gradient_checkpointing: bool):
    """Wrap with PEFT: LoRA adapters on the language model's linear layers; the projector (and the
    vision tower, if asked) train fully as `modules_to_save`. QLoRA first readies the 4-bit base."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if config.method == "qlora":
        net = prepare_model_for_kbit_training(net, use_gradient_checkpointing=gradient_checkpointing,
                                              gradient_checkpointing_kwargs={"use_reentrant": False})
    names = "|".join(sorted(set(config.lora_targets)))
    if not names:
        raise CosmosLlavaError("lora_targets is empty: name the language model's linear layers to adapt")
    full_modules = []
    if config.tune_projector:
        full_modules.append("multi_modal_projector")
    if config.tune_vision:
        full_modules.append("vision_tower")
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=_LANGUAGE_MODEL_PATTERN.format(names=names),
        modules_to_save=full_modules or None,
    )
    try:
        net = get_peft_model(net, lora)
    except ValueError as exc:
        raise CosmosLlavaError(f"LoRA setup failed: {str(exc).splitlines()[0]}") from None
    if config.tune_projector and projector_type(_llava(net)) == "linear":
        for name, param in net.named_parameters():
            if "multi_modal_projector" in name and "linear_2" in name:
                param.requires_grad_(False)
    return net


def prepare_model(loaded: LoadedModel, config: TrainConfig, args):
    """The model the Trainer gets: trainable parts chosen, LoRA applied, trainable weights in fp32."""
    net = loaded.model
    set_trainable(net, config)
    if config.stage == 2 and config.method in ("lora", "qlora"):
        net = apply_lora(net, config, bool(args.activation_checkpointing))
    if not (args.deepspeed or args.fsdp):
        # Mixed precision keeps fp32 master weights of what trains (DeepSpeed/FSDP do this themselves).
        for param in net.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
    if args.activation_checkpointing:
        if hasattr(net, "enable_input_require_grads"):
            net.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need a grad path
        for config in (loaded.config, getattr(loaded.config, "text_config", None)):
            if config is not None:
                config.use_cache = False  # a KV cache is useless in training and clashes with recomputation
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    if trainable == 0:
        raise CosmosLlavaError("nothing to train: every parameter is frozen by this configuration")
    return net


def count_parameters(net) -> tuple[int, int]:
    total = sum(p.numel() for p in net.parameters())
    return sum(p.numel() for p in net.parameters() if p.requires_grad), total


# ------------------------------------------------------------------------------------ projector weights


def save_projector(net, out: str | Path, extra: dict | None = None) -> Path:
    """Write the projector's weights (and what they fit) to `out/projector.safetensors`."""
    llava = _llava(net)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    projector = llava.model.multi_modal_projector
    state = {k: v.detach().to("cpu").contiguous() for k, v in _projector_state(projector).items()}
    meta = {
        "projector": projector_type(llava),
        "vision_hidden_size": str(llava.config.vision_config.hidden_size),
        "text_hidden_size": str(llava.config.text_config.hidden_size),
        **{k: json.dumps(v) for k, v in (extra or {}).items()},
    }
    save_file(state, str(out / PROJECTOR_FILE), metadata=meta)
    return out / PROJECTOR_FILE


def _projector_state(projector) -> dict[str, torch.Tensor]:
    # Under PEFT the trained copy lives in `modules_to_save.default`; name keys as the plain module does.
    state = {}
    for name, tensor in projector.state_dict().items():
        if "original_module." in name:
            continue
        state[name.replace("modules_to_save.default.", "")] = tensor
    return state


def load_projector(net, path: str | Path) -> None:
    path = Path(path)
    if path.is_dir():
        path = path / PROJECTOR_FILE
    if not path.is_file():
        raise ModelLoadError(f"projector weights not found: {path}")
    state = load_file(str(path))
    projector = _llava(net).model.multi_modal_projector
    own = projector.state_dict()
    if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(state.items()))
        raise ModelLoadError(f"projector weights in {path} do not fit this model (they hold: {shapes})")
    with torch.no_grad():
        for key, tensor in state.items():
            own[key].copy_(tensor.to(own[key].dtype))
