"""Streaming generation: stops at the end-of-turn, the context rule, cancellation, settings."""

import threading

import pytest
import torch

import tiny
from cosmos_llava.errors import ContextOverflowError, CosmosLlavaError
from cosmos_llava.generation import GenerationSettings, count_prompt_tokens, prepare_prompt, render_prompt, stream_reply


class ScriptedHead(torch.nn.Module):
    """Replaces lm_head: at each step the next token of `script` wins by a wide margin."""

    def __init__(self, script, vocab):
        super().__init__()
        self.script, self.vocab, self.step = script, vocab, 0
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.threads = set()

    def forward(self, hidden):
        self.threads.add(threading.current_thread().name)
        logits = torch.zeros(*hidden.shape[:-1], self.vocab)
        logits[..., self.script[min(self.step, len(self.script) - 1)]] = 100.0
        self.step += 1
        return logits


@pytest.fixture
def scripted(loaded_llama3):
    """The tiny model made to say a known sentence, then <|eot_id|>, then more text."""
    tok = loaded_llama3.tokenizer
    answer = "Görselde kırmızı bir daire var."
    script = tok(answer, add_special_tokens=False).input_ids + [tok.convert_tokens_to_ids("<|eot_id|>")]
    script += tok(" Fazlası olmamalı.", add_special_tokens=False).input_ids
    original = loaded_llama3.model.lm_head
    loaded_llama3.model.lm_head = ScriptedHead(script, original.out_features)
    yield loaded_llama3, answer, script
    loaded_llama3.model.lm_head = original


def test_stops_at_end_of_turn_and_streams(scripted):
    loaded, answer, script = scripted
    conv = loaded.new_conversation()
    conv.add_user("Ne görüyorsun?", [tiny.solid_image()])
    reply = stream_reply(loaded, conv, GenerationSettings(temperature=0, max_new_tokens=50))
    chunks = list(reply)
    assert "".join(chunks).strip() == answer and len(chunks) > 1
    assert reply.text == answer
    assert reply.finish_reason == "stop"
    # All compute ran on the model's own thread, never on the caller's (see loading.model_thread).
    assert {name.split("_")[0] for name in loaded.model.lm_head.threads} == {"cosmos-llava-model"}
    eot_position = script.index(loaded.tokenizer.convert_tokens_to_ids("<|eot_id|>"))
    assert reply.completion_tokens == eot_position + 1  # the answer and its end-of-turn token, nothing more
    assert reply.prompt_tokens == prepare_prompt(loaded, conv, 50).prompt_tokens


def test_length_finish_and_cancel(scripted):
    loaded, answer, _ = scripted
    conv = loaded.new_conversation()
    conv.add_user("Ne görüyorsun?")
    reply = stream_reply(loaded, conv, GenerationSettings(temperature=0, max_new_tokens=3))
    list(reply)
    assert (reply.finish_reason, reply.completion_tokens) == ("length", 3)

    loaded.model.lm_head.step = 0
    cancel = threading.Event()
    reply = stream_reply(loaded, conv, GenerationSettings(temperature=0, max_new_tokens=50), cancel_event=cancel)
    for _ in reply:
        cancel.set()
    assert reply.finish_reason == "cancelled"
    assert reply.completion_tokens < len(answer)


def test_images_at_any_turn_reach_the_model(loaded_llama3):
    conv = loaded_llama3.new_conversation()
    conv.add_user("İlk soru, görselsiz.")
    conv.add_assistant("Tamam.")
    conv.add_user("Şimdi bu görsel?", [tiny.solid_image(), tiny.solid_image((0, 200, 0))])
    from cosmos_llava.generation import model_inputs

    prepared = prepare_prompt(loaded_llama3, conv, 8)
    inputs = model_inputs(loaded_llama3, prepared)
    assert inputs["pixel_values"].shape[0] == 2
    image_id = loaded_llama3.config.image_token_id
    assert int((inputs["input_ids"] == image_id).sum()) == 2 * loaded_llama3.image_token_count
    assert prepared.prompt_tokens == inputs["input_ids"].shape[1]


