"""Cosmos-LLaVA: compose, convert, load and chat with Turkish LLaVA models."""

import logging

# bitsandbytes warns at import, on every CPU machine, that an optional fast-kernel package is not
# installed; it changes nothing we do (4/8-bit still run), so keep it out of users' terminals.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from .conversation import Conversation, Turn
from .errors import CosmosLlavaError
from .generation import GenerationSettings, Reply, generate_reply, stream_reply
from .loading import LoadedModel, load_model
from .templates import DEFAULT_SYSTEM_PROMPT, NAMED_TEMPLATES

__all__ = [
    "Conversation",
    "Turn",
    "CosmosLlavaError",
    "GenerationSettings",
    "Reply",
    "generate_reply",
    "stream_reply",
    "LoadedModel",
    "load_model",
    "DEFAULT_SYSTEM_PROMPT",
    "NAMED_TEMPLATES",
]
