"""training/data.py: the label mask through real chat templates, bad rows, lengths, batching."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tiny
from conftest import REPO
from cosmos_llava.loading import load_prompt_format
from training.config import load_config
from training.data import (
    IGNORE_INDEX,
    BadRowError,
    LlavaCollator,
    LlavaDataset,
    ModalityLengthGroupedSampler,
    Row,
    RowEncoder,
    read_rows,
)
from cosmos_llava.errors import CosmosLlavaError

EOT = {"llava_llama3": "<|eot_id|>", "llava_mistral": "</s>"}


def supervised_runs(encoded) -> list[list[int]]:
    runs, current = [], []
    for token, label in zip(encoded.input_ids, encoded.labels):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def encoder_for(request, fixture, max_length=2048, template=None) -> RowEncoder:
    fmt = load_prompt_format(request.getfixturevalue(fixture), template=template)
    return RowEncoder.for_model(fmt, max_length)


def row(messages, images=(), row_id="r"):
    roles = {"human": "user", "gpt": "assistant"}
    return Row(row_id, [{"role": roles[r], "content": c} for r, c in messages], [Path(i) for i in images])


MULTI_TURN = [
    ("human", "<image>\nZemin ne renk?"), ("gpt", "Zemin kırmızı."),
    ("human", "Peki bu görselde?\n<image>"), ("gpt", "Burada zemin yeşil, daire mavi."),
    ("human", "Teşekkürler."), ("gpt", "Rica ederim!"),
]
TEXT_ONLY = [("human", "Gökyüzü ne renk?"), ("gpt", "Gökyüzü mavi.")]


@pytest.mark.parametrize("fixture", ["llava_llama3", "llava_mistral"])
@pytest.mark.parametrize("messages,images", [
    (MULTI_TURN, ["a.png", "b.png"]),  # images at the first and at a later turn
    (TEXT_ONLY, []),
])
def test_supervised_tokens_are_exactly_the_replies_and_their_end_of_turn(request, fixture, messages, images):
    encoder = encoder_for(request, fixture)
    encoded = encoder.encode(row(messages, images))
    replies = [text for role, text in messages if role == "gpt"]
    decoded = [encoder.tokenizer.decode(run) for run in supervised_runs(encoded)]
    if fixture == "llava_llama3":
        assert decoded == [reply + "<|eot_id|>" for reply in replies]
    else:  # Mistral's template writes " reply</s>": the space belongs to the reply's first token
        assert decoded == [" " + reply + "</s>" for reply in replies]
    # Images: one placeholder per feature, never supervised.
    image_id = encoder.image_token_id
    assert encoded.input_ids.count(image_id) == len(images) * encoder.image_token_count == len(images) * 16
    assert all(label == IGNORE_INDEX for token, label in zip(encoded.input_ids, encoded.labels) if token == image_id)
    assert encoded.n_images == len(images)


def test_prompt_before_each_reply_is_what_inference_sees(request):
    # The tokens before reply k equal the tokenized generation prompt of the first k user turns.
    encoder = encoder_for(request, "llava_llama3")
    r = row(MULTI_TURN, ["a.png", "b.png"])
    encoded = encoder.encode(r)
    messages = encoder.messages(r)
    first_supervised = [i for i, label in enumerate(encoded.labels)
                        if label != IGNORE_INDEX and (i == 0 or encoded.labels[i - 1] == IGNORE_INDEX)]
    for k, start in enumerate(first_supervised):
        cut = [i for i, m in enumerate(messages) if m["role"] == "assistant"][k]
        prompt = encoder.render(messages[:cut], add_generation_prompt=True)
        ids = encoder.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        expanded = [t for token in ids for t in ([token] * 16 if token == encoder.image_token_id else [token])]
        assert encoded.input_ids[:start] == expanded


def test_stage1_plain_supervises_only_the_caption(request):
    encoder = encoder_for(request, "llava_llama3", template="plain")
    encoded = encoder.encode(row([("human", "<image>\nGörseli kısaca anlat."),
                                  ("gpt", "Kırmızı zemin üzerinde mavi bir daire.")], ["a.png"]))
    tok = encoder.tokenizer
    assert [tok.decode(run) for run in supervised_runs(encoded)] == ["Kırmızı zemin üzerinde mavi bir daire.\n"]
    # BOS, 16 image tokens, caption: the instruction is not in the sequence at all (LLaVA's plain format).
    assert encoded.input_ids[0] == tok.bos_token_id
    assert encoded.input_ids[1:17] == [encoder.image_token_id] * 16
    assert tok.decode(encoded.input_ids[17:]) == "Kırmızı zemin üzerinde mavi bir daire.\n"


def test_template_that_rewrites_earlier_turns_is_an_error_naming_the_row(request):
    # A template that puts the system prompt into the *last* user turn changes the text before earlier
    # replies once a turn is added: the prompt of reply 1 would not be what inference sees.
    fmt = load_prompt_format(request.getfixturevalue("llava_mistral"))
    jinja = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] "
             "{% if loop.last or loop.revindex == 2 %}LAST {% endif %}{{ m['content'] }} [/INST]"
             "{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")
    encoder = RowEncoder(fmt.tokenizer, jinja, None, 16, 2048)
    with pytest.raises(BadRowError, match=r"^bad row r: the chat template renders reply 1 differently once later "
                                          r"turns are added, so its prompt is not what the model sees at inference$"):
        encoder.encode(row(MULTI_TURN, ["a.png", "b.png"]))


def test_token_crossing_a_reply_boundary_is_a_mismatch_error(request):
    # Template glue without a separator: "...ASSISTANT:" + "reply" can merge across the boundary.
    fmt = load_prompt_format(request.getfixturevalue("llava_llama3"))
    jinja = ("{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }}{% else %}"
             "{{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")
    encoder = RowEncoder(fmt.tokenizer, jinja, None, 16, 2048)
    # "ma" + "vi." is the word " mavi." once joined: one token would straddle prompt and reply.
    with pytest.raises(BadRowError, match=r"^bad row r: tokenization mismatch in reply 1: token 'Ġmavi' crosses "
                                          r"the start of the reply$"):
        encoder.encode(row([("human", "Gökyüzü ma"), ("gpt", "vi.")]))


def test_too_long_rows_lose_trailing_exchanges_or_are_dropped(request, tmp_path):
    encoder = encoder_for(request, "llava_llama3")
    full = encoder.encode(row(MULTI_TURN, ["a.png", "b.png"]))
    first_reply_end = [i for i, label in enumerate(full.labels) if label != IGNORE_INDEX][0]
    # Room for the first exchange only: the second image and later replies are cut, never split.
    ends = [i + 1 for i, label in enumerate(full.labels)
            if label != IGNORE_INDEX and (i + 1 == len(full.labels) or full.labels[i + 1] == IGNORE_INDEX)]
    short = RowEncoder(encoder.tokenizer, encoder.chat_template, encoder.system_prompt, 16, ends[0] + 5)
    cut = short.encode(row(MULTI_TURN, ["a.png", "b.png"]))
    assert len(cut) == ends[0] and cut.n_images == 1 and cut.dropped_replies == 2
    assert cut.input_ids == full.input_ids[: ends[0]]
    tiny_limit = RowEncoder(encoder.tokenizer, encoder.chat_template, encoder.system_prompt, 16, first_reply_end)
    from training.data import RowTooLongError

    with pytest.raises(RowTooLongError, match=rf"^bad row r: {len(full)} tokens; even its first reply ends past "
                                              rf"max_length {first_reply_end}$"):
        tiny_limit.encode(row(MULTI_TURN, ["a.png", "b.png"]))


# ------------------------------------------------------------------------------------------- bad rows

GOOD = {"id": "good", "image": "images/kırmızı.png",
        "conversations": [{"from": "human", "value": "<image>\nZemin?"}, {"from": "gpt", "value": "Kırmızı."}]}


def bad_rows_file(folder: Path) -> Path:
    tiny.write_llava_data(folder, "caption", repeats=1)
    (folder / "images" / "not-an-image.png").write_text("hello", encoding="utf-8")
    lines = [
        json.dumps(GOOD, ensure_ascii=False),
        json.dumps({**GOOD, "id": "missing", "image": "images/nope.png"}, ensure_ascii=False),
        json.dumps({**GOOD, "id": "unreadable", "image": "images/not-an-image.png"}, ensure_ascii=False),
        '{"id": "broken", "conversations": [',
        json.dumps({**GOOD, "id": "markers", "image": ["images/kırmızı.png", "images/mavi.png"]}, ensure_ascii=False),
        json.dumps({**GOOD, "id": "good-2"}, ensure_ascii=False),
    ]
    path = folder / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("line,message", [
    (1, "bad row missing: image file not found: {folder}/images/nope.png"),
    (2, "bad row unreadable: not an image file (unrecognised format): {folder}/images/not-an-image.png"),
    (3, "bad row line 1: malformed JSON (Expecting value at column 36)"),
    (4, "bad row markers: 1 <image> marker(s) in the text for 2 image(s)"),
])
def test_each_bad_row_stops_with_its_id_and_reason(tmp_path, line, message):
    path = bad_rows_file(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines()
    only = tmp_path / "one.jsonl"
    only.write_text(lines[line] + "\n", encoding="utf-8")
    with pytest.raises(BadRowError) as info:
        read_rows(only)
    assert str(info.value) == message.format(folder=tmp_path)


def test_skip_bad_rows_counts_and_names_them(tmp_path):
    rows, skipped = read_rows(bad_rows_file(tmp_path), skip_bad_rows=True)
    assert [r.id for r in rows] == ["good", "good-2"]
    assert [row_id for row_id, _ in skipped] == ["missing", "unreadable", "line 4", "markers"]


def test_structural_errors(tmp_path):
    cases = {
        "no-reply": ([{"from": "human", "value": "Merhaba"}], "the last human turn has no gpt reply"),
        "order": ([{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}],
                  "turns must alternate human, gpt, human, gpt, ... starting with human"),
        "image-in-reply": ([{"from": "human", "value": "a"}, {"from": "gpt", "value": "<image>"}],
                           "<image> may only appear in human turns"),
    }
    for row_id, (conversations, reason) in cases.items():
        path = tmp_path / f"{row_id}.json"
        path.write_text(json.dumps([{"id": row_id, "conversations": conversations}]), encoding="utf-8")
        with pytest.raises(BadRowError) as info:
            read_rows(path)
        assert str(info.value) == f"bad row {row_id}: {reason}"


def test_corrupt_image_found_at_load_time_is_an_error_or_a_counted_skip(request, tmp_path):
    data = tiny.write_llava_data(tmp_path, "caption", repeats=1)
    png = tmp_path / "images" / "mavi.png"
    png.write_bytes(png.read_bytes()[:60])  # header intact, pixel data cut off
    encoder = encoder_for(request, "llava_llama3", template="plain")
    fmt = load_prompt_format(request.getfixturevalue("llava_llama3"))
    rows, _ = read_rows(data)
    index = [r.id for r in rows].index("cap-mavi-0")
    strict = LlavaDataset(rows, encoder, fmt.processor.image_processor)
    with pytest.raises(BadRowError, match=rf"^bad row cap-mavi-0: image file is truncated or corrupt .*{png}$"):
        strict[index]
    lenient = LlavaDataset(rows, encoder, fmt.processor.image_processor, skip_bad_rows=True)
    item = lenient[index]
    assert item["id"] == rows[index + 1].id
    assert [i for i, _ in lenient.report.unreadable_at_load] == ["cap-mavi-0"]
    assert "skipped 1 bad rows (reasons in data_report.json): cap-mavi-0" in lenient.report.lines()


# ------------------------------------------------------------------------------------------- batching


def test_sampler_groups_by_modality_and_is_deterministic_per_epoch():
    lengths = [10, 200, 30, 150, 20, 180, 40, 160, 50, 170, 60, 190]
    multimodal = [False, True] * 6
    sampler = ModalityLengthGroupedSampler(lengths, multimodal, global_batch=2, seed=7)
    order = list(sampler)
    assert sorted(order) == list(range(12))
    for start in range(0, 12, 2):
        batch = order[start:start + 2]
        assert len({multimodal[i] for i in batch}) == 1
        assert lengths[batch[0]] >= lengths[batch[1]]
    assert list(sampler) == order  # same epoch, same order (what resuming relies on)
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_sampler_batches_rows_of_similar_length_on_one_process():
    """Mega-batches of many global batches, so even one process with no accumulation saves the padding
    (LLaVA's mega-batch of one global batch only sorts each batch within itself)."""
    rng = random.Random(3)
    lengths = [rng.randint(40, 400) for _ in range(4000)]
    sampler = ModalityLengthGroupedSampler(lengths, [True] * 4000, global_batch=16, seed=1)
    order = list(sampler)
    assert sorted(order) == list(range(4000))
    batches = [order[k:k + 16] for k in range(0, 4000, 16)]
    real = sum(lengths) / sum(16 * max(lengths[i] for i in batch) for batch in batches)
    assert real > 0.97, real
    assert max(lengths) in [lengths[i] for i in batches[0]]  # the longest batch first: out of memory at step one
    shuffled = list(range(4000))
    rng.shuffle(shuffled)
    random_real = sum(lengths) / sum(16 * max(lengths[i] for i in shuffled[k:k + 16]) for k in range(0, 4000, 16))
    assert random_real < 0.65, random_real  # what batches of arbitrary rows would hold
    # Batches are not sorted across the epoch: long and short ones alternate.
    maxima = [max(lengths[i] for i in batch) for batch in batches[1:]]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_collator_pads_right_and_stacks_images():
    items = [
        {"input_ids": torch.tensor([1, 2, 3]), "labels": torch.tensor([-100, 2, 3]),
         "pixel_values": torch.zeros(1, 3, 4, 4)},
        {"input_ids": torch.tensor([5]), "labels": torch.tensor([5])},
        {"input_ids": torch.tensor([6, 7]), "labels": torch.tensor([-100, 7]), "pixel_values": torch.ones(2, 3, 4, 4)},
    ]
    batch = LlavaCollator(pad_token_id=0)(items)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [5, 0, 0], [6, 7, 0]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [5, -100, -100], [-100, 7, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]
    assert batch["pixel_values"].shape == (3, 3, 4, 4)


def test_packed_collator_fills_sequences_first_fit_and_keeps_images_in_token_order():
    a = {"input_ids": torch.tensor([1, 2]), "labels": torch.tensor([-100, 2]), "pixel_values": torch.zeros(1, 3, 4, 4)}
    b = {"input_ids": torch.tensor([3, 4, 5]), "labels": torch.tensor([-100, -100, 5]),
         "pixel_values": torch.ones(1, 3, 4, 4)}
    c = {"input_ids": torch.tensor([6]), "labels": torch.tensor([6])}  # text only
    batch = LlavaCollator(pad_token_id=0, pack_to=4)([a, b, c])
    # Longest first: b opens sequence 0; a (2) no longer fits there and opens sequence 1; c fills sequence 0.
    assert batch["input_ids"].tolist() == [[3, 4, 5, 6], [1, 2, 0, 0]]
    # A row's first token is never a target (nothing before it in its own row predicts it), as when padded.
    assert batch["labels"].tolist() == [[-100, -100, 5, -100], [-100, 2, -100, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0], [0, 1, 0, 1]]
    assert "attention_mask" not in batch  # the model builds the block-causal mask from the positions ...
    assert batch["use_cache"] is False  # ... which it does only without a KV cache
    assert batch["pixel_values"][:, 0, 0, 0].tolist() == [1.0, 0.0]  # b's image comes first in the batch now
    with_room = LlavaCollator(pad_token_id=0, pack_to=8)([a, b, c])
    assert with_room["input_ids"].tolist() == [[3, 4, 5, 1, 2, 6]]


def test_packed_batch_gives_the_padded_batch_loss_and_gradients(request, tmp_path):
    """Five rows of different lengths, with and without images: packed into fewer sequences, the loss and
    every gradient are the padded batch's. The same packing without position ids, or with the model's KV
    cache on, gives another loss: the mask built from the positions is what keeps the rows apart."""
    from transformers import AutoModelForImageTextToText

    tiny.write_llava_data(tmp_path, "instruct", repeats=1)
    folder = request.getfixturevalue("llava_llama3")
    fmt = load_prompt_format(folder)
    rows, _ = read_rows(tmp_path / "data.json")
    by_kind = {kind: [r for r in rows if r.id.startswith(kind)] for kind in ("conv", "two-images", "text")}
    rows = [by_kind["conv"][0], *by_kind["two-images"], *by_kind["text"], *by_kind["conv"][1:3]]
    dataset = LlavaDataset(rows, RowEncoder.for_model(fmt, 2048), fmt.processor.image_processor)
    items = [dataset[i] for i in range(len(dataset))]
    lengths = sorted(len(item["input_ids"]) for item in items)
    assert len(set(lengths)) > 1 and any("pixel_values" not in item for item in items)
    padded = LlavaCollator(pad_token_id=0)(items)
    packed = LlavaCollator(pad_token_id=0, pack_to=lengths[-1] + lengths[0])(items)
    assert packed["input_ids"].shape[0] < len(items)

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32)
    model.train()
    assert model.config.text_config.use_cache is True  # packing must not depend on it being off

    def loss_and_grads(batch):
        model.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    loss, grads = loss_and_grads(padded)
    packed_loss, packed_grads = loss_and_grads(packed)
    assert packed_loss == pytest.approx(loss, abs=1e-5)
    assert grads.keys() == packed_grads.keys() and len(grads) > 10
    for name, grad in grads.items():
        assert torch.allclose(packed_grads[name], grad, atol=1e-5, rtol=1e-4), name
    for leak in ("position_ids", "use_cache"):  # either way rows see the rows packed before them
        leaky = {k: v for k, v in packed.items() if k != leak}
        assert abs(loss_and_grads(leaky)[0] - loss) > 1e-4, leak


