"""Cosmos-LLaVA: compose, convert, load and chat with Turkish LLaVA models."""

import importlib
import logging

# bitsandbytes warns at import, on every CPU machine, that an optional fast-kernel package is not
# installed; it changes nothing we do (4/8-bit still run), so keep it out of users' terminals.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

# The public names, imported on first use: `import cosmos_llava.errors` (the data tools, the server's
# request checks) should not have to load torch and transformers first.
_EXPORTS = {
    "Conversation": "conversation",
    "Turn": "conversation",
    "CosmosLlavaError": "errors",
    "GenerationSettings": "generation",
    "Reply": "generation",
    "generate_reply": "generation",
    "stream_reply": "generation",
    "LoadedModel": "loading",
    "load_model": "loading",
    "DEFAULT_SYSTEM_PROMPT": "templates",
    "NAMED_TEMPLATES": "templates",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'cosmos_llava' has no attribute '{name}'")
