"""Inference benchmark: time to first token with one image, decode tokens/s, peak memory.

Two paths on the same model and the same request (one image + a short Turkish question), in one run:
  cosmos_llava  this project's path: `stream_reply(loaded, conversation, settings)`, iterating its chunks
                (prompt fitting, the processor, the streamer thread, end-of-turn rules)
  baseline      plain transformers: render the chat template once, `processor(...)`,
                `model.generate(**inputs, max_new_tokens=N)` with a tiny timestamping streamer
Both greedy, exactly N new tokens (end-of-turn disabled for the run), one warm-up each, then
--repeats timed runs of each, interleaved; the medians are reported. Both run their compute on the
model's own thread (loading.model_thread: on CPU a second computing thread would get a second
OpenMP team and slow everything), so the difference between the rows is this project's own overhead.

What is measured, per run, from the moment the request starts (before prompt rendering and image
preprocessing, which are part of both paths):
  TTFT        when the first new token leaves the model: the streamer's put() on the generating
              thread, hooked the same way on both paths
  first text  when the first non-empty text chunk is there: for cosmos_llava, when iterating the
              reply yields it; for the baseline, the put() of the token at which transformers'
              TextStreamer would first emit text (replayed after the run, so it costs nothing)
  decode      (N - 1) / (time of token N - time of token 1)
  peak memory CUDA: torch.cuda.max_memory_allocated (reset before each run). CPU: the process's
              peak RSS (VmHWM, reset before each run through /proc/self/clear_refs; where that is
              not possible, ru_maxrss, which cannot be reset and so includes model building).
              "over start" is that peak minus the memory in use when the run started.

  python bench/infer.py --shape tiny                 # CPU, seconds
  python bench/infer.py --shape small                # CLIP-B/16 + a 0.5B LLaMA shape, CPU
  python bench/infer.py --shape llava-8b             # CLIP-L/14-336 + LLaMA-3-8B shapes, CUDA, bf16
  python bench/infer.py --model DIR --quant 4bit     # a real LLaVA folder, via load_model
Shapes use random weights and an offline word-level tokenizer (Llama-3's pre-tokenizer): no downloads. With --quant, a shape is
saved to a temporary folder and loaded back through load_model (for llava-8b that is ~16 GB of disk).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import resource
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import (  # noqa: E402
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    TextStreamer,
)
from transformers.generation.streamers import BaseStreamer  # noqa: E402

from cosmos_llava.cli import run_command  # noqa: E402
from cosmos_llava.compose import assemble_llava, save  # noqa: E402
from cosmos_llava.errors import CosmosLlavaError  # noqa: E402
from cosmos_llava.generation import GenerationSettings, prepare_prompt, stream_reply  # noqa: E402
from cosmos_llava.loading import DTYPE_CHOICES, QUANT_CHOICES, LoadedModel, load_model, loaded_from_parts, model_thread  # noqa: E402
from cosmos_llava.templates import named_template  # noqa: E402

SHAPES = {
    "tiny": dict(
        vision=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=2,
                    image_size=56, patch_size=14),
        text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=512),
    ),
    "small": dict(  # CLIP ViT-B/16-224 + a ~0.5B LLaMA
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    image_size=224, patch_size=16),
        text=dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=16, num_attention_heads=16,
                  num_key_value_heads=8, vocab_size=32000),
    ),
    "llava-1b": dict(  # CLIP ViT-L/14-336 + LLaMA-3.2-1B (tied embeddings)
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=336, patch_size=14),
        text=dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, tie_word_embeddings=True),
    ),
    "llava-8b": dict(  # CLIP ViT-L/14-336 + LLaMA-3-8B
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=336, patch_size=14),
        text=dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0),
    ),
}
PROMPT = ("Bu fotoğrafta neler olduğunu ayrıntılı olarak anlatır mısın? Renkleri, şekilleri ve nesnelerin "
          "birbirine göre konumlarını da söyle.")
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
UNK = "<unk>"


# ----------------------------------------------------------------------------------------- models

# Llama-3's pre-tokenizer split: newlines grouped, letters and digits apart (so prompt + reply
# tokenizes like prompt, then reply; training's label check relies on that, as with the real model).
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def bench_words(count: int) -> list[str]:
    """`count` letter-only words "aa", "ab", ..., "zz", "aaa", ... (as long as a vocabulary of `count`
    needs: Llama-3's 128,256 reach four letters): each is one token of the bench tokenizer, with or
    without a space."""
    words: list[str] = []
    for length in itertools.count(2):
        for letters in itertools.product(string.ascii_lowercase, repeat=length):
            if len(words) == count:
                return words
            words.append("".join(letters))


def word_level_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """An offline, lossless tokenizer of Llama-3's layout: Llama-3's split and byte-level pieces, but a
    word-level vocabulary (the specials, <unk>, newlines, then "aa", " aa", "ab", " ab", ...) sized so
    that, once assemble_llava adds <image>, it has exactly `vocab_size` tokens (no embedding resize).
    Every id a random model generates decodes to a word; other text (Turkish) is <unk>, one per word."""
    pieces = [*LLAMA3_SPECIALS, UNK, "\u010a", "\u010a\u010a"]  # byte-level "\n" and "\n\n"
    for word in bench_words(vocab_size):
        pieces += [word, "\u0120" + word]  # "\u0120" is byte-level's space
    vocab = {tok: i for i, tok in enumerate(pieces[:vocab_size - 1])}  # the last id is for <image>
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([*LLAMA3_SPECIALS, UNK])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   unk_token=UNK, model_max_length=8192)


def build_shape(name: str, device: str, dtype: torch.dtype) -> LoadedModel:
    """Random weights of the given shape, built on the model's own thread, as load_model does."""
    executor = model_thread()
    try:
        model, processor = executor.submit(_build_parts, name, device, dtype).result()
    except BaseException:
        executor.shutdown(wait=False)
        raise
    return loaded_from_parts(model, processor, f"shape:{name}", executor)


def _build_parts(name: str, device: str, dtype: torch.dtype):
    shape = SHAPES[name]
    vision_config = CLIPVisionConfig(**shape["vision"])
    text_config = LlamaConfig(**{"tie_word_embeddings": False, **shape["text"]}, max_position_embeddings=8192,
                              bos_token_id=0, eos_token_id=LLAMA3_SPECIALS.index("<|eot_id|>"))
    tokenizer = word_level_tokenizer(text_config.vocab_size)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # weights are created in their final dtype, on their final device
    try:
        with torch.device(device):
            torch.manual_seed(0)
            vision = CLIPVisionModel(vision_config)
            llm = LlamaForCausalLM(text_config)
    finally:
        torch.set_default_dtype(previous)
    size = shape["vision"]["image_size"]
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    model, processor = assemble_llava(vision, image_processor, llm, tokenizer, "mlp2x_gelu",
                                      chat_template=named_template("llama3").jinja, template_name="llama3")
    if len(processor.tokenizer) != text_config.vocab_size:  # a guard on the vocabulary arithmetic above
        raise RuntimeError(f"tokenizer has {len(processor.tokenizer)} tokens, the model {text_config.vocab_size}")
    return model.to(device).eval(), processor


def load_shape_quantized(name: str, device: str, dtype_name: str, quant: str) -> LoadedModel:
    """Quantization goes through load_model, which needs a folder: build, save to a temp folder, load."""
    loaded = build_shape(name, device, getattr(torch, dtype_name))
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
        loaded.executor.submit(save, loaded.model, loaded.processor, folder).result()
        loaded.executor.shutdown()
        del loaded
        if device == "cuda":
            torch.cuda.empty_cache()
        result = load_model(folder, quant=quant, dtype=dtype_name, device_map=device)
    result.name = f"shape:{name}"
    return result


# ------------------------------------------------------------------------------------ measurement

class TokenClock(BaseStreamer):
    """Records when each generated token arrives, and its id (the first put() is the prompt)."""

    def __init__(self, start: float):
        self.start = start
        self.times: list[float] = []
        self.ids: list[int] = []
        self._prompt = True

    def put(self, value):
        now = time.perf_counter()
        if self._prompt:
            self._prompt = False
            return
        ids = value.reshape(-1).tolist()
        self.ids.extend(ids)
        self.times.extend([now] * len(ids))

    def end(self):
        pass


class _FirstText(TextStreamer):
    """TextStreamer that only notes after how many tokens it would first emit non-empty text."""

    def __init__(self, tokenizer):
        super().__init__(tokenizer, skip_prompt=False, skip_special_tokens=True)
        self.tokens = 0
        self.first_at: int | None = None

    def put(self, value):
        self.tokens += value.numel()
        super().put(value)

    def on_finalized_text(self, text: str, stream_end: bool = False):
        if text and self.first_at is None:
            self.first_at = self.tokens


def first_text_token(tokenizer, ids: list[int]) -> int | None:
    """1-based index of the token at which a TextStreamer would first emit non-empty text."""
    streamer = _FirstText(tokenizer)
    for token in ids:
        streamer.put(torch.tensor([token]))
        if streamer.first_at is not None:
            return streamer.first_at
    streamer.end()
    return streamer.tokens if streamer.first_at is not None else None


class Memory:
    """Peak memory of one run: CUDA allocator peak, or the process's peak RSS on CPU."""

    def __init__(self, device: str):
        self.device = device
        self.resettable = device == "cuda" or _can_reset_hwm()
        if device == "cuda":
            self.method = "torch.cuda.max_memory_allocated, reset before each run"
        elif self.resettable:
            self.method = "process peak RSS (VmHWM, reset via /proc/self/clear_refs before each run)"
        else:
            self.method = "process peak RSS since start (ru_maxrss: cannot be reset, includes model building)"

    def start(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return torch.cuda.memory_allocated() / 2**20
        if self.resettable:
            _reset_hwm()
        return _status_kib("VmRSS") / 1024 if self.resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def peak(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**20
        if self.resettable:
            return _status_kib("VmHWM") / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field_name} in /proc/self/status")


def _reset_hwm() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Linux >= 4.0: reset the peak RSS (VmHWM) to the current RSS


def _can_reset_hwm() -> bool:
    try:
        _reset_hwm()
        _status_kib("VmHWM")
        return True
    except OSError:
        return False


@dataclasses.dataclass
class Run:
    ttft_s: float
    first_text_s: float | None
    decode_tok_s: float
    peak_mem_mib: float
    peak_over_start_mib: float
    input_ids: torch.Tensor


def new_conversation(loaded: LoadedModel, image):
    conversation = loaded.new_conversation()  # the model's system prompt, as the chat commands use it
    conversation.add_user(PROMPT, [image])
    return conversation


def run_project(loaded: LoadedModel, image, n: int, memory: Memory) -> Run:
    conversation = new_conversation(loaded, image)
    start_mem = memory.start()
    start = time.perf_counter()
    reply = stream_reply(loaded, conversation, GenerationSettings(temperature=0, max_new_tokens=n))
    clock = TokenClock(start)
    streamer_put = reply._streamer.put  # bench-only hook: time tokens exactly as the baseline's streamer does

    def put(value):
        clock.put(value)
        streamer_put(value)

    reply._streamer.put = put
    first_text = None
    for chunk in reply:
        if chunk and first_text is None:
            first_text = time.perf_counter() - start
    return _finish(clock, first_text, n, memory, start_mem, reply.inputs["input_ids"])


def run_baseline(loaded: LoadedModel, image, n: int, memory: Memory) -> Run:
    conversation = new_conversation(loaded, image)
    processor, tokenizer, model = loaded.processor, loaded.tokenizer, loaded.model
    start_mem = memory.start()
    start = time.perf_counter()
    text = tokenizer.apply_chat_template(conversation.messages(), chat_template=loaded.template.jinja,
                                         tokenize=False, add_generation_prompt=True)
    inputs = processor(text=text, images=[image], return_tensors="pt", add_special_tokens=False)
    inputs = inputs.to(loaded.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(loaded.vision_dtype)
    clock = TokenClock(start)

    def generate():
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, streamer=clock,
                           pad_token_id=tokenizer.pad_token_id)

    # On the model's own thread, like the project's path (see the module docstring).
    loaded.executor.submit(generate).result()
    index = first_text_token(tokenizer, clock.ids)
    first_text = clock.times[index - 1] - start if index else None
    return _finish(clock, first_text, n, memory, start_mem, inputs["input_ids"])


def _finish(clock: TokenClock, first_text, n: int, memory: Memory, start_mem: float, input_ids) -> Run:
    peak = memory.peak()
    if len(clock.times) != n:
        raise RuntimeError(f"expected exactly {n} new tokens, got {len(clock.times)}")
    ttft = clock.times[0] - clock.start
    decode = (n - 1) / (clock.times[-1] - clock.times[0]) if n > 1 else float("nan")
    return Run(ttft, first_text, decode, peak, peak - start_mem, input_ids.detach().cpu())


PATHS = (("cosmos_llava", run_project), ("baseline", run_baseline))


def measure(loaded: LoadedModel, image, n: int, repeats: int, memory: Memory) -> list[dict]:
    warm = {name: run(loaded, image, n, memory) for name, run in PATHS}
    if not torch.equal(warm["cosmos_llava"].input_ids, warm["baseline"].input_ids):
        raise RuntimeError("the two paths gave the model different input ids; the comparison would be meaningless")
    runs: dict[str, list[Run]] = {name: [] for name, _ in PATHS}
    for _ in range(repeats):  # interleaved, so slow drifts (thermal, other load) hit both paths alike
        for name, run in PATHS:
            runs[name].append(run(loaded, image, n, memory))
    rows = []
    for name, rs in runs.items():
        texts = [r.first_text_s for r in rs if r.first_text_s is not None]
        rows.append(dict(
            path=name,
            ttft_s=statistics.median(r.ttft_s for r in rs),
            first_text_s=statistics.median(texts) if texts else None,
            decode_tok_s=statistics.median(r.decode_tok_s for r in rs),
            peak_mem_mib=max(r.peak_mem_mib for r in rs),
            peak_over_start_mib=max(r.peak_over_start_mib for r in rs),
        ))
    return rows


# ------------------------------------------------------------------------------------------- main

def bench_image():
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 480), (180, 40, 40))
    draw = ImageDraw.Draw(image)
    draw.ellipse((80, 60, 300, 280), fill=(20, 60, 220))
    draw.rectangle((360, 200, 600, 440), fill=(240, 220, 30))
    return image


