"""Tiny, offline stand-ins for the real checkpoints, built from configs at test time.

Nothing is downloaded: a byte-level BPE tokenizer is trained with `tokenizers` on `data/turkish.txt`,
and CLIP / SigLIP / LLaMA / Mistral models are created from small configs with random weights. Sizes
are multiples of 64 because bitsandbytes' CPU 4-bit kernels work in blocks of 64.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    SiglipConfig,
    SiglipImageProcessorPil,
    SiglipModel,
)

CORPUS = Path(__file__).parent / "data" / "turkish.txt"
IMAGE_SIZE = 56  # 4 x 4 patches of 14 px
PATCH = 14

# Meta's Llama-3-Instruct chat template, verbatim: the "model's own template" case.
LLAMA3_OWN_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
MISTRAL_SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"]


def train_tokenizer(specials: list[str], vocab_size: int = 512) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train([str(CORPUS)], trainer)
    return tok


def llama3_tokenizer(with_template: bool = True) -> PreTrainedTokenizerFast:
    tok = train_tokenizer(LLAMA3_SPECIALS)
    bos = tok.token_to_id("<|begin_of_text|>")
    # Like the real Llama-3 tokenizer: BOS is added by the post-processor.
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B", special_tokens=[("<|begin_of_text|>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", model_max_length=4096
    )
    if with_template:
        fast.chat_template = LLAMA3_OWN_TEMPLATE
    return fast


def mistral_tokenizer() -> PreTrainedTokenizerFast:
    tok = train_tokenizer(MISTRAL_SPECIALS)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", model_max_length=4096
    )


_VISION = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=2, image_size=IMAGE_SIZE,
    patch_size=PATCH,
)
_TEXT_ENCODER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, vocab_size=99)


def save_tiny_clip(out: Path, seed: int = 1) -> Path:
    """A full CLIP (text + vision) checkpoint, like openai/clip-vit-large-patch14-336."""
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(vision_config=_VISION, text_config=_TEXT_ENCODER, projection_dim=64))
    model.save_pretrained(out)
    CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(out)
    return out


def save_tiny_siglip(out: Path, seed: int = 2) -> Path:
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(vision_config=_VISION, text_config=_TEXT_ENCODER))
    model.save_pretrained(out)
    SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(out)
    return out


_LM = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    max_position_embeddings=512, tie_word_embeddings=False,
)


def save_tiny_llama3(out: Path, seed: int = 3, with_template: bool = True) -> Path:
    tok = llama3_tokenizer(with_template)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **_LM
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def save_tiny_mistral(out: Path, seed: int = 4) -> Path:
    tok = mistral_tokenizer()
    torch.manual_seed(seed)
    config = MistralConfig(
        vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, sliding_window=None, **_LM
    )
    MistralForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def save_original_llava(out: Path, llm_dir: Path, vision_dir: Path, projector: str = "mlp2x_gelu",
                        family: str = "llama", include_vision: bool = False, seed: int = 5) -> Path:
    """A checkpoint in the original LLaVA repository's layout (as Turkish-LLaVA-v0.1 is published):
    LLM weights + `model.mm_projector.*` in two torch .bin shards with an index, `mm_*` settings in
    config.json, the tokenizer, and the vision tower referenced by path (optionally included)."""
    import json
    import shutil

    from transformers import AutoModelForCausalLM, CLIPVisionModel

    out.mkdir(parents=True, exist_ok=True)
    llm = AutoModelForCausalLM.from_pretrained(llm_dir)
    state = {k: v.clone() for k, v in llm.state_dict().items()}
    torch.manual_seed(seed)
    d_text, d_vision = llm.config.hidden_size, _VISION["hidden_size"]
    if projector == "mlp2x_gelu":
        state["model.mm_projector.0.weight"] = torch.randn(d_text, d_vision) * 0.2
        state["model.mm_projector.0.bias"] = torch.randn(d_text) * 0.1
        state["model.mm_projector.2.weight"] = torch.randn(d_text, d_text) * 0.2
        state["model.mm_projector.2.bias"] = torch.randn(d_text) * 0.1
    else:
        state["model.mm_projector.weight"] = torch.randn(d_text, d_vision) * 0.2
        state["model.mm_projector.bias"] = torch.randn(d_text) * 0.1
    if include_vision:
        vision = CLIPVisionModel.from_pretrained(vision_dir)
        for key, value in vision.state_dict().items():
            # Perturbed, so a test can tell the included weights from the named tower's.
            state[f"model.vision_tower.vision_tower.vision_model.{key}"] = value + 0.01
    keys = sorted(state)
    half = len(keys) // 2
    weight_map = {}
    for i, chunk in enumerate((keys[:half], keys[half:]), start=1):
        name = f"pytorch_model-0000{i}-of-00002.bin"
        torch.save({k: state[k].contiguous() for k in chunk}, out / name)
        weight_map.update({k: name for k in chunk})
    (out / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))

    config = llm.config.to_dict()
    config.update(
        model_type=f"llava_{family}",
        architectures=[f"Llava{family.capitalize()}ForCausalLM"],
        mm_vision_tower=str(vision_dir),
        mm_hidden_size=d_vision,
        mm_projector_type=projector,
        mm_vision_select_layer=-2,
        mm_vision_select_feature="patch",
        image_aspect_ratio="pad",
        mm_use_im_start_end=False,
        mm_use_im_patch_token=False,
        tune_mm_mlp_adapter=False,
        tokenizer_padding_side="right",
        tokenizer_model_max_length=512,
        use_mm_proj=True,
    )
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for file in Path(llm_dir).iterdir():
        if file.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(file, out / file.name)
    return out


def solid_image(color=(200, 30, 30), size=(80, 48)):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, color)
    ImageDraw.Draw(image).ellipse((10, 8, 40, 38), fill=(20, 40, 220))
    return image


COLOURS = {"kırmızı": (200, 30, 30), "yeşil": (30, 170, 60), "mavi": (30, 60, 200), "sarı": (230, 200, 40)}


def write_llava_data(folder: Path, kind: str = "instruct", repeats: int = 2) -> Path:
    """A small LLaVA-format dataset whose answers follow from the images (so a model can learn it).

    kind "caption": stage-1 image-caption pairs. kind "instruct": multi-turn rows, a row with a second
    image at a later turn, and text-only rows. Writes images under folder/images and folder/data.json.
    """
    import json

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name, colour in COLOURS.items():
        solid_image(colour, size=(64, 64)).save(folder / "images" / f"{name}.png")
    rows = []
    for r in range(repeats):
        for name in COLOURS:
            image = f"images/{name}.png"
            if kind == "caption":
                rows.append({"id": f"cap-{name}-{r}", "image": image, "conversations": [
                    {"from": "human", "value": "<image>\nGörseli kısaca anlat."},
                    {"from": "gpt", "value": f"{name.capitalize()} zemin üzerinde mavi bir daire."}]})
                continue
            rows.append({"id": f"conv-{name}-{r}", "image": image, "category": "renk", "conversations": [
                {"from": "human", "value": "<image>\nZemin ne renk?"},
                {"from": "gpt", "value": f"Zemin {name}."},
                {"from": "human", "value": "Dairenin rengi ne?"},
                {"from": "gpt", "value": "Daire mavi."}]})
        rows.append({"id": f"two-images-{r}", "image": ["images/kırmızı.png", "images/yeşil.png"],
                     "conversations": [
                         {"from": "human", "value": "<image>\nBu görselin zemini ne renk?"},
                         {"from": "gpt", "value": "Kırmızı."},
                         {"from": "human", "value": "Peki bu?\n<image>"},
                         {"from": "gpt", "value": "Yeşil."}]}) if kind != "caption" else None
        if kind != "caption":
            rows.append({"id": f"text-{r}", "conversations": [
                {"from": "human", "value": "Gökyüzü ne renk?"}, {"from": "gpt", "value": "Gökyüzü mavi."}]})
    path = folder / "data.json"
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


if __name__ == "__main__":
    # `python tests/tiny.py OUT_DIR`: tiny random-weight parts to try compose / convert / chat offline.
    import sys

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-parts")
    for name, save in (("clip", save_tiny_clip), ("siglip", save_tiny_siglip), ("llama3", save_tiny_llama3),
                       ("mistral", save_tiny_mistral)):
        save(root / name)
    save_original_llava(root / "original-llava", root / "llama3", root / "clip")
    tiny_image = solid_image(size=(64, 64))
    tiny_image.save(root / "scene.png")
    write_llava_data(root / "captions", "caption", repeats=4)
    write_llava_data(root / "instruct", "instruct", repeats=4)
    print(f"tiny checkpoints written to {root}/: clip siglip llama3 mistral original-llava scene.png")
    print(f"tiny LLaVA-format data written to {root}/captions/data.json and {root}/instruct/data.json")
