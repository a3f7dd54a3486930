"""`python -m annotate <task> ...`; see annotate/__init__.py."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

TASKS = {
    "instruct": "instruction data (conversation, detail, complex) from captions and boxes",
    "translate": "translate a LLaVA-format dataset to Turkish",
    "cot": "LLaVA-CoT reasoning traces for question + image + answer",
    "human": "the hand-annotation tool (Gradio)",
}
USAGE = "usage: python -m annotate {" + ",".join(TASKS) + "} ...\n\n" + "\n".join(
    f"  {name:<10} {text}" for name, text in TASKS.items()) + "\n\n'python -m annotate TASK --help' for a task's options."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    task, rest = argv[0], argv[1:]
    if task not in TASKS:
        print(f"{USAGE}\nerror: unknown task '{task}'", file=sys.stderr)
        return 2
    debug = "--debug" in rest
    rest = [a for a in rest if a != "--debug"]
    if task == "human":
        from .human import human_main

        return human_main(rest)
    from importlib import import_module

    from cosmos_llava.cli import run_command

    module = import_module(f".{task}", __package__)
    return run_command(lambda: module.main(rest), debug,
                       interrupted="interrupted: rerun the same command to continue where it stopped")


if __name__ == "__main__":
    sys.exit(main())
