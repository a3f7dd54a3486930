"""The one conversation model used by the CLI chat, the app, the server and evaluation.

A conversation is a list of turns; a user turn holds text and images in the order the user put them.
Images can arrive at any user turn. Each image becomes exactly one `<image>` placeholder at its place:
either where the user wrote a literal `<image>` marker (LLaVA data style), or, with no markers, one per
line before the text (LLaVA's own convention for a freshly uploaded image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Union

from PIL import Image

from .errors import CosmosLlavaError
from .images import load_image
from .templates import IMAGE_TOKEN

Part = Union[str, Image.Image]


@dataclass
class Turn:
    role: str  # "user" or "assistant"
    parts: list[Part]

    @property
    def images(self) -> list[Image.Image]:
        return [p for p in self.parts if isinstance(p, Image.Image)]

    @property
    def text(self) -> str:
        return "\n".join(p for p in self.parts if isinstance(p, str))

    def render(self) -> str:
        """Content as text with one `<image>` per image, parts joined by newlines."""
        return "\n".join(IMAGE_TOKEN if isinstance(p, Image.Image) else p for p in self.parts)


@dataclass
class Conversation:
    system_prompt: str | None = None
    turns: list[Turn] = field(default_factory=list)

    def add_user(self, text: str = "", images: Iterable = ()) -> Turn:
        """Add a user turn. `images` are paths, bytes or PIL images, decoded and checked here."""
        loaded = [load_image(image) for image in images]
        return self._append_user(_place_images(text or "", loaded))

    def _append_user(self, parts: list[Part]) -> Turn:
        if not any(isinstance(p, Image.Image) or p.strip() for p in parts):
            raise CosmosLlavaError("empty message: write some text or attach an image")
        if self.turns and self.turns[-1].role == "user":
            raise CosmosLlavaError("the previous user message has no reply yet")
        turn = Turn("user", parts)
        self.turns.append(turn)
        return turn

    def add_assistant(self, text: str) -> Turn:
        if not self.turns or self.turns[-1].role != "user":
            raise CosmosLlavaError("an assistant reply must follow a user message")
        turn = Turn("assistant", [text])
        self.turns.append(turn)
        return turn

    def pop_assistant(self) -> str | None:
        """Remove the last reply (for "regenerate"); returns its text."""
        if self.turns and self.turns[-1].role == "assistant":
            return self.turns.pop().text
        return None

    def reset(self) -> None:
        self.turns.clear()

    @property
    def images(self) -> list[Image.Image]:
        return [image for turn in self.turns for image in turn.images]

    def messages(self, first_turn: int = 0, system: bool = True) -> list[dict]:
        """Chat-template messages (string content with `<image>` placeholders) from turn `first_turn` on."""
        out = []
        if system and self.system_prompt:
            out.append({"role": "system", "content": self.system_prompt})
        out.extend({"role": t.role, "content": t.render()} for t in self.turns[first_turn:])
        return out

    @classmethod
    def from_messages(cls, messages: list[dict], image_loader=load_image) -> "Conversation":
        """Build from OpenAI / transformers style messages (content a string or a list of parts).

        Image parts are `{"type": "image", "image": <path|bytes|PIL>}` or already-loaded PIL images
        under "image"; `image_loader` turns other references (e.g. data URLs) into PIL images.
        """
        conv = cls()
        for message in messages:
            role, content = message.get("role"), message.get("content")
            if role == "system":
                conv.system_prompt = content if isinstance(content, str) else _text_of(content)
                continue
            if role not in ("user", "assistant"):
                raise CosmosLlavaError(f"unknown message role '{role}': expected system, user or assistant")
            if isinstance(content, str) or content is None:
                parts: list[Part] = [content or ""]
            else:
                parts = []
                for part in content:
                    kind = part.get("type")
                    if kind == "text":
                        parts.append(part.get("text", ""))
                    elif kind in ("image", "image_url"):
                        ref = part.get("image") if kind == "image" else part.get("image_url")
                        parts.append(ref if isinstance(ref, Image.Image) else image_loader(ref))
                    else:
                        raise CosmosLlavaError(f"unsupported content part type '{kind}'")
            if role == "user":
                conv._append_user(_refuse_literal_markers(parts))
            else:
                conv.add_assistant("\n".join(p for p in parts if isinstance(p, str)))
        return conv


def _text_of(content) -> str:
    return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")


def _place_images(text: str, images: list[Image.Image]) -> list[Part]:
    markers = text.count(IMAGE_TOKEN)
    if markers == 0:
        return [*images, *([text.strip()] if text.strip() else [])]
    if markers != len(images):
        raise CosmosLlavaError(
            f"the message has {markers} '{IMAGE_TOKEN}' marker(s) but {len(images)} image(s) attached"
        )
    return _split_on_markers(text, iter(images))


def _split_on_markers(text: str, images) -> list[Part]:
    parts: list[Part] = []
    pieces = text.split(IMAGE_TOKEN)
    for i, piece in enumerate(pieces):
        piece = piece.strip("\n")
        if piece.strip():
            parts.append(piece)
        if i < len(pieces) - 1:
            parts.append(next(images))
    return parts


def _refuse_literal_markers(parts: list[Part]) -> list[Part]:
    """A literal `<image>` inside a text part, with no image behind it, would desynchronise the
    image tokens from the images; refuse it rather than guess."""
    for part in parts:
        if isinstance(part, str) and IMAGE_TOKEN in part:
            raise CosmosLlavaError(f"text contains the reserved marker '{IMAGE_TOKEN}'; send images as image parts")
    return parts
