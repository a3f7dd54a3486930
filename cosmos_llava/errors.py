"""The one exception type users see.

Every problem caused by input or environment (a bad image, an unknown template, a message that does
not fit the context window, 4-bit asked where bitsandbytes cannot run) is raised as a `CosmosLlavaError`
whose message is a single line a person can act on. The CLI prints it as `error: <message>` and exits 1;
the app shows it in the UI.
"""


class CosmosLlavaError(Exception):
    """A user-facing error with a one-line, actionable message."""


class ImageError(CosmosLlavaError):
    """An image could not be read or is not acceptable."""


class TemplateError(CosmosLlavaError):
    """No usable chat template, or an unknown template name."""


class ContextOverflowError(CosmosLlavaError):
    """A message does not fit the model's context window."""


class ModelLoadError(CosmosLlavaError):
    """A model folder or hub id could not be loaded (missing, wrong format, quantization unavailable)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (library errors can span many lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
