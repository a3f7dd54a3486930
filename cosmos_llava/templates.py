"""Chat templates: where a model's prompt format comes from, and the named fallbacks.

Resolution order (never guessed from a folder name):
1. an explicit `--template NAME` override;
2. the chat template the model carries itself (processor, then tokenizer);
3. a named template recorded in the saved model (`config.cosmos_llava["template"]`).
Otherwise loading fails with a message naming the choices.

The named templates accept message content either as a string (with literal `<image>` placeholders)
or as a list of parts (`{"type": "image"}`, `{"type": "text", "text": ...}`), so they work with this
project's `Conversation` and with plain `processor.apply_chat_template` / OpenAI-style servers alike.
An image part renders as exactly one `<image>`; parts are joined with a newline, LLaVA's convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import TemplateError

IMAGE_TOKEN = "<image>"

DEFAULT_SYSTEM_PROMPT = (
    "Sen yardımsever bir görsel dil asistanısın. Kullanıcının paylaştığı görselleri dikkatle incele "
    "ve soruları Türkçe olarak doğru, açık ve kibar bir şekilde yanıtla."
)

# Renders one message's content (string or list of parts) to text with one <image> per image part.
_RENDER_MACRO = r"""{%- macro render(content) -%}
{%- if content is string -%}{{- content -}}
{%- else -%}{%- for part in content -%}
{%- if not loop.first -%}{{- '\n' -}}{%- endif -%}
{%- if part['type'] in ['image', 'image_url'] -%}{{- '<image>' -}}
{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}
{%- endfor -%}{%- endif -%}
{%- endmacro -%}
"""

_LLAMA3 = _RENDER_MACRO + r"""{{- bos_token -}}
{%- for message in messages -%}
{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>' + '\n\n' -}}
{{- render(message['content']) | trim -}}
{{- '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>' + '\n\n' -}}{%- endif -%}"""

# Mistral-Instruct: the system prompt has no role of its own; it opens the first user turn.
_MISTRAL = _RENDER_MACRO + r"""{{- bos_token -}}
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
{%- if message['role'] == 'system' -%}{%- set ns.system = render(message['content']) | trim -%}
{%- elif message['role'] == 'user' -%}
{{- '[INST] ' -}}
{%- if ns.system -%}{{- ns.system + '\n\n' -}}{%- set ns.system = '' -%}{%- endif -%}
{{- render(message['content']) | trim + ' [/INST]' -}}
{%- elif message['role'] == 'assistant' -%}{{- ' ' + render(message['content']) | trim + eos_token -}}
{%- endif -%}
{%- endfor -%}"""

# LLaVA's conv_vicuna_v1: "SYSTEM USER: q ASSISTANT: a</s>USER: q ASSISTANT:".
_VICUNA_V1 = _RENDER_MACRO + r"""{{- bos_token -}}
{%- for message in messages -%}
{%- if message['role'] == 'system' -%}{{- render(message['content']) | trim + ' ' -}}
{%- elif message['role'] == 'user' -%}{{- 'USER: ' + render(message['content']) | trim + ' ' -}}
{%- elif message['role'] == 'assistant' -%}{{- 'ASSISTANT: ' + render(message['content']) | trim + eos_token -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"""

# LLaVA's stage-1 "plain" format: BOS, the image placeholders, then the caption and a newline. The
# user's text and the system prompt are dropped on purpose (LLaVA's preprocess_plain does the same).
_PLAIN = r"""{{- bos_token -}}
{%- for message in messages -%}
{%- if message['role'] == 'user' -%}
{%- if message['content'] is string -%}{{- '<image>' * (message['content'].count('<image>')) -}}
{%- else -%}{%- for part in message['content'] -%}{%- if part['type'] in ['image', 'image_url'] -%}{{- '<image>' -}}{%- endif -%}{%- endfor -%}{%- endif -%}
{%- elif message['role'] == 'assistant' -%}{{- message['content'] if message['content'] is string else message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('\n') -}}{{- '\n' -}}
{%- endif -%}
{%- endfor -%}"""


_PARTS_PREAMBLE_MARK = "{#- cosmos-llava: image parts to text -#}"


def accept_image_parts(jinja: str) -> str:
    """Let a text-only LLM template take multimodal messages.

    An LLM's own template (Llama-3's, Mistral's) expects string content. This prepends a preamble that
    rewrites list-of-parts content to text with one `<image>` per image part, then runs the original
    template unchanged; string content passes through untouched. Idempotent.
    """
    if _PARTS_PREAMBLE_MARK in jinja or any(jinja == t.jinja for t in NAMED_TEMPLATES.values()):
        return jinja
    preamble = (
        _PARTS_PREAMBLE_MARK
        + _RENDER_MACRO
        + r"""{%- set _ns = namespace(messages=[]) -%}
{%- for _m in messages -%}
{%- set _ns.messages = _ns.messages + [{'role': _m['role'], 'content': render(_m['content'])}] -%}
{%- endfor -%}
{%- set messages = _ns.messages -%}
"""
    )
    return preamble + jinja


@dataclass(frozen=True)
class NamedTemplate:
    name: str
    jinja: str
    # Text that closes an assistant turn; generation stops there. "{eos}" means the tokenizer's EOS.
    end_of_turn: str
    uses_system_prompt: bool = True


NAMED_TEMPLATES: dict[str, NamedTemplate] = {
    t.name: t
    for t in (
        NamedTemplate("llama3", _LLAMA3, "<|eot_id|>"),
        NamedTemplate("mistral", _MISTRAL, "{eos}"),
        NamedTemplate("vicuna_v1", _VICUNA_V1, "{eos}"),
        NamedTemplate("plain", _PLAIN, "\n", uses_system_prompt=False),
    )
}

# End-of-turn markers of well-known template families, recognised inside a model's own template.
_KNOWN_END_OF_TURN = ("<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "<|eot|>", "<|end_of_turn|>")


def named_template(name: str) -> NamedTemplate:
    try:
        return NAMED_TEMPLATES[name]
    except KeyError:
        raise TemplateError(
            f"unknown chat template '{name}'; choose one of: {', '.join(NAMED_TEMPLATES)}"
        ) from None


@dataclass(frozen=True)
class ChatTemplate:
    """The template a loaded model uses, and where it came from."""

    jinja: str
    source: str  # "override", "processor", "tokenizer" or "recorded"
    name: str | None = None  # set when it is one of NAMED_TEMPLATES
    stop_strings: tuple[str, ...] = field(default_factory=tuple)
    uses_system_prompt: bool = True


def end_of_turn_strings(jinja: str, eos_token: str | None, named: NamedTemplate | None = None) -> tuple[str, ...]:
    """The strings that end an assistant turn under this template (generation stops at any of them)."""
    stops: list[str] = []
    if named is not None:
        stops.append(eos_token if named.end_of_turn == "{eos}" else named.end_of_turn)
    else:
        stops.extend(marker for marker in _KNOWN_END_OF_TURN if marker in jinja)
    if eos_token and eos_token not in stops:
        stops.append(eos_token)
    return tuple(s for s in stops if s)


def resolve_chat_template(processor, recorded_name: str | None = None, override: str | None = None) -> ChatTemplate:
    """Pick the model's chat template by the documented order; see the module docstring."""
    tokenizer = getattr(processor, "tokenizer", processor)
    eos = tokenizer.eos_token
    if override:
        named = named_template(override)
        return _from_named(named, "override", eos)
    own = getattr(processor, "chat_template", None)
    source = "processor"
    if not own:
        own, source = getattr(tokenizer, "chat_template", None), "tokenizer"
    if isinstance(own, dict):  # several named templates: the default one is the chat template
        own = own.get("default")
    if own:
        # A template saved by this project is one of the named ones: keep its name and stop rules.
        for named in NAMED_TEMPLATES.values():
            if own.strip() == named.jinja.strip():
                return _from_named(named, source, eos)
        return ChatTemplate(jinja=own, source=source, stop_strings=end_of_turn_strings(own, eos))
    if recorded_name:
        return _from_named(named_template(recorded_name), "recorded", eos)
    raise TemplateError(
        "the model has no chat template; pass --template with one of: " + ", ".join(NAMED_TEMPLATES)
    )


def _from_named(named: NamedTemplate, source: str, eos: str | None) -> ChatTemplate:
    return ChatTemplate(
        jinja=named.jinja,
        source=source,
        name=named.name,
        stop_strings=end_of_turn_strings(named.jinja, eos, named),
        uses_system_prompt=named.uses_system_prompt,
    )
