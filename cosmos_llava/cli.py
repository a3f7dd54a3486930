"""`python -m cosmos_llava <command>`: compose, convert, chat, serve, eval, leaderboard, export-battles.

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
    from .evaluation.run import add_eval_parser
    from .loading import add_model_arguments
    from .rating import add_leaderboard_parser
    from .reasoning import add_reasoning_arguments
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
    p.add_argument("--vision-feature-layer", type=_layers, default=-2, metavar="N[,N...]",
                   help="vision tower layer(s) the projector reads (default -2, LLaVA's); several, e.g. 0,-2, "
                        "are concatenated per patch")
    p.add_argument("--dtype", default="auto", help="dtype to load and save the parts in (auto: as stored)")
    p.add_argument("--seed", type=int, default=0, help="seed for the projector's initialisation")
    p.add_argument("--system-prompt", default=None,
                   help="the model's default system prompt ('' for none; default: a Turkish assistant prompt)")

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
    add_reasoning_arguments(p)

    p = sub.add_parser("serve", help="serve the model over an OpenAI-compatible HTTP API")
    add_model_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", default=None, help="the name clients ask for (default: --model as given)")
    p.add_argument("--api-key-env", default=None, metavar="VAR",
                   help="require 'Authorization: Bearer <key>', the key read from this environment variable")
    p.add_argument("--max-concurrent-requests", type=int, default=8,
                   help="requests admitted at once, running or queued; more get 429")
    p.add_argument("--max-tokens", type=int, default=512, help="default max_tokens when a request gives none")
    p.add_argument("--max-image-mb", type=float, default=20.0, help="largest image accepted, in MiB")
    p.add_argument("--allow-remote-images", action="store_true", help="also fetch http(s) image URLs")

    add_leaderboard_parser(sub)
    add_eval_parser(sub)

    p = sub.add_parser("export-battles", help="write the arena's voted battles as JSON lines (leaderboard --battles)")
    p.add_argument("--db", required=True, help="the arena SQLite file (app.py --db)")
    p.add_argument("--out", required=True, help="JSONL file to write")
    p.add_argument("--mode", choices=("blind", "named"), default="blind")
    return parser


def _layers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a layer number or a comma-separated list, got '{text}'") from None


def run(args: argparse.Namespace) -> int:
    if args.command == "compose":
        from .compose import compose

        compose(args.vision, args.llm, projector=args.projector, out=args.out, template=args.template,
                pad_to_square=args.image_aspect_ratio == "pad", vision_feature_layer=args.vision_feature_layer,
                dtype=_dtype(args.dtype), seed=args.seed, system_prompt=args.system_prompt)
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
        from .reasoning import judge_from_args, reasoning_from_args

        reasoning = reasoning_from_args(args, seed=args.seed)
        if args.prompt is not None:
            # The message and its images are checked (and decoded, once) before the slow model load.
            from .conversation import Conversation

            message = Conversation().add_user(args.prompt, args.image)
            loaded = load_from_args(args)
            return answer_once(loaded, message, settings, reasoning=reasoning,
                               judge=judge_from_args(args, loaded) if reasoning else None)
        loaded = load_from_args(args)
        return interactive(loaded, args.image, settings, reasoning=reasoning,
                           judge=judge_from_args(args, loaded) if reasoning else None)
    if args.command == "serve":
        from .loading import load_from_args
        from .server import serve

        settings = server_settings(args)  # checked before the slow model load
        if settings.api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: listening on {args.host} with no --api-key-env: anyone who can reach this port "
                  "can use the model", file=sys.stderr)
        serve(load_from_args(args), settings, host=args.host, port=args.port,
              announce=lambda line: print(line, file=sys.stderr, flush=True))
        return 0
    if args.command == "export-battles":
        from pathlib import Path

        from .arena_store import ArenaStore
        from .errors import CosmosLlavaError

        if not Path(args.db).is_file():
            raise CosmosLlavaError(f"--db {args.db}: no such file")
        count = ArenaStore(args.db).export_battles(args.out, mode=args.mode)
        print(f"{count} {args.mode} battles written to {args.out}", file=sys.stderr)
        return 0
    if args.command == "eval":
        from .evaluation.run import plan_from_args, run_eval

        run_eval(plan_from_args(args))
        return 0
    if args.command == "leaderboard":
        from .rating import run_leaderboard

        return run_leaderboard(args)
    raise AssertionError(args.command)


def server_settings(args: argparse.Namespace):
    from .errors import CosmosLlavaError
    from .server import ServerSettings

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise CosmosLlavaError(f"--api-key-env {args.api_key_env}: that environment variable is not set")
    if args.max_concurrent_requests < 1:
        raise CosmosLlavaError("--max-concurrent-requests must be at least 1")
    if args.max_tokens < 1:
        raise CosmosLlavaError("--max-tokens must be at least 1")
    if not 0 < args.port < 65536:
        raise CosmosLlavaError(f"--port must be between 1 and 65535, got {args.port}")
    return ServerSettings(model_name=args.served_model_name or args.model, api_key=api_key,
                          max_concurrent_requests=args.max_concurrent_requests,
                          max_image_bytes=int(args.max_image_mb * 2**20), default_max_tokens=args.max_tokens,
                          allow_remote_images=args.allow_remote_images)


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
