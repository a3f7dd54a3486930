"""Inference benchmark: time to first token with one image, decode tokens/s, peak memory.

Two paths on the same inputs, in one run:
  cosmos_llava  this project's streaming path (`stream_reply`: prompt fitting, processor, streamer thread)
  baseline      plain `model.generate(**inputs)`
Both greedy, exactly N new tokens (end-of-turn disabled), one warm-up, then the median of --repeats.
Both run their compute on the model's own thread (a fresh thread computing beside it would get a
second OpenMP team on CPU and slow everything), so the difference is this project's own overhead.

  python bench/infer.py --shape tiny                 # CPU, seconds
  python bench/infer.py --shape small                # CLIP-B/16 + a 0.5B LLaMA shape, CPU
  python bench/infer.py --shape llava-8b             # CLIP-L/14-336 + LLaMA-3-8B shapes, CUDA, bf16
  python bench/infer.py --model DIR --quant 4bit
Shapes use random weights and an offline word-level tokenizer: no downloads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import (  # noqa: E402
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)
from transformers.generation.streamers import BaseStreamer  # noqa: E402

from cosmos_llava.compose import assemble_llava  # noqa: E402
from cosmos_llava.errors import CosmosLlavaError  # noqa: E402
from cosmos_llava.generation import GenerationSettings, model_inputs, prepare_prompt, stream_reply  # noqa: E402
from cosmos_llava.loading import LoadedModel, load_model, model_thread  # noqa: E402
from cosmos_llava.templates import named_template, resolve_chat_template  # noqa: E402

SHAPES = {
    "tiny": dict(
        vision=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=2, image_size=56, patch_size=14),
        text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=512),
    ),
    "small": dict(
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224, patch_size=16),
        text=dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=16, num_attention_heads=16, num_key_value_heads=8, vocab_size=32000),
    ),
    "llava-8b": dict(  # CLIP ViT-L/14-336 + LLaMA-3-8B
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=336, patch_size=14),
        text=dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                  vocab_size=128256, rope_theta=500000.0),
    ),
}
PROMPT = "Bu görselde neler olduğunu ayrıntılı olarak anlatır mısın? Renkleri, şekilleri ve konumlarını da söyle."
SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<unk>"]


def word_level_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """Exactly `vocab_size` tokens, so random-weight ids decode to text (each id a word)."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({f"t{i}": i for i in range(len(SPECIALS), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   unk_token="<unk>")


def build_shape(name: str, device: str, dtype: torch.dtype) -> LoadedModel:
    """Random weights of the given shape, built on the model's own thread, as load_model does."""
    executor = model_thread()
    return executor.submit(_build_shape, name, device, dtype, executor).result()


def _build_shape(name, device, dtype, executor) -> LoadedModel:
    shape = SHAPES[name]
    vision_config = CLIPVisionConfig(**shape["vision"])
    text_config = LlamaConfig(**shape["text"], max_position_embeddings=8192, tie_word_embeddings=False)
    tokenizer = word_level_tokenizer(text_config.vocab_size)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            torch.manual_seed(0)
            vision = CLIPVisionModel(vision_config)
            llm = LlamaForCausalLM(text_config)
    finally:
        torch.set_default_dtype(previous)
    size = shape["vision"]["image_size"]
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    llama3 = named_template("llama3")
    model, processor = assemble_llava(vision, image_processor, llm, tokenizer, "mlp2x_gelu",
                                      chat_template=llama3.jinja, template_name="llama3")
    model.to(device).eval()
    template = resolve_chat_template(processor, override="llama3")
    return LoadedModel(model, processor, template, system_prompt=None, name=f"shape:{name}", executor=executor)


class TokenClock(BaseStreamer):
    """Records when each generated token arrives (the first put() is the prompt)."""

    def __init__(self, start: float):
        self.start, self.times, self._prompt = start, [], True

    def put(self, value):
        if self._prompt:
            self._prompt = False
            return
        self.times.extend([time.perf_counter()] * value.numel())

    def end(self):
        pass


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory_mib(device) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_project(loaded, image, n, device):
    conversation = loaded.new_conversation("")
    conversation.add_user(PROMPT, [image])
    sync(device)
    start = time.perf_counter()
    reply = stream_reply(loaded, conversation, GenerationSettings(temperature=0, max_new_tokens=n))
    clock = TokenClock(start)
    streamer_put = reply._streamer.put  # time tokens exactly as the baseline does

    def put(value):
        clock.put(value)
        streamer_put(value)

    reply._streamer.put = put
    first_text = None
    for chunk in reply:
        if first_text is None and chunk.strip():
            first_text = time.perf_counter() - start
    sync(device)
    return clock, time.perf_counter(), first_text


