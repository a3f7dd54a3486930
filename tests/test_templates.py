"""Exact prompt strings for every named template over a multi-turn, multi-image conversation."""

import pytest

import tiny
from cosmos_llava.conversation import Conversation
from cosmos_llava.errors import CosmosLlavaError, TemplateError
from cosmos_llava.templates import (
    NAMED_TEMPLATES,
    accept_image_parts,
    end_of_turn_strings,
    named_template,
    resolve_chat_template,
)

SYSTEM = "Sen bir asistansın."


@pytest.fixture(scope="module")
def tokenizers():
    return {"llama3": tiny.llama3_tokenizer(), "mistral": tiny.mistral_tokenizer()}


def conversation():
    """Two images in turn 1 (one before, one after the text), none in turn 2, one in turn 3."""
    red, blue, green = tiny.solid_image((255, 0, 0)), tiny.solid_image((0, 0, 255)), tiny.solid_image((0, 255, 0))
    conv = Conversation(system_prompt=SYSTEM)
    conv.add_user("<image>\nBu iki görsel arasındaki fark ne?\n<image>", [red, blue])
    conv.add_assistant("Birincisi kırmızı, ikincisi mavi.")
    conv.add_user("Hangisi daha koyu?")
    conv.add_assistant("Mavi olan.")
    conv.add_user("Peki bu?", [green])
    return conv


def render(tokenizer, name, conv):
    return tokenizer.apply_chat_template(
        conv.messages(), chat_template=named_template(name).jinja, tokenize=False, add_generation_prompt=True
    )


def test_llama3_exact(tokenizers):
    assert render(tokenizers["llama3"], "llama3", conversation()) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSen bir asistansın.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n<image>\nBu iki görsel arasındaki fark ne?\n<image><|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nBirincisi kırmızı, ikincisi mavi.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHangisi daha koyu?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nMavi olan.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n<image>\nPeki bu?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_mistral_exact(tokenizers):
    assert render(tokenizers["mistral"], "mistral", conversation()) == (
        "<s>[INST] Sen bir asistansın.\n\n<image>\nBu iki görsel arasındaki fark ne?\n<image> [/INST]"
        " Birincisi kırmızı, ikincisi mavi.</s>[INST] Hangisi daha koyu? [/INST] Mavi olan.</s>"
        "[INST] <image>\nPeki bu? [/INST]"
    )


def test_vicuna_v1_exact(tokenizers):
    assert render(tokenizers["mistral"], "vicuna_v1", conversation()) == (
        "<s>Sen bir asistansın. USER: <image>\nBu iki görsel arasındaki fark ne?\n<image> "
        "ASSISTANT: Birincisi kırmızı, ikincisi mavi.</s>USER: Hangisi daha koyu? ASSISTANT: Mavi olan.</s>"
        "USER: <image>\nPeki bu? ASSISTANT:"
    )


def test_plain_exact(tokenizers):
    # LLaVA's stage-1 format: BOS, image placeholders, then the caption; instruction and system dropped.
    conv = Conversation(system_prompt=SYSTEM)
    conv.add_user("Görseli kısaca anlat.", [tiny.solid_image()])
    conv.add_assistant("Kırmızı zemin üzerinde mavi bir daire.")
    text = tokenizers["llama3"].apply_chat_template(
        conv.messages(), chat_template=named_template("plain").jinja, tokenize=False
    )
    assert text == "<|begin_of_text|><image>Kırmızı zemin üzerinde mavi bir daire.\n"


def test_every_image_is_one_placeholder_at_its_place(tokenizers):
    conv = conversation()
    for name in NAMED_TEMPLATES:
        text = render(tokenizers["mistral"], name, conv)
        assert text.count("<image>") == len(conv.images) == 3, name


def test_llm_own_template_matches_named_llama3(tokenizers):
    # Meta's own Llama-3 template, made to accept image parts, renders what the named one renders.
    tok = tokenizers["llama3"]
    own = accept_image_parts(tiny.LLAMA3_OWN_TEMPLATE)
    conv = conversation()
    ours = tok.apply_chat_template(conv.messages(), chat_template=own, tokenize=False, add_generation_prompt=True)
    assert ours == render(tok, "llama3", conv)
    parts = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Bu ne?"}]}]
    assert tok.apply_chat_template(parts, chat_template=own, tokenize=False) == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<image>\nBu ne?<|eot_id|>"
    )
    assert accept_image_parts(own) == own  # idempotent


def test_images_before_text_without_markers():
    conv = Conversation()
    conv.add_user("Bunlar ne?", [tiny.solid_image(), tiny.solid_image()])
    assert conv.messages() == [{"role": "user", "content": "<image>\n<image>\nBunlar ne?"}]


def test_marker_count_must_match_images():
    conv = Conversation()
    with pytest.raises(CosmosLlavaError, match=r"2 '<image>' marker\(s\) but 1 image\(s\) attached"):
        conv.add_user("<image> ve <image>", [tiny.solid_image()])


def test_empty_message_is_refused():
    with pytest.raises(CosmosLlavaError, match="^empty message: write some text or attach an image$"):
        Conversation().add_user("   ")


def test_unknown_template_names_the_choices():
    with pytest.raises(TemplateError, match="^unknown chat template 'chatml'; choose one of: llama3, mistral, vicuna_v1, plain$"):
        named_template("chatml")


def test_resolution_order(tokenizers):
    class Proc:
        def __init__(self, tokenizer, chat_template=None):
            self.tokenizer, self.chat_template = tokenizer, chat_template

    llama_tok, mistral_tok = tokenizers["llama3"], tokenizers["mistral"]
    # The model's own template wins over a recorded name...
    chosen = resolve_chat_template(Proc(llama_tok), recorded_name="vicuna_v1")
    assert chosen.source == "tokenizer" and chosen.stop_strings == ("<|eot_id|>",)
    # ...an explicit override wins over everything...
    assert resolve_chat_template(Proc(llama_tok), override="mistral").name == "mistral"
    # ...the recorded name is used when the model has none...
    chosen = resolve_chat_template(Proc(mistral_tok), recorded_name="mistral")
    assert (chosen.source, chosen.name, chosen.stop_strings) == ("recorded", "mistral", ("</s>",))
    # ...and with neither, a clear error (never a guess from the folder name).
    with pytest.raises(TemplateError, match="has no chat template; pass --template"):
        resolve_chat_template(Proc(mistral_tok))


def test_end_of_turn_strings():
    assert end_of_turn_strings(named_template("plain").jinja, "</s>", named_template("plain")) == ("\n", "</s>")
    assert end_of_turn_strings("...<|im_end|>...", "<|endoftext|>") == ("<|im_end|>", "<|endoftext|>")


def test_from_messages_openai_style():
    image = tiny.solid_image()
    conv = Conversation.from_messages([
        {"role": "system", "content": "S"},
        {"role": "user", "content": [{"type": "text", "text": "Soru?"}, {"type": "image", "image": image}]},
    ])
    assert conv.system_prompt == "S"
    assert conv.messages() == [{"role": "system", "content": "S"}, {"role": "user", "content": "Soru?\n<image>"}]
    with pytest.raises(CosmosLlavaError, match="reserved marker '<image>'"):
        Conversation.from_messages([{"role": "user", "content": [{"type": "text", "text": "<image> hi"}]}])
