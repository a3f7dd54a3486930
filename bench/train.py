"""Training benchmark: step time, tokens/s, samples/s, peak memory and MFU of each training mode.

Every mode runs the project's real path, `training.engine.train(config)` (data encoding and masking,
the stage's freezing rules, LoRA/QLoRA, the Trainer), on a random-weight model of the chosen shape and
synthetic LLaVA rows of exactly --seq-len tokens (one image each). Each mode runs in its own process,
so one mode's memory (or out-of-memory) never shows up in another's figures.

  mode          what trains
  stage1        the projector (LLaVA stage 1: plain template, frozen vision tower and LLM)
  stage2-full   projector + LLM
  stage2-lora   projector + LoRA adapters on every LLM linear layer (r 64)
  stage2-qlora  the same on a 4-bit LLM (bitsandbytes)

What is measured:
  step (s)      mean wall time of an optimizer step after --warmup-steps (data loading included),
                taken between consecutive on_step_end callbacks (CUDA synchronized)
  tokens/s      batch size x tokens per row (image tokens included) / step time
  peak memory   CUDA: torch.cuda.max_memory_allocated from train begin (the loaded weights included).
                CPU: the process's peak RSS, reset at train begin (see bench/infer.py's Memory)
  MFU           model FLOPs per second / the GPU's peak dense bf16 FLOPs. Model FLOPs count the matmul
                parameters only (attention's sequence-squared term and the embedding lookup left out):
                6 N per token for trained weights, 4 N for frozen weights that gradients pass through
                (the LLM, whose input the trained projector feeds), 2 N for the frozen vision tower.
                Recomputation under --gradient-checkpointing is not counted (it is MFU, not HFU).

  python bench/train.py --shape tiny                      # CPU, under a minute
  python bench/train.py --shape small                     # CLIP-B/16 + a 0.5B LLaMA shape, CPU, minutes
  python bench/train.py --shape llava-8b --modes stage1,stage2-lora,stage2-qlora --gradient-checkpointing
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import cosmos_llava  # noqa: E402, F401  (first: it quiets bitsandbytes' notice at import, as the Trainer imports it)
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from cosmos_llava.cli import run_command  # noqa: E402
from cosmos_llava.compose import save  # noqa: E402
from cosmos_llava.errors import CosmosLlavaError  # noqa: E402
from infer import SHAPES, Memory, bench_image, bench_words, build_shape, device_name, publish  # noqa: E402
from infer import resolve_device as _resolve_device  # noqa: E402

MODES = {
    "stage1": dict(stage=1, method="full", template="plain", save_projector_only=True, learning_rate=1e-3),
    "stage2-full": dict(stage=2, method="full", learning_rate=2e-5),
    "stage2-lora": dict(stage=2, method="lora", learning_rate=2e-4),
    "stage2-qlora": dict(stage=2, method="qlora", learning_rate=2e-4),
}
DEFAULT_MODES = "stage1,stage2-full,stage2-lora"
# Peak dense bf16 tensor-core TFLOPS (no sparsity), from the vendors' data sheets.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}
GPU_SHAPES = ("llava-1b", "llava-8b")
WORDS = bench_words(100)
HEADER = "| mode | trainable params | step (s) | tokens/s | samples/s | peak memory (MiB) | MFU |"


# ------------------------------------------------------------------------------------------- data

def write_rows(model_dir: Path, out: Path, mode: str, seq_len: int, count: int) -> int:
    """Write `count` rows of exactly `seq_len` tokens (as this mode encodes them); returns seq_len.

    The answer is made of words of the bench tokenizer's vocabulary, one token each, so the
    length can be hit exactly: encode a one-word row, then add the words still missing.
    """
    from cosmos_llava.loading import load_prompt_format
    from training.data import RowEncoder, read_rows

    out.mkdir(parents=True, exist_ok=True)
    bench_image().save(out / "image.png")
    fmt = load_prompt_format(str(model_dir), MODES[mode].get("template"))
    encoder = RowEncoder.for_model(fmt, max_length=seq_len)

    def row(words: int) -> dict:
        answer = " ".join(WORDS[i % len(WORDS)] for i in range(words))
        return {"id": "r", "image": "image.png", "conversations": [
            {"from": "human", "value": "<image>\n" + " ".join(WORDS[:8])},
            {"from": "gpt", "value": answer}]}

    def length(data: dict) -> int:
        path = out / "probe.json"
        path.write_text(json.dumps([data]), encoding="utf-8")
        rows, _ = read_rows(path, out, check_images=False)
        return len(encoder.encode(rows[0]))

    base = length(row(1))
    if base > seq_len:
        raise CosmosLlavaError(f"--seq-len {seq_len} is too short: a row with one image already takes {base} tokens")
    data = row(1 + seq_len - base)
    if length(data) != seq_len:
        raise RuntimeError(f"synthetic row is {length(data)} tokens, wanted {seq_len}")
    rows = [{**data, "id": f"row-{i}"} for i in range(count)]
    (out / "data.json").write_text(json.dumps(rows), encoding="utf-8")
    return seq_len


# ------------------------------------------------------------------------------------ measurement

class StepClock(TrainerCallback):
    """Times each optimizer step, measures peak memory from train begin, and counts model FLOPs."""

    def __init__(self, device: str, tokens_per_row: int, vision_tokens: int, image_tokens: int):
        self.device, self.tokens, self.vision_tokens, self.image_tokens = device, tokens_per_row, vision_tokens, image_tokens
        self.memory = Memory(device)
        self.ends: list[float] = []
        self.flops_per_row = 0.0
        self.peak_mib = 0.0

    def _now(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.flops_per_row = model_flops_per_row(model, self.tokens, self.vision_tokens, self.image_tokens)
        self.memory.start()
        self.ends = [self._now()]

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(self._now())

    def on_train_end(self, args, state, control, **kwargs):
        self.peak_mib = self.memory.peak()

    def step_times(self) -> list[float]:
        return [b - a for a, b in zip(self.ends, self.ends[1:])]


def model_flops_per_row(model, seq_len: int, vision_tokens: int, image_tokens: int) -> float:
    """Matmul FLOPs of one training row (forward + backward), per the rules in the module docstring."""
    vision_trained = any(p.requires_grad for n, p in model.named_parameters() if "vision_tower" in n)
    flops = 0.0
    for name, param in model.named_parameters():
        if "embed_tokens" in name or "position_embedding" in name or "original_module" in name or param.dim() < 2:
            # lookups, vectors (norms, biases), and PEFT's unused copy of a module it trains in full
            continue
        count = param.numel() * (2 if param.dtype == torch.uint8 else 1)  # 4-bit weights pack two per byte
        if "vision_tower" in name:
            tokens, factor = vision_tokens, 6 if param.requires_grad else (4 if vision_trained else 2)
        elif "multi_modal_projector" in name:
            tokens, factor = image_tokens, 6 if param.requires_grad else 4
        else:  # the LLM: its input comes from the trained projector, so gradients always pass through it
            tokens, factor = seq_len, 6 if param.requires_grad else 4
        flops += factor * count * tokens
    if getattr(model.config, "tie_word_embeddings", False) or getattr(
            getattr(model.config, "text_config", None), "tie_word_embeddings", False):
        # a tied lm_head shares embed_tokens' weight (skipped above) but is a real matmul
        head = model.get_output_embeddings().weight
        flops += (6 if head.requires_grad else 4) * head.numel() * seq_len
    return flops


def peak_tflops(device: str, given: float | None) -> float | None:
    if given:
        return given
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((tflops for key, tflops in PEAK_TFLOPS.items() if key in name), None)


# ------------------------------------------------------------------------------------------ worker

def run_mode(args, model_dir: Path, work: Path) -> dict:
    """One mode, in this process: write its data, train --steps steps through training.engine.train."""
    from training.config import build_config, trainer_fields
    from training.engine import train

    mode = args.worker_mode
    spec = dict(MODES[mode])
    tokens = write_rows(model_dir, work / "data", mode, args.seq_len, args.steps * args.batch_size)
    vision = SHAPES[args.shape]["vision"]
    vision_tokens = (vision["image_size"] // vision["patch_size"]) ** 2 + 1  # patches + the class token
    clock = StepClock(args.device, tokens, vision_tokens, vision_tokens - 1)
    raw = dict(
        model=str(model_dir), data=str(work / "data" / "data.json"), dtype=args.dtype,
        max_length=args.seq_len, check_images=False, output_dir=str(work / "out"), max_steps=args.steps,
        per_device_train_batch_size=args.batch_size, warmup_steps=0, save_strategy="no", logging_steps=10**6,
        disable_tqdm=True, **spec,
    )
    if args.gradient_checkpointing:
        raw["activation_checkpointing" if "activation_checkpointing" in trainer_fields() else "gradient_checkpointing"] = True
    if args.device == "cpu":
        raw["use_cpu"] = True
    try:
        result = train(build_config(raw), callbacks=[clock], echo=lambda *_: None)
    except torch.cuda.OutOfMemoryError:
        return dict(mode=mode, error="out of memory")
    measured = clock.step_times()[args.warmup_steps:]
    step = statistics.fmean(measured)
    peak = peak_tflops(args.device, args.peak_tflops)
    return dict(
        mode=mode, trainable_params=result.trainable_parameters, total_params=result.total_parameters,
        tokens_per_row=tokens, step_s=step, steps_measured=len(measured),
        tokens_per_s=args.batch_size * tokens / step, samples_per_s=args.batch_size / step,
        peak_mem_mib=clock.peak_mib, model_tflops_per_row=clock.flops_per_row / 1e12,
        mfu=clock.flops_per_row * args.batch_size / step / (peak * 1e12) if peak else None,
    )


# -------------------------------------------------------------------------------------------- main

def resolve_device(args) -> str:
    return _resolve_device(args, GPU_SHAPES, "training it on CPU: tens of GB of RAM and hours a step")


def benchmark(args) -> dict:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise CosmosLlavaError(f"unknown mode '{(unknown or [''])[0]}'; choose from: {', '.join(MODES)}")
    if args.steps <= args.warmup_steps:
        raise CosmosLlavaError("--steps must be more than --warmup-steps (the steps after them are timed)")
    if args.batch_size < 1:
        raise CosmosLlavaError("--batch-size must be at least 1")
    device = resolve_device(args)
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    rows = []
    with tempfile.TemporaryDirectory(prefix=f"bench-train-{args.shape}-") as tmp:
        model_dir = Path(tmp) / "model"
        # Saved once, loaded by each mode. Built on the run's device: an 8B random init takes minutes on
        # a CPU and seconds on a GPU; the memory goes back before the modes start.
        loaded = build_shape(args.shape, device, getattr(torch, dtype))
        loaded.executor.submit(save, loaded.model, loaded.processor, str(model_dir)).result()
        loaded.executor.shutdown()
        del loaded
        if device == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
        for mode in modes:
            rows.append(_spawn(args, mode, model_dir, Path(tmp) / mode, device, dtype))
    return {
        "model": f"shape:{args.shape}",
        "device": device_name(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "dtype": dtype,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "steps": args.steps,
        "warmup_steps": args.warmup_steps,
        "gradient_checkpointing": args.gradient_checkpointing,
        "peak_tflops": peak_tflops(device, args.peak_tflops),
        "memory": Memory(device).method,
        "rows": rows,
    }


def _spawn(args, mode: str, model_dir: Path, work: Path, device: str, dtype: str) -> dict:
    work.mkdir(parents=True)
    out = work / "result.json"
    command = [sys.executable, __file__, "--shape", args.shape, "--device", device, "--dtype", dtype,
               "--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps),
               "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len),
               "--worker-mode", mode, "--worker-dir", str(work), "--worker-model", str(model_dir)]
    if args.gradient_checkpointing:
        command.append("--gradient-checkpointing")
    if args.peak_tflops:
        command += ["--peak-tflops", str(args.peak_tflops)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return dict(mode=mode, error=f"failed: {last}")
    return json.loads(out.read_text())


def print_table(results: dict) -> None:
    print(f"{results['model']} on {results['device']}; torch {results['torch']}, transformers "
          f"{results['transformers']}; {results['dtype']}")
    print(f"batch {results['batch_size']} x {results['seq_len']} tokens (one image each), mean of "
          f"{results['steps'] - results['warmup_steps']} steps after {results['warmup_steps']} warm-up; "
          f"gradient checkpointing {'on' if results['gradient_checkpointing'] else 'off'}; "
          f"MFU against {results['peak_tflops'] or 'n/a'} TFLOPS; memory: {results['memory']}")
    print()
    print(HEADER)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results["rows"]:
        if "error" in r:
            print(f"| {r['mode']} | {r['error']} | | | | | |")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(f"| {r['mode']} | {r['trainable_params']:,} | {r['step_s']:.3f} | {r['tokens_per_s']:.0f} | "
              f"{r['samples_per_s']:.2f} | {r['peak_mem_mib']:.0f} | {mfu} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=list(SHAPES), required=True, help="random weights of this shape")
    parser.add_argument("--modes", default=DEFAULT_MODES, help=f"comma-separated, from: {', '.join(MODES)}")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps per mode")
    parser.add_argument("--warmup-steps", type=int, default=2, help="first steps left out of the timing")
    parser.add_argument("--batch-size", type=int, default=2, help="rows per step (per device)")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="tokens per row, image tokens included (default: 2048 on CUDA, 256 on CPU)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--dtype", choices=("auto", "bfloat16", "float16", "float32"), default="auto",
                        help="weights of the frozen parts; auto: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak TFLOPS for MFU (known: H100, H200, A100)")
    parser.add_argument("--json", help="also write the results to this file")
    for hidden in ("--worker-mode", "--worker-dir", "--worker-model"):  # one mode, in a child process
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = parser.parse_args(argv)
    return run_command(lambda: run(args), args.debug)


def run(args) -> None:
    if args.seq_len is None:
        args.seq_len = 2048 if resolve_device(args) == "cuda" else 256
    if args.worker_mode:  # a child process: one mode, its result as JSON for the parent
        result = run_mode(args, Path(args.worker_model), Path(args.worker_dir))
        Path(args.worker_dir, "result.json").write_text(json.dumps(result))
    else:
        publish(benchmark(args), print_table, args.json)


if __name__ == "__main__":
    sys.exit(main())
