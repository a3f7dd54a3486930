"""bench/train.py runs every default mode end to end on the tiny shape, through training.engine.train."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO

HEADER = "| mode | trainable params | step (s) | tokens/s | samples/s | peak memory (MiB) | MFU |"


def test_train_bench_tiny(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "bench/train.py", "--shape", "tiny", "--steps", "3", "--warmup-steps", "1",
         "--seq-len", "128", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert HEADER in result.stdout
    assert result.stderr == ""
    report = json.loads(out.read_text())
    rows = {row["mode"]: row for row in report["rows"]}
    assert list(rows) == ["stage1", "stage2-full", "stage2-lora"]
    assert all("error" not in row for row in rows.values()), rows
    # stage 1 trains exactly the tiny mlp2x_gelu projector: 64x64 + 64, twice
    assert rows["stage1"]["trainable_params"] == 2 * (64 * 64 + 64)
    assert rows["stage1"]["trainable_params"] < rows["stage2-lora"]["trainable_params"] < rows["stage2-full"]["trainable_params"]
    for row in rows.values():
        assert row["tokens_per_row"] == 128 and row["steps_measured"] == 2
        assert row["step_s"] > 0 and row["peak_mem_mib"] > 0
        assert row["tokens_per_s"] == pytest.approx(2 * 128 / row["step_s"])
        assert row["mfu"] is None  # no known peak on CPU without --peak-tflops
    # stage 1 FLOPs by the docstring's rules: frozen vision tower 2N x 17 tokens (3 layers of 4*64*64 +
    # 2*64*128, and the 64x3x14x14 patch conv), trained projector 6N x 16 image tokens, frozen LLM 4N x
    # 128 tokens (2 layers of q,o 64x64 + k,v 64x32 + MLP 3*64*128, and the 512x64 lm_head)
    vision, projector, llm = 3 * (4 * 64 * 64 + 2 * 64 * 128) + 64 * 3 * 14 * 14, 2 * 64 * 64, 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128) + 512 * 64
    assert rows["stage1"]["model_tflops_per_row"] * 1e12 == pytest.approx(2 * vision * 17 + 6 * projector * 16 + 4 * llm * 128)
    # full fine-tuning adds the LLM's weight gradients: 6N instead of 4N
    assert rows["stage2-full"]["model_tflops_per_row"] * 1e12 == pytest.approx(2 * vision * 17 + 6 * projector * 16 + 6 * llm * 128)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for CPU-only machines")
def test_train_bench_refuses_8b_on_cpu():
    result = subprocess.run([sys.executable, "bench/train.py", "--shape", "llava-8b"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == ("error: --shape llava-8b needs a GPU (training it on CPU: tens of GB of RAM and hours "
                             "a step); pass --device cpu to force it\n")
