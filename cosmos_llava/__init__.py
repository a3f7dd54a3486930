"""Cosmos-LLaVA: compose, convert, load and chat with Turkish LLaVA models."""

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
