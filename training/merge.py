"""`python -m training merge-lora`: fold a LoRA adapter into its base model and save a plain LLaVA folder."""

from __future__ import annotations

from pathlib import Path

from cosmos_llava.compose import save
from cosmos_llava.errors import CosmosLlavaError
from cosmos_llava.loading import load_model


def merge_lora(base: str, adapter: str, out: str | Path, dtype: str = "auto") -> Path:
    """Load `base` with `adapter` through the core loader, merge, and save model + processor to `out`.

    A QLoRA adapter merges into the full-precision base (never into 4-bit weights, which would round
    the adapter away); pass the same base folder the adapter was trained on.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise CosmosLlavaError(f"output folder is not empty: {out}")
    loaded = load_model(base, dtype=dtype, device_map="none", adapter=adapter)
    try:
        merged = loaded.model.merge_and_unload()
    except AttributeError:
        raise CosmosLlavaError(f"{adapter} did not load as a LoRA adapter") from None
    save(merged, loaded.processor, out)
    loaded.executor.shutdown(wait=False)
    return out
