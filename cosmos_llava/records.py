"""Record files, as LLaVA data comes: a JSON list of objects, or JSONL (one object a line).

One reader for training data and the data tools, so that a record's position - its id when it has
none - reads the same everywhere: "#<index>" in a JSON list, "line <n>" in JSONL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from .errors import CosmosLlavaError


def iter_records(path: str | Path) -> Iterator[tuple[str, object]]:
    """(position, parsed item) for each record. A JSONL line that is not JSON yields its
    `json.JSONDecodeError` as the item, so a caller may skip it or stop; a JSON list that does not
    parse stops at once (there is no record to point at)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CosmosLlavaError(f"{path} is not valid JSON: {exc}") from None
        for index, item in enumerate(items):
            yield f"#{index}", item
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"line {number}", exc
