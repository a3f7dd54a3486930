"""`python -m training preview`: show what the loss sees in one row, token by token."""

from __future__ import annotations

from .data import IGNORE_INDEX, Encoded, RowEncoder

# Supervised spans are wrapped in these in the text view; runs of image tokens are collapsed.
OPEN, CLOSE = "[[", "]]"


def token_records(encoder: RowEncoder, encoded: Encoded) -> list[dict]:
    tokens = encoder.tokenizer.convert_ids_to_tokens(encoded.input_ids)
    return [
        {"token": token, "id": token_id, "supervised": label != IGNORE_INDEX}
        for token, token_id, label in zip(tokens, encoded.input_ids, encoded.labels)
    ]


def render_text(encoder: RowEncoder, encoded: Encoded) -> str:
    """The row as text, supervised spans in [[ ]], each image's tokens shown once as <image>x N."""
    out: list[str] = []
    ids, labels = encoded.input_ids, encoded.labels
    i = 0
    while i < len(ids):
        if ids[i] == encoder.image_token_id:
            j = i
            while j < len(ids) and ids[j] == encoder.image_token_id:
                j += 1
            images, rest = divmod(j - i, encoder.image_token_count)
            out.append("".join(f"<image>x{encoder.image_token_count}" for _ in range(images))
                       + (f"<image>x{rest}" if rest else ""))
            i = j
            continue
        supervised = labels[i] != IGNORE_INDEX
        j = i
        while j < len(ids) and ids[j] != encoder.image_token_id and (labels[j] != IGNORE_INDEX) == supervised:
            j += 1
        text = encoder.tokenizer.decode(ids[i:j], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        out.append(f"{OPEN}{text}{CLOSE}" if supervised else text)
        i = j
    return "".join(out)


def summary_line(row_id: str, encoded: Encoded) -> str:
    supervised = sum(1 for label in encoded.labels if label != IGNORE_INDEX)
    return (f"row {row_id}: {len(encoded)} tokens, {supervised} supervised, {encoded.n_images} images"
            + (f", {encoded.dropped_replies} trailing exchanges cut to fit max_length" if encoded.dropped_replies else ""))
