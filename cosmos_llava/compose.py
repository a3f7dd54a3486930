"""Compose a transformers-native LLaVA from a vision encoder and a causal LM.

The result is a plain `LlavaForConditionalGeneration` + `LlavaProcessor` folder: it loads with
`AutoModelForImageTextToText` / `AutoProcessor` and carries its chat template, so other engines
(vLLM, TGI) can serve it.

Projector representation. transformers' `LlavaMultiModalProjector` is always
`linear_2(act(linear_1(x)))`. LLaVA's `mlp2x_gelu` maps onto it one to one. LLaVA-1's `linear`
projector (a single W) is stored faithfully as `linear_1 = W`, `act = identity`
(`projector_hidden_act: "linear"`), `linear_2 = I` with zero bias, so the function is exactly W x + b
and the folder still loads everywhere `llava` does. The projector type is recorded in
`config.cosmos_llava["projector"]`; training keeps `linear_2` frozen for a `linear` projector.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForCausalLM,
    AutoTokenizer,
    CLIPVisionModel,
    GenerationConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    SiglipVisionModel,
)
from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from .errors import CosmosLlavaError, ModelLoadError, first_line
from .templates import DEFAULT_SYSTEM_PROMPT, IMAGE_TOKEN, NAMED_TEMPLATES, accept_image_parts, end_of_turn_strings, named_template

log = logging.getLogger(__name__)

PROJECTOR_TYPES = ("linear", "mlp2x_gelu")
# Supported vision towers: their model class, and whether their sequence starts with a CLS token
# (LLaVA keeps patch tokens only, so a CLS token is dropped).
_VISION_ENCODERS = {
    "clip_vision_model": (CLIPVisionModel, True),
    "siglip_vision_model": (SiglipVisionModel, False),
}


def load_vision_encoder(path_or_id: str, dtype="auto"):
    """Load the vision half of a CLIP or SigLIP checkpoint (full dual encoder or vision-only)."""
    try:
        config = AutoConfig.from_pretrained(path_or_id)
    except OSError as exc:
        raise ModelLoadError(f"cannot load vision encoder '{path_or_id}': {first_line(exc)}") from None
    vision_config = getattr(config, "vision_config", config)
    if vision_config.model_type not in _VISION_ENCODERS:
        raise CosmosLlavaError(
            f"'{path_or_id}' is a {vision_config.model_type} model; a CLIP or SigLIP vision encoder is needed"
        )
    model_class = _VISION_ENCODERS[vision_config.model_type][0]
    encoder = model_class.from_pretrained(path_or_id, config=vision_config, dtype=dtype)
    image_processor = AutoImageProcessor.from_pretrained(path_or_id, backend="pil")
    return encoder, image_processor


def has_cls_token(vision_config) -> bool:
    return _VISION_ENCODERS[vision_config.model_type][1]


def llava_image_processor(source_processor, pad_to_square: bool) -> LlavaImageProcessorPil:
    """LLaVA's image processor with the vision encoder's own resize / crop / normalisation.

    `pad_to_square` is LLaVA's `image_aspect_ratio: pad` (expand2square with the mean colour).
    """
    size = dict(source_processor.size) if source_processor.size else None
    crop = getattr(source_processor, "crop_size", None)
    do_center_crop = bool(getattr(source_processor, "do_center_crop", False) and crop)
    size = {k: v for k, v in (size or {}).items() if v is not None}
    kwargs = dict(
        size=size,
        do_center_crop=do_center_crop,
        image_mean=list(source_processor.image_mean),
        image_std=list(source_processor.image_std),
        resample=source_processor.resample,
        do_pad=pad_to_square,
    )
    if do_center_crop:
        kwargs["crop_size"] = {k: v for k, v in dict(crop).items() if v is not None}
    return LlavaImageProcessorPil(**kwargs)


def image_input_size(image_processor) -> tuple[int, int]:
    """(height, width) of the pixel tensor the processor produces."""
    if image_processor.do_center_crop and image_processor.crop_size:
        crop = image_processor.crop_size
        return crop["height"], crop["width"]
    size = image_processor.size
    if size.get("height") and size.get("width"):
        return size["height"], size["width"]
    raise CosmosLlavaError(
        "the vision encoder's image processor gives variable-size images; a fixed size (crop or height/width) is needed"
    )


def add_image_token(tokenizer) -> int:
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    if tokenizer.pad_token is None:
        # Batched generation and training need a pad id; it is always masked out.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)


def assemble_llava(
    vision_encoder,
    source_image_processor,
    language_model,
    tokenizer,
    projector: str,
    *,
    chat_template: str,
    template_name: str | None,
    projector_state: dict[str, torch.Tensor] | None = None,
    vision_feature_layer: int | Sequence[int] = -2,
    select_strategy: str | None = None,
    pad_to_square: bool = True,
    generation_config: GenerationConfig | None = None,
    extra_metadata: dict | None = None,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Put the parts together into one LLaVA model and processor. Shared by `compose` and `convert`.

    `projector_state` holds `linear_1.*` / `linear_2.*` tensors for an existing projector; without it
    the projector is freshly initialised (nn.Linear's default init, as LLaVA's). `select_strategy`
    is transformers' "default" (drop the first token) or "full"; by default the CLS token, if the
    tower has one, is dropped.
    """
    if projector not in PROJECTOR_TYPES:
        raise CosmosLlavaError(f"unknown projector '{projector}'; choose one of: {', '.join(PROJECTOR_TYPES)}")
    vision_config = vision_encoder.config
    image_token_id = add_image_token(tokenizer)
    if image_token_id >= language_model.get_input_embeddings().weight.shape[0]:
        # New rows start at the mean embedding (transformers' mean_resizing), a neutral start.
        language_model.resize_token_embeddings(len(tokenizer), mean_resizing=True)

    image_processor = llava_image_processor(source_image_processor, pad_to_square)
    height, width = image_input_size(image_processor)
    patch = vision_config.patch_size
    cls = has_cls_token(vision_config)
    select_strategy = select_strategy or ("default" if cls else "full")
    extra_tokens = 1 if cls else 0
    # Exactly the number of features the tower yields per image, so placeholders and features agree.
    num_image_tokens = (height // patch) * (width // patch) + extra_tokens - (select_strategy == "default")

    # One layer is stored as a number, as LLaVA checkpoints have it; several as a list.
    layers = [vision_feature_layer] if isinstance(vision_feature_layer, int) else list(vision_feature_layer)
    layers = layers[0] if len(layers) == 1 else layers
    text_config = language_model.config
    config = LlavaConfig(
        vision_config=vision_config.to_dict(),
        text_config=text_config.to_dict(),
        image_token_index=image_token_id,
        image_seq_length=num_image_tokens,
        projector_hidden_act="gelu" if projector == "mlp2x_gelu" else "linear",
        vision_feature_layer=layers,
        vision_feature_select_strategy=select_strategy,
        multimodal_projector_bias=True,
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )
    config.cosmos_llava = {
        "projector": projector,
        "template": template_name,
        "image_aspect_ratio": "pad" if pad_to_square else "resize",
        "system_prompt": DEFAULT_SYSTEM_PROMPT,
        **(extra_metadata or {}),
    }

    dtype = language_model.get_input_embeddings().weight.dtype
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.model.vision_tower = vision_encoder
    model.model.language_model = language_model.model
    model.lm_head = language_model.lm_head
    model.model.multi_modal_projector = _build_projector(config, projector, projector_state, dtype)
    if config.tie_word_embeddings:
        model.tie_weights()
    leftovers = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftovers:  # a guard on the module surgery above, not a user error
        raise RuntimeError(f"uninitialised tensors after assembly: {leftovers[:5]}")

    gen = GenerationConfig.from_dict((generation_config or GenerationConfig()).to_dict())
    stops = end_of_turn_strings(
        chat_template, tokenizer.eos_token, named_template(template_name) if template_name else None
    )
    eos_ids = _as_list(gen.eos_token_id) + [
        tokenizer.convert_tokens_to_ids(s) for s in stops if s in tokenizer.get_vocab()
    ]
    gen.eos_token_id = sorted(set(i for i in eos_ids if i is not None)) or None
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = tokenizer.bos_token_id
    # The <image> placeholder must never be generated (its lm_head row is an untrained mean).
    gen.suppress_tokens = [image_token_id]
    model.generation_config = gen

    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=extra_tokens,
        chat_template=chat_template,
        image_token=IMAGE_TOKEN,
    )
    return model, processor


