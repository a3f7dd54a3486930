"""The command line every `python -m annotate` generator shares; the run itself is `cosmos_llava.jobs`."""

from __future__ import annotations

from pathlib import Path

from cosmos_llava.jobs import Job, RunReport, Worker, run_jobs


def add_run_arguments(parser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--out", required=True, help="output JSONL (appended to; a rerun continues where it stopped)")
    group.add_argument("--concurrency", type=int, default=4, help="requests in flight at once")
    group.add_argument("--limit", type=int, default=None, help="only the first N records (to try things first)")
    group.add_argument("--retry-rejected", action="store_true", help="redo records rejected on an earlier run")
    group.add_argument("--temperature", type=float, default=0.7)
    group.add_argument("--max-tokens", type=int, default=1024, help="per request")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def task_parser(task: str, description: str, input_help: str, **defaults):
    """The command line every generator shares: --input, the endpoint and the run options; the task
    adds its own options to what this returns. `defaults` override shared defaults (temperature...)."""
    import argparse

    from cosmos_llava.openai_client import add_endpoint_arguments

    parser = argparse.ArgumentParser(prog=f"python -m annotate {task}", description=description)
    parser.add_argument("--input", required=True, help=input_help)
    add_endpoint_arguments(parser)
    add_run_arguments(parser)
    parser.set_defaults(**defaults)
    return parser


def run_from_args(args, jobs: list[Job], worker: Worker, echo=print) -> RunReport:
    """The common tail of every pipeline command: connect, run, report."""
    from cosmos_llava.openai_client import ChatClient, Usage, endpoint_from_args

    client = ChatClient(endpoint_from_args(args), Usage(args.price_in, args.price_out))
    try:
        report = run_jobs(jobs, worker, client, Path(args.out), args.concurrency, args.limit, args.retry_rejected,
                          progress=not args.no_progress)
    finally:
        client.close()
        echo(client.usage.summary())
    for line in report.lines():
        echo(line)
    return report
