"""Interactive terminal chat (`python -m cosmos_llava chat`).

Commands at the prompt: `/image PATH [PATH ...]` attaches images to the next message, `/reset` starts
over, `/system TEXT` sets the system prompt (and starts over), `/quit` (or Ctrl-D) exits. Ctrl-C while
a reply streams stops that reply; the conversation goes on.
"""

from __future__ import annotations

import shlex
import sys

from .conversation import Conversation, Turn
from .errors import CosmosLlavaError
from .generation import GenerationSettings, stream_reply
from .images import load_image
from .loading import LoadedModel

HELP = "commands: /image PATH [PATH ...], /reset, /system TEXT, /quit"


def answer_once(loaded: LoadedModel, message: Turn, settings: GenerationSettings, out=sys.stdout) -> int:
    """Answer one already-checked user turn (built with `Conversation.add_user`)."""
    conversation = loaded.new_conversation()
    conversation.turns.append(message)
    reply = stream_reply(loaded, conversation, settings)
    for chunk in reply:
        out.write(chunk)
        out.flush()
    out.write("\n")
    return 0


def interactive(loaded: LoadedModel, images: list[str], settings: GenerationSettings,
                stdin=sys.stdin, out=sys.stdout, err=sys.stderr) -> int:
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
        reply = stream_reply(loaded, conversation, settings)
        try:
            for chunk in reply:
                out.write(chunk)
                out.flush()
        except KeyboardInterrupt:
            reply.cancel()
            out.write(" [stopped]")
        except CosmosLlavaError as exc:
            conversation.turns.pop()  # the message got no reply; let the user try again
            err.write(f"error: {exc}\n")
            continue
        out.write("\n")
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