def _build_projector(config, projector, state, dtype) -> nn.Module:
    module = LlavaMultiModalProjector(config)
    if state is not None:
        module.load_state_dict(state, strict=True)
    elif projector == "linear":
        with torch.no_grad():
            module.linear_2.weight.copy_(torch.eye(module.linear_2.weight.shape[0]))
            module.linear_2.bias.zero_()
    return module.to(dtype)


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def load_language_model(path_or_id: str, dtype="auto"):
    try:
        tokenizer = AutoTokenizer.from_pretrained(path_or_id)
        model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=dtype)
    except OSError as exc:
        raise ModelLoadError(f"cannot load language model '{path_or_id}': {first_line(exc)}") from None
    return model, tokenizer


def choose_chat_template(tokenizer, template: str | None) -> tuple[str, str | None]:
    """(jinja, name): an explicit named template wins, else the LLM's own, else an error."""
    if template:
        return named_template(template).jinja, template
    own = tokenizer.chat_template
    if isinstance(own, dict):
        own = own.get("default")
    if own:
        return accept_image_parts(own), None
    raise CosmosLlavaError(
        "the language model has no chat template; pass --template with one of: " + ", ".join(NAMED_TEMPLATES)
    )


def compose(
    vision: str,
    llm: str,
    projector: str = "mlp2x_gelu",
    out: str | Path | None = None,
    template: str | None = None,
    pad_to_square: bool = True,
    vision_feature_layer: int | Sequence[int] = -2,
    dtype="auto",
    seed: int = 0,
    system_prompt: str | None = None,
):
    """Build a new LLaVA from `vision` (CLIP/SigLIP) and `llm` (causal LM); save to `out` if given.

    `system_prompt` is recorded as the model's default (None: the default Turkish one; "": none).
    `vision_feature_layer` is one layer of the tower (LLaVA: -2) or several, concatenated per patch
    before the projector (transformers' Llava supports both)."""
    if projector not in PROJECTOR_TYPES:
        raise CosmosLlavaError(f"unknown projector '{projector}'; choose one of: {', '.join(PROJECTOR_TYPES)}")
    vision_encoder, source_processor = load_vision_encoder(vision, dtype=dtype)
    language_model, tokenizer = load_language_model(llm, dtype=dtype)
    jinja, template_name = choose_chat_template(tokenizer, template)
    generation_config = getattr(language_model, "generation_config", None)
    torch.manual_seed(seed)
    model, processor = assemble_llava(
        vision_encoder,
        source_processor,
        language_model,
        tokenizer,
        projector,
        chat_template=jinja,
        template_name=template_name,
        vision_feature_layer=vision_feature_layer,
        pad_to_square=pad_to_square,
        generation_config=generation_config,
        extra_metadata={"vision": str(vision), "llm": str(llm), "made_by": "compose",
                        **({"system_prompt": system_prompt} if system_prompt is not None else {})},
    )
    if out is not None:
        save(model, processor, out)
    return model, processor


def save(model, processor, out: str | Path) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
