"""Command line: train a stage, preview a row's label mask, merge a LoRA adapter.

    python -m training --config training/configs/stage1.yaml [key=value ...] [--skip-bad-rows]
    python -m training preview --data FILE --model DIR [--row N] [--json]
    python -m training merge-lora --model BASE --adapter DIR --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from cosmos_llava.errors import CosmosLlavaError  # noqa: E402


def train_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train a LLaVA stage with a YAML config; any key can be overridden as key=value.",
        epilog="Other commands: 'python -m training preview --help', 'python -m training merge-lora --help'.",
    )
    parser.add_argument("--config", help="YAML config (see training/configs/)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")
    parser.add_argument("--skip-bad-rows", action="store_true", help="skip bad rows (counted) instead of stopping")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = parser.parse_args(argv)
    from .config import load_config
    from .engine import train

    def run():
        config = load_config(args.config, args.overrides, **({"skip_bad_rows": True} if args.skip_bad_rows else {}))
        train(config)

    return _guard(run, args.debug)


def preview_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m training preview",
                                     description="Show a row's tokens with the supervised (loss) spans marked.")
    parser.add_argument("--data", required=True, help="LLaVA JSON or JSONL file")
    parser.add_argument("--model", required=True, help="LLaVA model folder (only its processor is loaded)")
    parser.add_argument("--row", default="0", help="row index (0-based) or row id (default: 0)")
    parser.add_argument("--json", action="store_true", help='print [{"token", "id", "supervised"}, ...]')
    parser.add_argument("--image-folder", default=None, help="images are relative to this (default: data's folder)")
    parser.add_argument("--template", default=None, help="override the chat template (stage 1: plain)")
    parser.add_argument("--system-prompt", default=None, help="system prompt ('' for none; default: the model's)")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)

    def run():
        from cosmos_llava.loading import load_prompt_format

        from .data import RowEncoder, read_rows
        from .preview import render_text, summary_line, token_records

        rows, _ = read_rows(args.data, args.image_folder, check_images=False, skip_bad_rows=False)
        row = _pick_row(rows, args.row)
        encoder = RowEncoder.for_model(load_prompt_format(args.model, args.template, args.system_prompt),
                                       args.max_length)
        encoded = encoder.encode(row)
        if args.json:
            print(json.dumps(token_records(encoder, encoded), ensure_ascii=False))
        else:
            print(summary_line(row.id, encoded))
            print(render_text(encoder, encoded))

    return _guard(run, args.debug)


def _pick_row(rows, which: str):
    for row in rows:
        if row.id == which:
            return row
    if which.isdigit() and int(which) < len(rows):
        return rows[int(which)]
    raise CosmosLlavaError(f"no row '{which}': the file has {len(rows)} rows (give an index or an id)")


def merge_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m training merge-lora",
                                     description="Merge a LoRA adapter into its base model; save a plain LLaVA folder.")
    parser.add_argument("--model", required=True, help="the base LLaVA folder the adapter was trained on")
    parser.add_argument("--adapter", required=True, help="the adapter folder (a LoRA/QLoRA run's output)")
    parser.add_argument("--out", required=True, help="new folder for the merged model")
    parser.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args(argv)

    def run():
        from .merge import merge_lora

        out = merge_lora(args.model, args.adapter, args.out, args.dtype)
        print(f"merged model saved to {out}")

    return _guard(run, args.debug)


def _guard(run, debug: bool) -> int:
    from cosmos_llava.cli import run_command

    return run_command(run, debug, interrupted="interrupted: continue with resume=auto (from the last checkpoint)")


COMMANDS = {"preview": preview_main, "merge-lora": merge_main, "train": train_main}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