# ------------------------------------------------------------------------------------------- config


def test_config_overrides_and_errors(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("model: m\ndata: d.json\nlearning_rate: 1e-3\nstage: 1\n", encoding="utf-8")
    child = tmp_path / "child.yaml"
    child.write_text("defaults: base.yaml\nper_device_train_batch_size: 8\n", encoding="utf-8")
    config = load_config(child, ["learning_rate=2e-5", "max_length=512", "report_to=none"])
    assert config.stage == 1 and config.max_length == 512
    assert config.trainer["learning_rate"] == 2e-5 and config.trainer["per_device_train_batch_size"] == 8
    with pytest.raises(CosmosLlavaError, match="^unknown config key 'learning_rat': not a training option nor a "
                                               r"transformers.TrainingArguments field$"):
        load_config(child, ["learning_rat=1"])
    with pytest.raises(CosmosLlavaError, match="^stage 1 trains the projector only: method must be 'full'$"):
        load_config(child, ["method=lora"])
    with pytest.raises(CosmosLlavaError, match="^bad override 'oops': expected key=value$"):
        load_config(child, ["oops"])


def test_engine_options_checked_before_loading(tmp_path):
    """Options that would fail only after minutes of loading fail at once, in one line."""
    import importlib.util

    from transformers.integrations import is_tensorboard_available

    from training.engine import training_arguments

    def args(*overrides):
        return training_arguments(load_config(None, ["model=m", "data=d.json", f"output_dir={tmp_path}", *overrides]))

    with pytest.raises(CosmosLlavaError, match="^DeepSpeed config not found: nowhere.json$"):
        args("deepspeed=nowhere.json")
    if importlib.util.find_spec("deepspeed") is None:
        with pytest.raises(CosmosLlavaError, match="^the 'deepspeed' option needs DeepSpeed installed: pip install deepspeed$"):
            args(f"deepspeed={REPO}/training/configs/deepspeed/zero2.json")
    if not is_tensorboard_available():
        with pytest.raises(CosmosLlavaError, match="^report_to=tensorboard needs its package installed: pip install tensorboard$"):
            args("report_to=tensorboard")
    assert args("report_to=none").disable_tqdm is False  # the progress bar stays on under the quiet CLI


# ------------------------------------------------------------------------------------------- preview CLI


def run_training_cli(*args, timeout=300):
    import os

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "training", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def test_preview_marks_supervised_tokens(llava_llama3, tmp_path):
    data = tiny.write_llava_data(tmp_path, "instruct", repeats=1)
    result = run_training_cli("preview", "--data", data, "--model", llava_llama3, "--row", "two-images-0",
                              "--system-prompt", "")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "row two-images-0: 93 tokens, 10 supervised, 2 images\n"
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<image>x16\nBu görselin zemini ne renk?"
        "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n[[Kırmızı.<|eot_id|>]]"
        "<|start_header_id|>user<|end_header_id|>\n\nPeki bu?\n<image>x16<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n[[Yeşil.<|eot_id|>]]\n"
    )
    result = run_training_cli("preview", "--data", data, "--model", llava_llama3, "--row", "4", "--json")
    assert result.returncode == 0, result.stderr
    tokens = json.loads(result.stdout)
    assert set(tokens[0]) == {"token", "id", "supervised"}
    assert tokens[0] == {"token": "<|begin_of_text|>", "id": tokens[0]["id"], "supervised": False}
    assert tokens[-1]["token"] == "<|eot_id|>" and tokens[-1]["supervised"] is True
    result = run_training_cli("preview", "--data", data, "--model", llava_llama3, "--row", "99")
    assert (result.returncode, result.stderr) == (1, "error: no row '99': the file has 6 rows (give an index or an id)\n")


