"""The loader: quantized paths (bitsandbytes runs on CPU too), adapters, and its errors."""

import importlib.util

import pytest
import torch

import tiny
from cosmos_llava.errors import ModelLoadError
from cosmos_llava.generation import GenerationSettings, generate_reply
from cosmos_llava.loading import load_model


@pytest.mark.parametrize("quant,layer_class", [("4bit", "Linear4bit"), ("8bit", "Linear8bitLt")])
def test_quantized_loading_keeps_vision_projector_and_head_full_precision(llava_llama3, quant, layer_class):
    loaded = load_model(str(llava_llama3), quant=quant)
    model = loaded.model
    assert type(model.model.language_model.layers[0].self_attn.q_proj).__name__ == layer_class
    assert type(model.model.language_model.layers[0].mlp.down_proj).__name__ == layer_class
    assert type(model.model.vision_tower.encoder.layers[0].self_attn.q_proj) is torch.nn.Linear
    assert type(model.model.multi_modal_projector.linear_1) is torch.nn.Linear
    assert type(model.lm_head) is torch.nn.Linear
    if quant == "4bit":
        qc = model.config.quantization_config
        assert (qc.bnb_4bit_quant_type, qc.bnb_4bit_use_double_quant, qc.bnb_4bit_compute_dtype) == ("nf4", True, torch.bfloat16)
    conv = loaded.new_conversation()
    conv.add_user("Bu ne?", [tiny.solid_image()])
    reply = generate_reply(loaded, conv, GenerationSettings(temperature=0, max_new_tokens=4))
    assert isinstance(reply, str) and conv.turns[-1].role == "assistant"


def test_missing_bitsandbytes_is_a_clear_error(llava_llama3, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(ModelLoadError, match=r"^--quant 4bit needs bitsandbytes, which is not installed \(pip install bitsandbytes\)$"):
        load_model(str(llava_llama3), quant="4bit")


def test_broken_bitsandbytes_is_a_clear_error(llava_llama3, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "bitsandbytes":
            raise RuntimeError("CUDA Setup failed despite GPU being available.\nmore lines")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)
    with pytest.raises(ModelLoadError, match=r"^--quant 8bit: bitsandbytes cannot run on this machine: CUDA Setup failed despite GPU being available\.$"):
        load_model(str(llava_llama3), quant="8bit")


def test_defaults(loaded_llama3):
    assert loaded_llama3.model.dtype == torch.float32  # CPU default
    assert loaded_llama3.template.source == "processor"
    assert loaded_llama3.system_prompt.startswith("Sen yardımsever bir görsel dil asistanısın.")
    assert loaded_llama3.new_conversation("").system_prompt is None
    assert loaded_llama3.new_conversation("Kısa yanıt ver.").system_prompt == "Kısa yanıt ver."


def test_template_override_and_recorded_name(llava_mistral):
    loaded = load_model(str(llava_mistral))
    assert (loaded.template.name, loaded.template.stop_strings) == ("mistral", ("</s>",))
    assert load_model(str(llava_mistral), template="vicuna_v1").template.name == "vicuna_v1"


def test_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match=f"^model folder not found: {tmp_path}/nope$"):
        load_model(str(tmp_path / "nope"))


def test_not_a_llava_folder(parts):
    with pytest.raises(ModelLoadError, match="is a 'llama' model, not a LLaVA model$"):
        load_model(str(parts["llama3"]))


def test_lora_adapter_is_applied(llava_llama3, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = load_model(str(llava_llama3))
    peft_model = get_peft_model(base.model, LoraConfig(r=4, target_modules=r".*language_model.*\.(q_proj|v_proj)", init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    with_adapter = load_model(str(llava_llama3), adapter=str(tmp_path / "adapter"))
    fresh = load_model(str(llava_llama3))
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(with_adapter.model(input_ids=ids).logits, fresh.model(input_ids=ids).logits)
    lora_names = [n for n, _ in with_adapter.model.named_modules() if n.endswith("lora_A")]
    assert lora_names and all("language_model" in n for n in lora_names)


@pytest.mark.gpu
def test_4bit_on_cuda(llava_llama3):
    loaded = load_model(str(llava_llama3), quant="4bit")
    assert loaded.device.type == "cuda"
    conv = loaded.new_conversation()
    conv.add_user("Bu ne?", [tiny.solid_image()])
    assert isinstance(generate_reply(loaded, conv, GenerationSettings(temperature=0, max_new_tokens=4)), str)


@pytest.mark.gpu
def test_bf16_default_on_cuda(llava_llama3):
    assert load_model(str(llava_llama3)).model.dtype == torch.bfloat16