def run_baseline(loaded, image, n, device):
    conversation = loaded.new_conversation("")
    conversation.add_user(PROMPT, [image])
    sync(device)
    start = time.perf_counter()
    inputs = model_inputs(loaded, prepare_prompt(loaded, conversation, n))
    clock = TokenClock(start)

    def generate():
        with torch.inference_mode():
            loaded.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, streamer=clock,
                                  pad_token_id=loaded.tokenizer.pad_token_id)

    # On the thread that holds the model, like the project's path: on CPU a second thread computing
    # with torch would get its own OpenMP team and slow both (see loading.model_thread).
    loaded.executor.submit(generate).result()
    sync(device)
    return clock, time.perf_counter(), None


def measure(run, loaded, image, n, device, repeats):
    run(loaded, image, n, device)  # warm-up
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rows = []
    for _ in range(repeats):
        clock, end, first_text = run(loaded, image, n, device)
        if len(clock.times) != n:
            raise RuntimeError(f"expected {n} new tokens, got {len(clock.times)}")
        ttft = clock.times[0] - clock.start
        decode = (n - 1) / (clock.times[-1] - clock.times[0]) if n > 1 else float("nan")
        rows.append((ttft, decode, first_text))
    texts = [r[2] for r in rows if r[2] is not None]
    return dict(
        ttft_s=statistics.median(r[0] for r in rows),
        decode_tok_s=statistics.median(r[1] for r in rows),
        first_text_s=statistics.median(texts) if texts else None,
        peak_mem_mib=peak_memory_mib(device),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--shape", choices=list(SHAPES))
    source.add_argument("--model", help="a LLaVA folder or hub id")
    parser.add_argument("--quant", choices=("none", "8bit", "4bit"), default="none", help="with --model")
    parser.add_argument("--dtype", choices=("auto", "bfloat16", "float16", "float32"), default="auto")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    try:
        results = benchmark(args)
    except CosmosLlavaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def benchmark(args) -> dict:
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CosmosLlavaError("--device cuda asked, but CUDA is not available")
    if args.shape == "llava-8b" and device == "cpu" and args.device != "cpu":
        raise CosmosLlavaError("--shape llava-8b needs a GPU (about 17 GB in bf16); pass --device cpu to force it")
    if args.shape and args.quant != "none":
        raise CosmosLlavaError("--quant works with --model (a saved folder); shapes run unquantized")
    dtype_name = args.dtype if args.dtype != "auto" else ("bfloat16" if device == "cuda" else "float32")
    if args.shape:
        loaded = build_shape(args.shape, device, getattr(torch, dtype_name))
    else:
        loaded = load_model(args.model, quant=args.quant, dtype=dtype_name, device_map=device)
    # Exactly N tokens on both paths: no end-of-turn, no stop strings.
    loaded.model.generation_config.eos_token_id = None
    loaded.template = dataclasses.replace(loaded.template, stop_strings=())
    from PIL import Image

    image = Image.new("RGB", (640, 480), (180, 40, 40))
    n = args.max_new_tokens
    conversation = loaded.new_conversation("")
    conversation.add_user(PROMPT, [image])
    prompt_tokens = prepare_prompt(loaded, conversation, n).prompt_tokens
    rows = []
    for name, run in (("cosmos_llava", run_project), ("baseline", run_baseline)):
        rows.append({"path": name, **measure(run, loaded, image, n, device, args.repeats)})
    return {
        "model": args.model or f"shape:{args.shape}",
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "dtype": dtype_name,
        "quant": args.quant,
        "prompt_tokens": prompt_tokens,
        "image_tokens": loaded.image_token_count,
        "new_tokens": n,
        "repeats": args.repeats,
        "memory": "torch.cuda.max_memory_allocated" if device == "cuda" else "process peak RSS (ru_maxrss)",
        "rows": rows,
    }


def print_table(results: dict) -> None:
    print(f"{results['model']} on {results['device']}, {results['dtype']}, quant {results['quant']}; "
          f"prompt {results['prompt_tokens']} tokens ({results['image_tokens']} image), {results['new_tokens']} new tokens, "
          f"median of {results['repeats']}; memory: {results['memory']}")
    print()
    print("| path | TTFT (s) | first text (s) | decode (tok/s) | peak memory (MiB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in results["rows"]:
        first = f"{r['first_text_s']:.3f}" if r["first_text_s"] is not None else "-"
        print(f"| {r['path']} | {r['ttft_s']:.3f} | {first} | {r['decode_tok_s']:.1f} | {r['peak_mem_mib']:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
