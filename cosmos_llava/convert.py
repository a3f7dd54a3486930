"""Convert an original-LLaVA-repository checkpoint to the transformers LLaVA format, losslessly.

Original checkpoints (`model_type: llava_llama` / `llava_mistral`, as published for LLaVA-1.5 and
Cosmos' Turkish-LLaVA-v0.1) hold the language model's weights, the projector under `model.mm_projector`
and settings under `mm_*`; the vision tower is usually referenced by name (`mm_vision_tower`) rather
than included. The language model and vision tower are copied as they are; the projector's tensors
move to `multi_modal_projector.linear_{1,2}` (a `linear` projector becomes linear_1 + identity, see
compose.py); an `<image>` token is added, whose embedding is a placeholder that image features
replace, exactly where the original splices them in at IMAGE_TOKEN_INDEX. Next-token logits match
the original architecture's on the original vocabulary (tests/test_convert.py checks this against an
independent implementation of the original forward pass).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from .compose import assemble_llava, choose_chat_template, load_vision_encoder, save
from .errors import CosmosLlavaError, ModelLoadError, first_line

log = logging.getLogger(__name__)

_FAMILIES = {"llava_llama": "llama", "llava_mistral": "mistral", "llava": "llama"}
_SELECT_FEATURE = {"patch": "default", "cls_patch": "full"}
_PROJECTOR_PREFIX = "model.mm_projector."
_VISION_PREFIXES = ("model.vision_tower.vision_tower.", "vision_model.")


def _local_folder(src: str) -> Path:
    """A local folder as is; a hub id ("owner/name") is downloaded (honouring HF_HUB_OFFLINE)."""
    path = Path(src)
    if path.is_dir():
        return path
    if path.exists() or src.startswith((".", "/", "~")) or src.count("/") != 1:
        raise ModelLoadError(f"checkpoint folder not found: {src}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(src, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.model", "*.txt", "*.jinja"]))
    except Exception as exc:  # offline, unknown repo, no access: all one line for the user
        raise ModelLoadError(f"cannot download '{src}' from the Hugging Face Hub: {first_line(exc)}") from None


def read_original_config(src: Path) -> dict:
    path = src / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"no config.json in '{src}': not a model folder")
    config = json.loads(path.read_text())
    if config.get("model_type") == "llava" and "mm_vision_tower" not in config:
        raise CosmosLlavaError(f"'{src}' is already in the transformers LLaVA format; load it directly")
    if config.get("model_type") not in _FAMILIES or "mm_vision_tower" not in config:
        raise CosmosLlavaError(
            f"'{src}' is not an original-LLaVA checkpoint (model_type '{config.get('model_type')}', "
            "expected llava_llama or llava_mistral with mm_* settings)"
        )
    return config


def projector_type(config: dict) -> str:
    kind = config.get("mm_projector_type", "linear")
    if kind not in ("linear", "mlp2x_gelu"):
        raise CosmosLlavaError(f"projector type '{kind}' is not supported; supported: linear, mlp2x_gelu")
    return kind


def text_config_from(config: dict):
    family = _FAMILIES[config["model_type"]]
    base = AutoConfig.for_model(family)
    known = set(base.to_dict())
    fields = {k: v for k, v in config.items() if k in known and k not in ("model_type", "architectures")}
    return AutoConfig.for_model(family, **fields)


def weight_files(src: Path) -> list[Path]:
    for pattern in ("*.safetensors", "pytorch_model*.bin"):
        files = sorted(p for p in src.glob(pattern) if p.name != "training_args.bin")
        if files:
            return files
    raise ModelLoadError(f"no weights (*.safetensors or pytorch_model*.bin) in '{src}'")


def read_tensors(files: list[Path], wanted) -> dict[str, torch.Tensor]:
    """Tensors whose name satisfies `wanted`, from safetensors or torch .bin shards."""
    out: dict[str, torch.Tensor] = {}
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():
                    if wanted(key):
                        out[key] = f.get_tensor(key)
        else:
            state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
            out.update({k: v for k, v in state.items() if wanted(k)})
    return out


def projector_state(tensors: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    names = {k[len(_PROJECTOR_PREFIX):]: v for k, v in tensors.items() if k.startswith(_PROJECTOR_PREFIX)}
    if kind == "mlp2x_gelu":
        mapping = {"0.weight": "linear_1.weight", "0.bias": "linear_1.bias", "2.weight": "linear_2.weight", "2.bias": "linear_2.bias"}
    else:
        mapping = {"weight": "linear_1.weight", "bias": "linear_1.bias"}
    missing = [k for k in mapping if k not in names]
    if missing:
        raise ModelLoadError(
            f"projector weights missing from checkpoint: {', '.join(_PROJECTOR_PREFIX + k for k in missing)}"
        )
    state = {new: names[old] for old, new in mapping.items()}
    if kind == "linear":
        hidden = state["linear_1.weight"].shape[0]
        state["linear_2.weight"] = torch.eye(hidden, dtype=state["linear_1.weight"].dtype)
        state["linear_2.bias"] = torch.zeros(hidden, dtype=state["linear_1.weight"].dtype)
    return state


def vision_state(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = {}
    for key, value in tensors.items():
        for prefix in _VISION_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        state[key] = value
    return state


def convert(
    src: str | Path,
    out: str | Path | None = None,
    vision: str | None = None,
    template: str | None = None,
    dtype="auto",
):
    """Convert the original-LLaVA checkpoint `src` (folder or hub id); save to `out` if given."""
    src = _local_folder(str(src))
    config = read_original_config(src)
    if config.get("mm_use_im_start_end"):
        raise CosmosLlavaError("checkpoints with mm_use_im_start_end=true are not supported")
    aspect = config.get("image_aspect_ratio", "square") or "square"
    if aspect not in ("pad", "square", "resize"):
        raise CosmosLlavaError(f"image_aspect_ratio '{aspect}' is not supported (only pad and square)")
    select_feature = config.get("mm_vision_select_feature", "patch")
    if select_feature not in _SELECT_FEATURE:
        raise CosmosLlavaError(f"mm_vision_select_feature '{select_feature}' is not supported (patch, cls_patch)")
    kind = projector_type(config)

    files = weight_files(src)
    extra = read_tensors(files, lambda k: k.startswith(_PROJECTOR_PREFIX) or k.startswith("model.vision_tower."))
    proj = projector_state(extra, kind)

    vision_id = vision or config["mm_vision_tower"]
    encoder, source_processor = load_vision_encoder(vision_id, dtype=dtype)
    included = vision_state({k: v for k, v in extra.items() if k.startswith("model.vision_tower.")})
    if included:  # weights shipped inside the checkpoint (e.g. an unfrozen tower) win over the named one
        try:
            encoder.load_state_dict(included, strict=True)
        except RuntimeError as exc:
            raise ModelLoadError(f"vision weights in the checkpoint do not fit '{vision_id}': {first_line(exc)}") from None

    try:
        tokenizer = AutoTokenizer.from_pretrained(src)
        language_model = AutoModelForCausalLM.from_pretrained(src, config=text_config_from(config), dtype=dtype)
    except OSError as exc:
        raise ModelLoadError(f"cannot read '{src}': {first_line(exc)}") from None
    jinja, template_name = choose_chat_template(tokenizer, template)

    model, processor = assemble_llava(
        encoder.to(language_model.dtype),
        source_processor,
        language_model,
        tokenizer,
        kind,
        chat_template=jinja,
        template_name=template_name,
        projector_state={k: v.to(language_model.dtype) for k, v in proj.items()},
        vision_feature_layer=config.get("mm_vision_select_layer", -2),
        select_strategy=_SELECT_FEATURE[select_feature],
        pad_to_square=aspect == "pad",
        generation_config=language_model.generation_config,
        extra_metadata={"vision": vision_id, "converted_from": str(src), "made_by": "convert"},
    )
    if out is not None:
        save(model, processor, out)
    return model, processor
