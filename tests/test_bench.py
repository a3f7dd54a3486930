"""bench/infer.py runs end to end on the tiny shape and reports both paths."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO


def test_infer_bench_tiny(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "bench/infer.py", "--shape", "tiny", "--max-new-tokens", "8", "--repeats", "1",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| path | TTFT (s) | first text (s) | decode (tok/s) | peak memory (MiB) | over start (MiB) |" in result.stdout
    report = json.loads(out.read_text())
    assert [row["path"] for row in report["rows"]] == ["cosmos_llava", "baseline"]
    assert report["image_tokens"] == 16 and report["new_tokens"] == 8
    assert report["prompt_tokens"] > report["image_tokens"]
    for row in report["rows"]:
        assert row["ttft_s"] > 0 and row["decode_tok_s"] > 0 and row["peak_mem_mib"] > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for CPU-only machines")
def test_infer_bench_refuses_8b_on_cpu():
    result = subprocess.run([sys.executable, "bench/infer.py", "--shape", "llava-8b"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == (
        "error: --shape llava-8b needs a GPU (on CPU: ~32 GB of RAM in fp32 and very slow); pass --device cpu to force it\n"
    )


def test_bench_tokenizer_fills_every_shapes_vocabulary():
    """Llama-3's 128,256 ids need four-letter words; the tokenizer leaves exactly one id for <image>."""
    from bench.infer import SHAPES, bench_words, word_level_tokenizer

    assert bench_words(3) == ["aa", "ab", "ac"]
    assert bench_words(26 * 26 + 1)[-2:] == ["zz", "aaa"]
    for shape in SHAPES.values():
        vocab_size = shape["text"]["vocab_size"]
        assert len(word_level_tokenizer(vocab_size)) == vocab_size - 1