def test_images_load_lazily_and_are_padded_as_the_model_asks(request, tmp_path):
    tiny.write_llava_data(tmp_path, "caption", repeats=1)
    wide = tiny.solid_image((200, 30, 30), size=(96, 32))
    wide.save(tmp_path / "images" / "wide.png")
    data = tmp_path / "wide.json"
    data.write_text(json.dumps([{**GOOD, "image": "images/wide.png"}]), encoding="utf-8")
    fmt = load_prompt_format(request.getfixturevalue("llava_llama3"))
    assert fmt.processor.image_processor.do_pad is True  # recorded at compose time: image_aspect_ratio pad
    rows, _ = read_rows(data)
    dataset = LlavaDataset(rows, RowEncoder.for_model(fmt, 2048), fmt.processor.image_processor)
    pixels = dataset[0]["pixel_values"]
    padded = fmt.processor.image_processor([wide], return_tensors="pt")["pixel_values"]
    fmt.processor.image_processor.do_pad = False
    stretched = fmt.processor.image_processor([wide], return_tensors="pt")["pixel_values"]
    assert torch.equal(pixels, padded) and not torch.equal(pixels, stretched)


@pytest.mark.parametrize("image_tokens", [16, 1])
def test_items_are_the_start_up_encoding(request, tmp_path, image_tokens):
    """Items come from the encoding made at start-up (not re-rendered per item): ids and labels equal a
    fresh encode's for images at several turns, two adjacent images, text only and a shortened row."""
    fmt = load_prompt_format(request.getfixturevalue("llava_llama3"))
    for name in ("a.png", "b.png"):
        tiny.solid_image((30, 200, 30)).save(tmp_path / name)
    images = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    adjacent = [("human", "<image><image>\nFarkı ne?"), ("gpt", "Renkleri.")]
    rows = [row(MULTI_TURN, images, "iki"), row(adjacent, images, "yan-yana"), row(TEXT_ONLY, [], "metin")]
    full = RowEncoder(fmt.tokenizer, fmt.template.jinja, None, image_tokens, 2048)
    limit = len(full.encode(rows[0])) - 3  # the last exchange no longer fits
    encoder = RowEncoder(fmt.tokenizer, fmt.template.jinja, None, image_tokens, limit)
    dataset = LlavaDataset(rows, encoder, fmt.processor.image_processor)
    assert dataset.report.shortened == ["iki"]
    expected_rows = [encoder.encode(r) for r in rows]
    encoder.render = lambda *args, **kwargs: pytest.fail("an item rendered its chat template again")
    for index, (r, expected) in enumerate(zip(rows, expected_rows)):
        item = dataset[index]
        assert item["input_ids"].dtype == item["labels"].dtype == torch.long
        assert item["input_ids"].tolist() == expected.input_ids and item["labels"].tolist() == expected.labels, r.id
        assert len(item.get("pixel_values", [])) == expected.n_images
    assert dataset[1]["input_ids"].tolist().count(encoder.image_token_id) == 2 * image_tokens
    # Stored once, one token per image: the two-image row keeps 2 of its 2 x 16 placeholders.
    assert dataset._ids.dtype == torch.int32 and (dataset._ids == encoder.image_token_id).sum() == 2 + 2 + 0


def test_train_summary_lines(tmp_path):
    from training.data import DataReport
    from training.engine import TrainResult

    def loss_line(losses, mean):
        return TrainResult(tmp_path, 4, losses, DataReport(), mean_loss=mean).summary()[-2]

    assert loss_line([(2, 6.25161), (4, 6.24489)], 6.24833) == "loss: 6.2516 at step 2 -> 6.2449 at step 4; run mean 6.2483"
    assert loss_line([(10, 5.79723)], 5.614) == "loss: 5.7972 at step 10; run mean 5.6140"
    assert loss_line([], 6.2605) == "loss: run mean 6.2605"
    assert TrainResult(tmp_path, 0, [], DataReport()).summary()[-1] == f"saved to {tmp_path}"
