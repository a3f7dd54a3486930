"""convert: original-LLaVA checkpoints become transformers LLaVA models with equal logits.

The reference below re-implements the original repository's forward pass independently: the prompt
is tokenised in chunks around `<image>`, IMAGE_TOKEN_INDEX (-200) marks the spot, the CLIP features of
layer `mm_vision_select_layer` (CLS dropped) go through `mm_projector` and are spliced in there.
"""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    CLIPImageProcessorPil,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
)

import tiny
from conftest import run_cli

IMAGE_TOKEN_INDEX = -200


def original_llava_next_token_logits(src: Path, image: Image.Image, prompt: str) -> torch.Tensor:
    config = json.loads((src / "config.json").read_text())
    index = json.loads((src / "pytorch_model.bin.index.json").read_text())
    state = {}
    for shard in sorted(set(index["weight_map"].values())):
        state.update(torch.load(src / shard, weights_only=True))
    family = {"llava_llama": (LlamaConfig, LlamaForCausalLM), "llava_mistral": (MistralConfig, MistralForCausalLM)}
    config_class, model_class = family[config["model_type"]]
    fields = {k: v for k, v in config.items() if k in config_class().to_dict() and k not in ("model_type", "architectures")}
    llm = model_class(config_class(**fields))
    llm.load_state_dict({k: v for k, v in state.items() if k.startswith(("model.embed", "model.layers", "model.norm", "lm_head"))})
    llm.eval()

    vision = CLIPVisionModel.from_pretrained(config["mm_vision_tower"])
    included = {k[len("model.vision_tower.vision_tower.vision_model."):]: v for k, v in state.items()
                if k.startswith("model.vision_tower.")}
    if included:
        vision.load_state_dict(included)
    image_processor = CLIPImageProcessorPil.from_pretrained(config["mm_vision_tower"])
    assert image.width == image.height, "the reference handles square images (pad is then a no-op)"
    pixels = image_processor(images=image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        feats = vision(pixels, output_hidden_states=True).hidden_states[config["mm_vision_select_layer"]][:, 1:]
        if config["mm_projector_type"] == "mlp2x_gelu":
            h = F.linear(feats, state["model.mm_projector.0.weight"], state["model.mm_projector.0.bias"])
            h = F.linear(F.gelu(h), state["model.mm_projector.2.weight"], state["model.mm_projector.2.bias"])
        else:
            h = F.linear(feats, state["model.mm_projector.weight"], state["model.mm_projector.bias"])

        tokenizer = AutoTokenizer.from_pretrained(src)
        before, after = prompt.split("<image>")
        ids = tokenizer(before, add_special_tokens=False).input_ids + [IMAGE_TOKEN_INDEX] + \
            tokenizer(after, add_special_tokens=False).input_ids
        cut = ids.index(IMAGE_TOKEN_INDEX)
        embed = llm.get_input_embeddings()
        embeds = torch.cat([embed(torch.tensor(ids[:cut])), h[0], embed(torch.tensor(ids[cut + 1:]))])
        return llm(inputs_embeds=embeds[None]).logits[0, -1]


@pytest.mark.parametrize("family,projector,include_vision", [
    ("llama", "mlp2x_gelu", False),  # Turkish-LLaVA-v0.1's shape: LLaMA-3 + mlp2x_gelu, tower by name
    ("mistral", "linear", True),
])
def test_converted_logits_equal_the_original_forward(parts, tmp_path, family, projector, include_vision):
    llm_dir = parts["llama3" if family == "llama" else "mistral"]
    src = tiny.save_original_llava(tmp_path / "orig", llm_dir, parts["clip"], projector, family, include_vision)
    out = tmp_path / "converted"
    args = ["convert", "--src", src, "--out", out] + ([] if family == "llama" else ["--template", "mistral"])
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr

    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    image = tiny.solid_image(size=(64, 64))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Görselde hangi renkler var?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=prompt, images=[image], return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        ours = model(**inputs).logits[0, -1]
    reference = original_llava_next_token_logits(src, image, prompt)
    vocab = reference.shape[0]
    assert ours.shape[0] == vocab + 1  # + the <image> placeholder, which is never generated
    torch.testing.assert_close(ours[:vocab], reference, rtol=1e-5, atol=1e-5)
    assert model.config.cosmos_llava["projector"] == projector
    assert processor.image_processor.do_pad is True  # image_aspect_ratio: pad


def test_convert_refuses_a_transformers_llava(llava_llama3, tmp_path):
    result = run_cli("convert", "--src", llava_llama3, "--out", tmp_path / "x")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: '{llava_llama3}' is already in the transformers LLaVA format; load it directly"


def test_convert_refuses_unsupported_projector(parts, tmp_path):
    src = tiny.save_original_llava(tmp_path / "orig", parts["llama3"], parts["clip"])
    config = json.loads((src / "config.json").read_text())
    config["mm_projector_type"] = "mlp3x_gelu"
    (src / "config.json").write_text(json.dumps(config))
    result = run_cli("convert", "--src", src, "--out", tmp_path / "x")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: projector type 'mlp3x_gelu' is not supported; supported: linear, mlp2x_gelu"


def test_loading_an_original_checkpoint_points_to_convert(parts, tmp_path):
    src = tiny.save_original_llava(tmp_path / "orig", parts["llama3"], parts["clip"])
    result = run_cli("chat", "--model", src, "--prompt", "merhaba")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: '{src}' is an original-LLaVA checkpoint; convert it first: "
        f"python -m cosmos_llava convert --src {src} --out DIR"
    )
