"""Interactive terminal chat (`python -m cosmos_llava chat`).

Commands at the prompt: `/image PATH [PATH ...]` attaches images to the next message, `/reset` starts
over, `/system TEXT` sets the system prompt (and starts over), `/quit` (or Ctrl-D) exits. Ctrl-C while
a reply streams stops that reply; the conversation goes on.

With `--reasoning` the model answers in LLaVA-CoT's four stages (`cot` streams the trace as written;
`stage-beam` / `best-of-n` print each stage once the judge has settled it). Only the conclusion is kept
in the conversation, so later turns stay short.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys

from .conversation import Conversation, Turn
from .errors import CosmosLlavaError
from .generation import GenerationSettings, stream_reply
from .images import load_image
from .loading import LoadedModel
from .reasoning import ReasoningSettings, conclusion_of, reason, reasoning_conversation

HELP = "commands: /image PATH [PATH ...], /reset, /system TEXT, /quit"


def answer_once(loaded: LoadedModel, message: Turn, settings: GenerationSettings, out=sys.stdout,
                reasoning: ReasoningSettings | None = None, judge=None, err=sys.stderr) -> int:
    """Answer one already-checked user turn (built with `Conversation.add_user`). With reasoning, the
    trace goes to `err` and only the conclusion to `out`."""
    conversation = loaded.new_conversation()
    conversation.turns.append(message)
    if reasoning is not None:
        answer = _reasoned_reply(loaded, conversation, settings, reasoning, judge, trace=err, stats=err)
        out.write(answer + "\n")
        return 0
    reply = stream_reply(loaded, conversation, settings)
    for chunk in reply:
        out.write(chunk)
        out.flush()
    out.write("\n")
    return 0


def _write_stream(reply, out) -> None:
    """Print a reply as it streams; Ctrl-C stops the reply, not the chat."""
    try:
        for chunk in reply:
            out.write(chunk)
            out.flush()
    except KeyboardInterrupt:
        reply.cancel()
        out.write(" [stopped]")
    out.write("\n")


def _reasoned_reply(loaded: LoadedModel, conversation: Conversation, settings: GenerationSettings,
                    reasoning: ReasoningSettings, judge, trace, stats) -> str:
    """Write the trace to `trace` as it comes and the cost to `stats`; return the conclusion."""
    if reasoning.mode == "cot":
        cot_settings = dataclasses.replace(settings, max_new_tokens=reasoning.max_new_tokens)
        reply = stream_reply(loaded, reasoning_conversation(conversation), cot_settings, assistant_prefix="<SUMMARY>")
        trace.write("<SUMMARY>")
        _write_stream(reply, trace)
        answer, well_formed = conclusion_of("<SUMMARY>" + reply.text)
        stats.write(f"(cot: {reply.completion_tokens} tokens{'' if well_formed else '; the trace is not well formed'})\n")
        return answer

    def show(stage: str, text: str) -> None:
        trace.write(f"<{stage}>{text}</{stage}>\n")
        trace.flush()

    result = reason(loaded, conversation, reasoning, judge, on_stage=show)
    stats.write(f"({result.mode}: {result.generated_tokens} tokens generated, {result.judge_tokens} judge tokens, "
                f"{result.comparisons} comparisons, {result.unreadable_verdicts} unreadable verdicts)\n")
    return result.answer


def interactive(loaded: LoadedModel, images: list[str], settings: GenerationSettings,
                stdin=sys.stdin, out=sys.stdout, err=sys.stderr, reasoning: ReasoningSettings | None = None,
                judge=None) -> int:
    conversation = loaded.new_conversation()
    pending = [load_image(path) for path in images]
    err.write(f"{loaded.name} ({loaded.template.name or loaded.template.source} template). {HELP}\n")
    while True:
        out.write("\n> ")
        out.flush()
        line = stdin.readline()
        if not line:  # EOF
            out.write("\n")
            return 0
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            try:
                if _command(line, conversation, pending, out):
                    return 0
            except CosmosLlavaError as exc:
                err.write(f"error: {exc}\n")
            continue
        try:
            conversation.add_user(line, pending)
        except CosmosLlavaError as exc:
            err.write(f"error: {exc}\n")
            continue
        pending = []
        if reasoning is not None:
            try:
                answer = _reasoned_reply(loaded, conversation, settings, reasoning, judge, trace=out, stats=err)
            except (CosmosLlavaError, KeyboardInterrupt) as exc:  # Ctrl-C during a search: drop the question
                conversation.turns.pop()
                err.write(f"error: {exc}\n" if isinstance(exc, CosmosLlavaError) else " [stopped]\n")
                continue
            conversation.add_assistant(answer)
            continue
        reply = stream_reply(loaded, conversation, settings)
        try:
            _write_stream(reply, out)
        except CosmosLlavaError as exc:
            conversation.turns.pop()  # the message got no reply; let the user try again
            err.write(f"error: {exc}\n")
            continue
        if reply.dropped_turns:
            err.write(f"(the oldest {reply.dropped_turns // 2} exchange(s) no longer fit the context window and were left out)\n")
        conversation.add_assistant(reply.text)


def _command(line: str, conversation: Conversation, pending: list, out) -> bool:
    name, _, rest = line.partition(" ")
    if name in ("/quit", "/exit", "/q"):
        return True
    if name == "/image":
        paths = shlex.split(rest)
        if not paths:
            raise CosmosLlavaError("usage: /image PATH [PATH ...]")
        pending.extend(load_image(path) for path in paths)
        out.write(f"{len(pending)} image(s) will go with your next message\n")
    elif name == "/reset":
        conversation.reset()
        pending.clear()
        out.write("conversation cleared\n")
    elif name == "/system":
        conversation.system_prompt = rest.strip() or None
        conversation.reset()
        out.write("system prompt set; conversation cleared\n")
    elif name == "/help":
        out.write(HELP + "\n")
    else:
        raise CosmosLlavaError(f"unknown command '{name}'; {HELP}")
    return False
