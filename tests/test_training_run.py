"""Training runs end to end on tiny models: what each stage changes, loss, resume, outputs that chat."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback

import tiny
from conftest import REPO
from cosmos_llava.generation import GenerationSettings, stream_reply
from cosmos_llava.loading import load_model
from training.config import build_config, load_config
from training.engine import train

QUIET = {"disable_tqdm": True, "logging_steps": 1, "report_to": "none", "save_strategy": "no",
         "activation_checkpointing": False, "warmup_steps": 0, "lr_scheduler_type": "constant"}


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    return tiny.write_llava_data(tmp_path_factory.mktemp("captions"), "caption", repeats=2)


@pytest.fixture(scope="module")
def instruct(tmp_path_factory):
    return tiny.write_llava_data(tmp_path_factory.mktemp("instruct"), "instruct", repeats=2)


def run(tmp_path, name, callbacks=(), **values):
    config = build_config({**QUIET, "output_dir": str(tmp_path / name), **values})
    return train(config, callbacks=list(callbacks), echo=lambda *_: None)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_stage1_changes_the_projector_only(llava_llama3, captions, tmp_path):
    result = run(tmp_path, "s1", model=str(llava_llama3), data=str(captions), stage=1, template="plain",
                 max_steps=4, per_device_train_batch_size=2, learning_rate=1e-2)
    before, after = weights(llava_llama3), weights(result.output_dir)
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    projector = {k for k in before if "multi_modal_projector" in k}
    assert changed == projector  # every projector tensor moved, nothing else by a single bit
    assert result.trainable_parameters == sum(before[k].numel() for k in projector)
    # stage 2 starts from stage 1's folder
    stage2 = run(tmp_path, "s2", model=str(result.output_dir), data=str(captions), max_steps=1,
                 per_device_train_batch_size=2)
    assert stage2.global_step == 1 and (stage2.output_dir / "model.safetensors").is_file()


def test_stage1_linear_projector_keeps_its_identity_layer(llava_mistral, captions, tmp_path):
    result = run(tmp_path, "s1", model=str(llava_mistral), data=str(captions), stage=1, template="plain",
                 max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2)
    before, after = weights(llava_mistral), weights(result.output_dir)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert {k.split("multi_modal_projector.")[-1] for k in changed} == {"linear_1.weight", "linear_1.bias"}
    assert all("multi_modal_projector." in k for k in changed)


@pytest.mark.parametrize("method,lr,alpha,min_drop", [("full", 3e-3, 32, 1.0), ("lora", 1e-2, 64, 0.4)])
def test_stage2_lowers_the_loss(llava_llama3, instruct, tmp_path, method, lr, alpha, min_drop):
    # The loss starts near ln(512) = 6.24 (random tiny model); a frozen or untrained model stays there.
    result = run(tmp_path, method, model=str(llava_llama3), data=str(instruct), stage=2, method=method,
                 max_steps=40, per_device_train_batch_size=4, learning_rate=lr, lora_r=16, lora_alpha=alpha,
                 lora_dropout=0.0, system_prompt="")
    first = sum(loss for _, loss in result.losses[:3]) / 3
    last = sum(loss for _, loss in result.losses[-3:]) / 3
    assert result.global_step == 40
    assert first > 5.8 and first - last > min_drop, (first, last)


def test_lora_touches_only_the_language_model_and_the_projector(llava_llama3, instruct, tmp_path):
    from training.model import apply_lora, set_trainable

    config = build_config({"model": str(llava_llama3), "data": str(instruct), "method": "lora", "lora_r": 4})
    loaded = load_model(str(llava_llama3))
    set_trainable(loaded.model, config)
    net = apply_lora(loaded.model, config, gradient_checkpointing=False)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    lora = [n for n in trainable if "lora_" in n]
    assert lora and all(".language_model." in n for n in lora)
    assert not any("vision_tower" in n for n in trainable)
    assert set(trainable) - set(lora) == {n for n in trainable if "multi_modal_projector.modules_to_save" in n}
    # and without the projector: adapters only
    config = build_config({"model": str(llava_llama3), "data": str(instruct), "method": "lora", "lora_r": 4,
                           "tune_projector": False})
    loaded = load_model(str(llava_llama3))
    set_trainable(loaded.model, config)
    net = apply_lora(loaded.model, config, gradient_checkpointing=False)
    assert all("lora_" in n and ".language_model." in n for n, p in net.named_parameters() if p.requires_grad)


def chat(loaded) -> str:
    conv = loaded.new_conversation()
    conv.add_user("Zemin ne renk?", [tiny.solid_image((200, 30, 30), (64, 64))])
    reply = stream_reply(loaded, conv, GenerationSettings(max_new_tokens=4, temperature=0.0, seed=0))
    text = "".join(reply)
    assert reply.completion_tokens > 0 and reply.finish_reason in ("stop", "length")
    return text


def test_full_output_loads_with_the_core_loader_and_chats(llava_llama3, instruct, tmp_path):
    result = run(tmp_path, "full", model=str(llava_llama3), data=str(instruct), stage=2, max_steps=2,
                 per_device_train_batch_size=2)
    loaded = load_model(str(result.output_dir))
    assert loaded.template.jinja == load_model(str(llava_llama3)).template.jinja
    assert loaded.config.cosmos_llava["training"] == {"stage": 2, "method": "full", "data": str(instruct), "steps": 2}
    chat(loaded)
    assert yaml.safe_load((result.output_dir / "train_config.yaml").read_text())["max_steps"] == 2
    assert json.loads((result.output_dir / "data_report.json").read_text())["rows"] == 12


def test_qlora_trains_on_a_4bit_base_and_merges(llava_llama3, instruct, tmp_path):
    import bitsandbytes as bnb

    from training.model import load_for_training, prepare_model
    from training.engine import training_arguments
    from training.merge import merge_lora

    config = build_config({**QUIET, "model": str(llava_llama3), "data": str(instruct), "method": "qlora",
                           "lora_r": 8, "output_dir": str(tmp_path / "q")})
    net = prepare_model(load_for_training(config, training_arguments(config)), config, training_arguments(config))
    four_bit = [n for n, m in net.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit and all(".language_model." in n for n in four_bit)

    result = run(tmp_path, "qlora", model=str(llava_llama3), data=str(instruct), method="qlora", max_steps=3,
                 per_device_train_batch_size=2, learning_rate=1e-3, lora_r=8)
    adapter = result.output_dir
    assert (adapter / "adapter_model.safetensors").is_file()
    chat(load_model(str(llava_llama3), adapter=str(adapter)))
    merged = merge_lora(str(llava_llama3), str(adapter), tmp_path / "merged")
    loaded = load_model(str(merged))
    assert not any("lora_" in n for n, _ in loaded.model.named_parameters())
    chat(loaded)


class Interrupt(Exception):
    pass


class StopAt(TrainerCallback):
    """Kills the run after a given step, like a preempted job."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Interrupt()


