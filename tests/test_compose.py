"""compose: a plain-transformers LLaVA whose image tokens match the vision features exactly."""

import json

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, CLIPVisionModel, SiglipVisionModel

import tiny
from conftest import run_cli
from cosmos_llava.compose import compose


def inputs_for(processor, prompt_messages, images):
    text = processor.apply_chat_template(prompt_messages, add_generation_prompt=True)
    return processor(text=text, images=images, return_tensors="pt", add_special_tokens=False)


QUESTION = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Bu görselde ne var?"}]}]


@pytest.mark.parametrize("fixture,tower,n_tokens", [("llava_llama3", CLIPVisionModel, 16), ("llava_mistral", SiglipVisionModel, 16)])
def test_loads_with_plain_transformers_and_tokens_match_features(request, parts, fixture, tower, n_tokens):
    folder = request.getfixturevalue(fixture)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert processor.chat_template  # carried in the folder
    image = tiny.solid_image()
    inputs = inputs_for(processor, QUESTION, [image])
    n_placeholders = int((inputs["input_ids"] == model.config.image_token_id).sum())
    features = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
    assert n_placeholders == features[0].shape[0] == model.config.image_seq_length == n_tokens
    # Features = projector(second-to-last layer, patch tokens only), computed independently here.
    source = tower.from_pretrained(parts["clip" if tower is CLIPVisionModel else "siglip"])
    hidden = source(inputs["pixel_values"], output_hidden_states=True).hidden_states[-2]
    if tower is CLIPVisionModel:
        hidden = hidden[:, 1:]  # drop CLS
    expected = model.model.multi_modal_projector(hidden)[0]
    torch.testing.assert_close(features[0], expected)
    assert model(**inputs).logits.shape[-1] == len(processor.tokenizer)


def test_image_token_added_and_embeddings_resized(llava_llama3, parts):
    processor = AutoProcessor.from_pretrained(llava_llama3)
    model = AutoModelForImageTextToText.from_pretrained(llava_llama3)
    base_vocab = len(tiny.llama3_tokenizer())
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_id == base_vocab
    assert model.get_input_embeddings().weight.shape[0] == base_vocab + 1
    assert model.config.text_config.vocab_size == base_vocab + 1
    assert model.generation_config.suppress_tokens == [base_vocab]


def test_linear_projector_is_exactly_one_linear_map(llava_mistral):
    model = AutoModelForImageTextToText.from_pretrained(llava_mistral)
    proj = model.model.multi_modal_projector
    assert model.config.projector_hidden_act == "linear" and model.config.cosmos_llava["projector"] == "linear"
    x = torch.randn(3, proj.linear_1.in_features)
    torch.testing.assert_close(proj(x), x @ proj.linear_1.weight.T + proj.linear_1.bias)


def test_pad_to_square_is_recorded(llava_llama3):
    processor = AutoProcessor.from_pretrained(llava_llama3)
    assert processor.image_processor.do_pad is True
    assert processor.num_additional_image_tokens == 1  # CLIP's CLS token
    config = json.loads((llava_llama3 / "config.json").read_text())
    assert config["cosmos_llava"]["image_aspect_ratio"] == "pad"
    assert config["vision_feature_layer"] == -2 and config["vision_feature_select_strategy"] == "default"


def test_save_load_round_trip_gives_identical_logits(parts, tmp_path):
    model, processor = compose(str(parts["clip"]), str(parts["llama3"]), seed=7)
    image = tiny.solid_image()
    inputs = inputs_for(processor, QUESTION, [image])
    with torch.no_grad():
        before = model(**inputs).logits
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again = AutoModelForImageTextToText.from_pretrained(tmp_path)
    inputs2 = inputs_for(AutoProcessor.from_pretrained(tmp_path), QUESTION, [image])
    assert torch.equal(inputs["input_ids"], inputs2["input_ids"])
    with torch.no_grad():
        assert torch.equal(again(**inputs2).logits, before)


def test_compose_cli(parts, tmp_path):
    out = tmp_path / "m"
    result = run_cli("compose", "--vision", parts["siglip"], "--llm", parts["llama3"], "--projector", "linear", "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"saved LLaVA model to {out}"
    assert AutoModelForImageTextToText.from_pretrained(out).config.projector_hidden_act == "linear"


def test_several_vision_layers_are_concatenated_per_patch(parts, tmp_path):
    """--vision-feature-layer 0,-2: the projector reads the tower's embedding output and its second-to-last
    layer side by side (twice the width), exactly as computed from the tower itself."""
    out = tmp_path / "m"
    result = run_cli("compose", "--vision", parts["clip"], "--llm", parts["llama3"], "--vision-feature-layer", "0,-2",
                     "--out", out)
    assert result.returncode == 0, result.stderr
    model = AutoModelForImageTextToText.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    assert model.config.vision_feature_layer == [0, -2]
    width = model.config.vision_config.hidden_size
    assert model.model.multi_modal_projector.linear_1.in_features == 2 * width
    inputs = inputs_for(processor, QUESTION, [tiny.solid_image()])
    hidden = CLIPVisionModel.from_pretrained(parts["clip"])(inputs["pixel_values"], output_hidden_states=True).hidden_states
    expected = model.model.multi_modal_projector(torch.cat([hidden[0][:, 1:], hidden[-2][:, 1:]], dim=-1))[0]
    torch.testing.assert_close(model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output[0], expected)
    single, _ = compose(str(parts["clip"]), str(parts["llama3"]), vision_feature_layer=[-2])
    assert single.config.vision_feature_layer == -2  # one layer is stored as a number, as LLaVA has it
    bad = run_cli("compose", "--vision", parts["clip"], "--llm", parts["llama3"], "--vision-feature-layer", "0,x",
                  "--out", tmp_path / "x")
    assert bad.returncode == 2 and "expected a layer number or a comma-separated list, got '0,x'" in bad.stderr


def test_compose_without_any_template_says_how_to_fix(parts, tmp_path):
    result = run_cli("compose", "--vision", parts["clip"], "--llm", parts["mistral"], "--out", tmp_path / "x")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: the language model has no chat template; pass --template with one of: llama3, mistral, vicuna_v1, plain"
    )


def test_compose_rejects_a_non_vision_encoder(parts, tmp_path):
    result = run_cli("compose", "--vision", parts["llama3"], "--llm", parts["llama3"], "--out", tmp_path / "x")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("is a llama model; a CLIP or SigLIP vision encoder is needed")


def test_recorded_system_prompt(parts, tmp_path):
    from cosmos_llava.compose import compose
    from cosmos_llava.loading import load_prompt_format

    compose(str(parts["clip"]), str(parts["llama3"]), out=tmp_path / "none", system_prompt="")
    compose(str(parts["clip"]), str(parts["llama3"]), out=tmp_path / "own", system_prompt="Kısa cevap ver.")
    assert load_prompt_format(str(tmp_path / "none")).system_prompt is None
    assert load_prompt_format(str(tmp_path / "own")).system_prompt == "Kısa cevap ver."
