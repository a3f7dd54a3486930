"""Cosmos-LLaVA in the browser: `python app.py [--models models.yaml]` (also the Hugging Face Space entry).

Flags have environment-variable twins, so a Space is configured in its settings without code changes:
--models COSMOS_LLAVA_MODELS, --db COSMOS_LLAVA_DB, --host GRADIO_SERVER_NAME, --port GRADIO_SERVER_PORT,
--lang COSMOS_LLAVA_LANG.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

DEFAULT_MODELS = Path(__file__).parent / "models" / "demo.yaml"  # the bundled demo models (cosmos_llava.demo)


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Cosmos-LLaVA web app: chat, blind arena, leaderboard")
    parser.add_argument("--models", default=env("COSMOS_LLAVA_MODELS"),
                        help=f"model registry YAML (default: {DEFAULT_MODELS.relative_to(Path(__file__).parent)})")
    parser.add_argument("--db", default=env("COSMOS_LLAVA_DB", "arena.db"), help="SQLite file for arena votes")
    parser.add_argument("--host", default=env("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="a public gradio.live link")
    parser.add_argument("--lang", choices=("tr", "en"), default=env("COSMOS_LLAVA_LANG", "tr"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cosmos_llava.cli import run_command
    from cosmos_llava.webapp import build_app, launch_options, load_app_registry

    def run():
        registry = load_app_registry(args.models, DEFAULT_MODELS)
        demo = build_app(registry, args.db, lang=args.lang)
        demo.queue(default_concurrency_limit=8).launch(server_name=args.host, server_port=args.port, share=args.share,
                                                       **launch_options())

    return run_command(run)


if __name__ == "__main__":
    sys.exit(main())