def test_oldest_exchanges_are_dropped_to_fit(loaded_llama3):
    conv = loaded_llama3.new_conversation()
    for i in range(6):
        conv.add_user(f"Soru {i}: " + "kırmızı daire " * 40, [tiny.solid_image()])
        conv.add_assistant("Yanıt " + "mavi kare " * 40)
    conv.add_user("Son soru?")
    full = count_prompt_tokens(loaded_llama3, render_prompt(loaded_llama3, conv))
    assert full > 512  # the tiny model's context window
    prepared = prepare_prompt(loaded_llama3, conv, 64)
    assert prepared.dropped_turns > 0 and prepared.dropped_turns % 2 == 0
    assert prepared.prompt_tokens + 64 <= 512
    assert prepared.text.rstrip().endswith("Son soru?<|eot_id|><|start_header_id|>assistant<|end_header_id|>")
    assert len(prepared.images) == prepared.text.count("<image>")


def test_a_message_longer_than_the_context_is_an_error(loaded_llama3):
    conv = loaded_llama3.new_conversation()
    conv.add_user("çok uzun " * 400)
    with pytest.raises(ContextOverflowError, match=r"^the message is too long: \d+ tokens \(images included\), the model's context window is 512$"):
        stream_reply(loaded_llama3, conv)


def test_reply_is_capped_to_the_room_left(loaded_llama3):
    conv = loaded_llama3.new_conversation()
    conv.add_user("uzun " * 100)
    prepared = prepare_prompt(loaded_llama3, conv, 500)
    assert prepared.max_new_tokens == 512 - prepared.prompt_tokens


def test_bad_settings_are_refused(loaded_llama3):
    conv = loaded_llama3.new_conversation()
    conv.add_user("merhaba")
    with pytest.raises(CosmosLlavaError, match=r"^top_p must be in \(0, 1\], got 1.5$"):
        stream_reply(loaded_llama3, conv, GenerationSettings(top_p=1.5))
    with pytest.raises(CosmosLlavaError, match="^the conversation must end with a user message$"):
        conv.add_assistant("selam")
        stream_reply(loaded_llama3, conv)


def test_sampling_with_a_seed_is_reproducible(loaded_llama3):
    def run():
        conv = loaded_llama3.new_conversation()
        conv.add_user("merhaba", [tiny.solid_image()])
        reply = stream_reply(loaded_llama3, conv, GenerationSettings(temperature=1.0, top_p=0.95, max_new_tokens=8, seed=3))
        return "".join(reply)

    assert run() == run()


def test_batched_generation_matches_one_at_a_time(loaded_llama3):
    """Left-padded batches (with and without images, different lengths) give the same greedy replies."""
    from cosmos_llava.generation import generate_batch, generate_reply

    settings = GenerationSettings(temperature=0, max_new_tokens=12)
    conversations = []
    for text, images in [("Ne görüyorsun?", [tiny.solid_image()]), ("Merhaba, bugün hava nasıl olacak?", []),
                         ("İki görsel:", [tiny.solid_image((0, 0, 200)), tiny.solid_image()])]:
        conv = loaded_llama3.new_conversation()
        conv.add_user(text, images)
        conversations.append(conv)
    alone = [generate_reply(loaded_llama3, conv, settings, add_to_conversation=False) for conv in conversations]
    batch = generate_batch(loaded_llama3, [prepare_prompt(loaded_llama3, c, 12) for c in conversations], settings)
    assert [samples[0].text.strip() for samples in batch] == alone
    assert all(samples[0].completion_tokens <= 12 for samples in batch)

    sampled = generate_batch(loaded_llama3, [prepare_prompt(loaded_llama3, conversations[0], 12)],
                             GenerationSettings(temperature=1.0, max_new_tokens=12, seed=0), n=3, stop=("a",))[0]
    assert len(sampled) == 3
    for sample in sampled:
        assert "a" not in sample.text
        assert (sample.finish_reason, sample.stop) in (("stop", "a"), ("length", None), ("stop", None))