@pytest.mark.parametrize("variant,extra,weights_file", [
    ("full", {"stage": 2}, "model.safetensors"),
    ("lora", {"stage": 2, "method": "lora", "lora_r": 4, "lora_dropout": 0.0}, "adapter_model.safetensors"),
    ("projector-only", {"stage": 1, "template": "plain", "save_projector_only": True}, "projector.safetensors"),
])
def test_resume_matches_an_uninterrupted_run(llava_llama3, instruct, tmp_path, variant, extra, weights_file):
    # 12 rows, batch 2: 6 steps an epoch; 9 steps cross an epoch; stop after 5, resume from step 4.
    common = dict(model=str(llava_llama3), data=str(instruct), max_steps=9, per_device_train_batch_size=2,
                  learning_rate=2e-3, save_strategy="steps", save_steps=4, lr_scheduler_type="cosine",
                  warmup_steps=2, seed=3, **extra)
    whole = run(tmp_path, "whole", **common)
    with pytest.raises(Interrupt):
        run(tmp_path, "cut", callbacks=[StopAt(5)], **common)
    assert sorted(p.name for p in (tmp_path / "cut").glob("checkpoint-*")) == ["checkpoint-4"]
    resumed = run(tmp_path, "cut", resume="auto", **common)
    assert resumed.resumed_from == str(tmp_path / "cut" / "checkpoint-4")
    assert resumed.global_step == 9
    assert [s for s, _ in resumed.losses] == [5, 6, 7, 8, 9]
    for (step, a), (_, b) in zip(whole.losses[4:], resumed.losses):
        assert a == pytest.approx(b, abs=1e-5), step
    w1 = load_file(str(whole.output_dir / weights_file))
    w2 = load_file(str(resumed.output_dir / weights_file))
    assert w1.keys() == w2.keys() and w1
    for key in w1:
        torch.testing.assert_close(w1[key], w2[key], atol=1e-6, rtol=0)
    # and the loss moved: a resume that silently restarted from the initial weights would differ above
    assert whole.losses[0][1] != pytest.approx(whole.losses[-1][1], abs=1e-3)


