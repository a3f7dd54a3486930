"""`python -m cosmos_llava.demo build [--quick] [--work DIR] [--out DIR]`."""

import sys

from ..cli import run_command


def main() -> int:
    argv = sys.argv[1:]
    if not argv or argv[0] != "build":
        print("usage: python -m cosmos_llava.demo build [--quick] [--work DIR] [--out DIR] [--fresh]", file=sys.stderr)
        return 2
    from .build import main as build

    return run_command(lambda: build(argv[1:]), debug="--debug" in argv)


if __name__ == "__main__":
    sys.exit(main())
