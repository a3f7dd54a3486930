"""`python -m cosmos_llava <command>`: compose, convert, chat.

Errors a user can fix print as one line (`error: ...`) and exit 1; argparse usage errors exit 2.
`--debug` (or COSMOS_LLAVA_DEBUG=1) shows full tracebacks instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings


def _quiet_libraries() -> None:
    # Keep stdout for answers and stderr for our own messages: silence load reports and progress bars.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def build_parser() -> argparse.ArgumentParser:
    from .compose import PROJECTOR_TYPES
    from .loading import add_model_arguments
    from .templates import NAMED_TEMPLATES

    parser = argparse.ArgumentParser(prog="python -m cosmos_llava", description="Turkish visual instruction models")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compose", help="build a new LLaVA from a vision encoder and a causal LM")
    p.add_argument("--vision", required=True, help="CLIP or SigLIP checkpoint (folder or hub id)")
    p.add_argument("--llm", required=True, help="causal LM checkpoint (LLaMA-3, Mistral, ...)")
    p.add_argument("--projector", choices=PROJECTOR_TYPES, default="mlp2x_gelu")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--template", choices=list(NAMED_TEMPLATES), default=None,
                   help="chat template when the LLM has none (or to override its own)")
    p.add_argument("--image-aspect-ratio", choices=("pad", "resize"), default="pad",
                   help="pad: pad to square with the mean colour first (LLaVA-1.5)")
    p.add_argument("--vision-feature-layer", type=int, default=-2)
    p.add_argument("--dtype", default="auto", help="dtype to load and save the parts in (auto: as stored)")
    p.add_argument("--seed", type=int, default=0, help="seed for the projector's initialisation")

    p = sub.add_parser("convert", help="convert an original-LLaVA checkpoint to the transformers format")
    p.add_argument("--src", required=True, help="original LLaVA checkpoint folder (llava_llama / llava_mistral)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--vision", default=None, help="vision tower (default: the checkpoint's mm_vision_tower)")
    p.add_argument("--template", choices=list(NAMED_TEMPLATES), default=None,
                   help="chat template if the checkpoint's tokenizer has none (Turkish-LLaVA-v0.1: llama3)")
    p.add_argument("--dtype", default="auto", help="dtype to save in (auto: as stored)")

    p = sub.add_parser("chat", help="chat about images in the terminal")
    add_model_arguments(p)
    p.add_argument("--image", action="append", default=[], help="image for the first message (repeatable)")
    p.add_argument("--prompt", default=None, help="answer this one message, print only the answer, exit")
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.command == "compose":
        from .compose import compose

        compose(args.vision, args.llm, projector=args.projector, out=args.out, template=args.template,
                pad_to_square=args.image_aspect_ratio == "pad", vision_feature_layer=args.vision_feature_layer,
                dtype=_dtype(args.dtype), seed=args.seed)
        print(f"saved LLaVA model to {args.out}", file=sys.stderr)
        return 0
    if args.command == "convert":
        from .convert import convert

        convert(args.src, out=args.out, vision=args.vision, template=args.template, dtype=_dtype(args.dtype))
        print(f"saved converted model to {args.out}", file=sys.stderr)
        return 0
    if args.command == "chat":
        from .chat import answer_once, interactive
        from .generation import GenerationSettings
        from .loading import load_from_args

        settings = GenerationSettings(args.temperature, args.top_p, args.max_new_tokens, args.repetition_penalty,
                                      args.seed)
        settings.validate()
        if args.prompt is not None:
            # The message and its images are checked (and decoded, once) before the slow model load.
            from .conversation import Conversation

            message = Conversation().add_user(args.prompt, args.image)
            return answer_once(load_from_args(args), message, settings)
        return interactive(load_from_args(args), args.image, settings)
    raise AssertionError(args.command)


def _dtype(name: str):
    if name == "auto":
        return "auto"
    import torch

    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        from .errors import CosmosLlavaError

        raise CosmosLlavaError(f"unknown dtype '{name}'; use auto, bfloat16, float16 or float32")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args), args.debug)


def run_command(command, debug: bool = False, interrupted: str = "interrupted") -> int:
    """Run a CLI command the project's way: an error caused by input is one line `error: ...` and exit
    1; an unexpected one too, pointing at --debug (or COSMOS_LLAVA_DEBUG=1) for the traceback."""
    debug = debug or os.environ.get("COSMOS_LLAVA_DEBUG") == "1"
    if not debug:
        _quiet_libraries()
    from .errors import CosmosLlavaError, first_line

    try:
        return command() or 0
    except CosmosLlavaError as exc:
        if debug:
            raise
        print(f"error: {first_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure: still one line, with the way to see more
        if debug:
            raise
        print(f"error: {type(exc).__name__}: {first_line(exc)} (run with --debug for the traceback)", file=sys.stderr)
        return 1