def run_training_cli(*args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "training", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def test_cli_projector_only_stage1_then_stage2_with_skipped_rows(llava_llama3, captions, instruct, tmp_path):
    stage1 = tmp_path / "stage1"
    result = run_training_cli("--config", "training/configs/stage1.yaml", f"model={llava_llama3}",
                              f"data={captions}", "image_folder=", f"output_dir={stage1}", "max_steps=2",
                              "per_device_train_batch_size=2", "save_projector_only=true", "disable_tqdm=true")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in stage1.iterdir() if p.suffix == ".safetensors") == ["projector.safetensors"]
    assert "stage 1 (full): training " in result.stdout and f"saved to {stage1}" in result.stdout

    # Stage 2 from the base + stage 1's projector, with a bad row in the data.
    rows = json.loads(instruct.read_text(encoding="utf-8"))
    rows.append({"id": "lost", "image": "images/nope.png",
                 "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "?"}]})
    data = instruct.parent / "with-bad.json"
    data.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    args = ["--config", "training/configs/stage2.yaml", f"model={llava_llama3}", f"projector={stage1}",
            f"data={data}", "image_folder=", f"output_dir={tmp_path / 'stage2'}", "max_steps=1",
            "per_device_train_batch_size=2", "disable_tqdm=true"]
    result = run_training_cli(*args)
    assert (result.returncode, result.stderr.splitlines()[-1]) == (
        1, f"error: bad row lost: image file not found: {instruct.parent}/images/nope.png")
    result = run_training_cli(*args, "--skip-bad-rows")
    assert result.returncode == 0, result.stderr
    assert "skipped 1 bad rows (reasons in data_report.json): lost" in result.stdout
    report = json.loads((tmp_path / "stage2" / "data_report.json").read_text())
    assert report["skipped"] == [{"id": "lost", "reason": f"image file not found: {instruct.parent}/images/nope.png"}]
    # stage 2 starts from stage 1's projector, not the base's
    from training.engine import training_arguments
    from training.model import load_for_training

    config = load_config(REPO / "training/configs/stage2.yaml",
                         [f"model={llava_llama3}", f"projector={stage1}", f"data={instruct}"])
    net = load_for_training(config, training_arguments(config)).model
    trained = load_file(str(stage1 / "projector.safetensors"))
    assert not torch.equal(weights(llava_llama3)["multi_modal_projector.linear_1.weight"], trained["linear_1.weight"])
    for key, value in net.model.multi_modal_projector.state_dict().items():
        assert torch.equal(value, trained[key]), key


def test_shipped_configs_are_valid():
    folder = REPO / "training" / "configs"
    names = sorted(p.name for p in folder.glob("*.yaml"))
    assert names == ["cosmos_llama_stage1.yaml", "cosmos_llama_stage2.yaml", "cosmos_mistral_stage1.yaml",
                     "cosmos_mistral_stage2.yaml", "demo_stage1.yaml", "demo_stage2.yaml", "llava15_stage1.yaml",
                     "llava15_stage2.yaml", "stage1.yaml", "stage2.yaml", "stage2_lora.yaml", "stage2_qlora.yaml"]
    for name in names:
        load_config(folder / name)
    demo = load_config(folder / "demo_stage2.yaml")  # the demo build's stage 2: full, the encoder frozen
    assert (demo.stage, demo.method, demo.tune_vision, demo.trainer["learning_rate"]) == (2, "full", False, 1e-3)
    assert demo.group_by_modality_length is False  # its row lengths give away the question type
    assert demo.packing is True and demo.trainer["per_device_train_batch_size"] == 64
    paper = load_config(folder / "cosmos_llama_stage1.yaml")
    assert (paper.stage, paper.trainer["per_device_train_batch_size"], paper.trainer["learning_rate"],
            paper.trainer["num_train_epochs"]) == (1, 16, 1e-3, 1)
    assert paper.vision == "openai/clip-vit-large-patch14-336" and paper.model is None
    paper2 = load_config(folder / "cosmos_llama_stage2.yaml")
    assert (paper2.stage, paper2.trainer["per_device_train_batch_size"], paper2.trainer["learning_rate"]) == (2, 4, 2e-5)
    for name, batch, lr in (("llava15_stage1.yaml", 256, 1e-3), ("llava15_stage2.yaml", 128, 2e-5)):
        c = load_config(folder / name)
        assert c.trainer["per_device_train_batch_size"] * c.trainer["gradient_accumulation_steps"] * 8 == batch
        assert (c.trainer["learning_rate"], c.trainer["warmup_steps"], c.trainer["lr_scheduler_type"],
                c.trainer["weight_decay"], c.max_length) == (lr, 0.03, "cosine", 0.0, 2048)
    for name in ("zero2.json", "zero3.json", "zero3_offload.json"):
        ds = json.loads((folder / "deepspeed" / name).read_text())
        assert ds["zero_optimization"]["stage"] in (2, 3) and "optimizer" not in ds  # our optimizer keeps its lr groups
    for name in ("multi_gpu.yaml", "multi_node.yaml", "fsdp.yaml"):
        assert yaml.safe_load((folder / "accelerate" / name).read_text())["distributed_type"] in ("MULTI_GPU", "FSDP")


def test_two_processes_train_one_model_with_text_only_batches(llava_llama3, instruct, tmp_path):
    # torchrun (what `accelerate launch` runs on GPUs) with 2 CPU processes over gloo. Gradient
    # checkpointing turns off DDP's unused-parameter search, so a text-only batch (projector unused)
    # fails unless every rank still runs the projector: the blank-image pass in compute_loss.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561",
         "-m", "training", f"model={llava_llama3}", f"data={instruct}", f"output_dir={out}", "max_steps=6",
         "per_device_train_batch_size=1", "save_strategy=no", "activation_checkpointing=true", "disable_tqdm=true",
         "logging_steps=1"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("data: 12 rows (2 text-only)") == 2  # main process only: at start and at the end
    assert "{'loss'" in result.stdout and "'epoch': '1'" in result.stdout  # 6 steps x 2 processes = 12 rows
    assert (out / "model.safetensors").is_file()


class CaptureOptimizer(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.groups = [(group["lr"], {id(p) for p in group["params"]}) for group in optimizer.param_groups]
        self.names = {id(p): n for n, p in model.named_parameters()}


def test_projector_has_its_own_learning_rate(llava_llama3, instruct, tmp_path):
    capture = CaptureOptimizer()
    run(tmp_path, "lr", callbacks=[capture], model=str(llava_llama3), data=str(instruct), method="lora", lora_r=4,
        max_steps=1, per_device_train_batch_size=2, learning_rate=1e-3, projector_lr=1e-4, weight_decay=0.1)
    by_lr: dict[float, set[str]] = {}
    for lr, ids in capture.groups:
        by_lr.setdefault(lr, set()).update(capture.names[i] for i in ids)
    assert sorted(by_lr) == [1e-4, 1e-3]
    assert capture.groups[0][0] == 1e-3  # the logged learning rate is the main one
    assert by_lr[1e-4] and all("multi_modal_projector" in n for n in by_lr[1e-4])
    assert all("lora_" in n for n in by_lr[1e-3])


def test_gradient_accumulation_equals_the_larger_batch(llava_llama3, instruct, tmp_path):
    # Rows have different numbers of supervised tokens: only a loss normalised over the whole
    # accumulated batch gives the same update. SGD, because Adam's first step hides gradient scale.
    common = dict(model=str(llava_llama3), data=str(instruct), max_steps=1, learning_rate=0.5, optim="sgd",
                  max_grad_norm=0.0, seed=5)
    big = run(tmp_path, "big", per_device_train_batch_size=4, gradient_accumulation_steps=1, **common)
    accumulated = run(tmp_path, "acc", per_device_train_batch_size=2, gradient_accumulation_steps=2, **common)
    start, w1, w2 = weights(llava_llama3), weights(big.output_dir), weights(accumulated.output_dir)
    moved = [k for k in w1 if not torch.equal(start[k], w1[k])]
    assert len(moved) > 10
    for key in moved:
        torch.testing.assert_close(w1[key] - start[key], w2[key] - start[key], atol=1e-6, rtol=1e-4)
    assert big.losses[0][1] == pytest.approx(accumulated.losses[0][1], abs=1e-5)


def test_packing_trains_exactly_as_padded_batches(llava_llama3, instruct, tmp_path):
    """`packing: true` changes how a batch is laid out (fewer, fuller sequences), not what is learned: the
    same batches give the same losses and the same weights."""
    common = dict(model=str(llava_llama3), data=str(instruct), max_steps=3, per_device_train_batch_size=4,
                  learning_rate=0.5, optim="sgd", max_grad_norm=0.0, seed=5, max_length=512)
    padded = run(tmp_path, "padded", **common)
    packed = run(tmp_path, "packed", packing=True, **common)
    assert [s for s, _ in packed.losses] == [1, 2, 3]
    for (_, a), (_, b) in zip(padded.losses, packed.losses):
        assert b == pytest.approx(a, abs=1e-5)
    start, w1, w2 = weights(llava_llama3), weights(padded.output_dir), weights(packed.output_dir)
    moved = [k for k in w1 if not torch.equal(start[k], w1[k])]
    assert len(moved) > 10
    for key in moved:
        torch.testing.assert_close(w2[key], w1[key], atol=1e-6, rtol=1e-4)