def resolve_device(args, gpu_shapes=("llava-8b",), why="on CPU: ~32 GB of RAM in fp32 and very slow") -> str:
    """cuda when there is one; a shape in `gpu_shapes` is refused on CPU unless --device cpu forces it."""
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CosmosLlavaError("--device cuda asked, but CUDA is not available on this machine")
    if args.shape in gpu_shapes and device == "cpu" and args.device != "cpu":
        raise CosmosLlavaError(f"--shape {args.shape} needs a GPU ({why}); pass --device cpu to force it")
    return device


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu}, {torch.get_num_threads()} torch threads"


def benchmark(args) -> dict:
    if args.max_new_tokens < 2:
        raise CosmosLlavaError("--max-new-tokens must be at least 2 (the decode rate needs tokens after the first)")
    if args.repeats < 1:
        raise CosmosLlavaError("--repeats must be at least 1")
    device = resolve_device(args)
    dtype_name = args.dtype if args.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    if args.shape and args.quant != "none":
        loaded = load_shape_quantized(args.shape, device, dtype_name, args.quant)
    elif args.shape:
        loaded = build_shape(args.shape, device, getattr(torch, dtype_name))
    else:
        loaded = load_model(args.model, quant=args.quant, dtype=dtype_name, device_map=device)
    # Exactly N tokens on both paths (bench only, on this instance): no end-of-turn id, no stop strings.
    loaded.model.generation_config.eos_token_id = None
    loaded.template = dataclasses.replace(loaded.template, stop_strings=())

    image = bench_image()
    n = args.max_new_tokens
    memory = Memory(device)
    rows = measure(loaded, image, n, args.repeats, memory)
    prompt_tokens = prepare_prompt(loaded, new_conversation(loaded, image), n).prompt_tokens
    return {
        "model": args.model or f"shape:{args.shape}",
        "device": device_name(device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "dtype": dtype_name,
        "quant": args.quant,
        "prompt_tokens": prompt_tokens,
        "image_tokens": loaded.image_token_count,
        "new_tokens": n,
        "repeats": args.repeats,
        "memory": memory.method,
        "rows": rows,
    }


def print_table(results: dict) -> None:
    print(f"{results['model']} on {results['device']}; torch {results['torch']}, transformers "
          f"{results['transformers']}; {results['dtype']}, quant {results['quant']}")
    print(f"prompt {results['prompt_tokens']} tokens ({results['image_tokens']} of them image tokens), "
          f"{results['new_tokens']} new tokens (greedy), median of {results['repeats']} after a warm-up; "
          f"memory: {results['memory']}")
    print()
    print("| path | TTFT (s) | first text (s) | decode (tok/s) | peak memory (MiB) | over start (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results["rows"]:
        first = f"{r['first_text_s']:.3f}" if r["first_text_s"] is not None else "-"
        print(f"| {r['path']} | {r['ttft_s']:.3f} | {first} | {r['decode_tok_s']:.1f} | "
              f"{r['peak_mem_mib']:.0f} | {r['peak_over_start_mib']:.0f} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--shape", choices=list(SHAPES), help="random weights of this shape (no downloads)")
    source.add_argument("--model", help="a LLaVA folder or hub id, loaded with load_model")
    parser.add_argument("--quant", choices=QUANT_CHOICES, default="none", help="bitsandbytes quantization")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto", help="auto: bf16 on CUDA, fp32 on CPU")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each path (after one warm-up)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = parser.parse_args(argv)
    return run_command(lambda: publish(benchmark(args), print_table, args.json), args.debug)


def publish(results: dict, print_table, json_path: str | None) -> None:
    """The benches' output: a Markdown table on stdout, and the full results as JSON when asked."""
    print_table(results)
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
