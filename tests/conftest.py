"""Session-wide tiny checkpoints (built once, offline) and composed LLaVA models."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

import tiny  # noqa: E402

REPO = Path(__file__).parent.parent

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page():
    """A headless Chromium page (Debian's chromium driven by playwright, no browser download);
    skips where either is missing (CI installs both)."""
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not executable:
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

@pytest.fixture(scope="session")
def parts(tmp_path_factory):
    """Folders of tiny vision encoders and language models, like hub checkpoints."""
    root = tmp_path_factory.mktemp("parts")
    return {
        "clip": tiny.save_tiny_clip(root / "clip"),
        "siglip": tiny.save_tiny_siglip(root / "siglip"),
        "llama3": tiny.save_tiny_llama3(root / "llama3"),
        "mistral": tiny.save_tiny_mistral(root / "mistral"),
    }

@pytest.fixture(scope="session")
def llava_llama3(parts, tmp_path_factory):
    """CLIP + LLaMA-3 (own chat template) + mlp2x_gelu, composed and saved."""
    from cosmos_llava.compose import compose

    out = tmp_path_factory.mktemp("models") / "clip-llama3"
    compose(str(parts["clip"]), str(parts["llama3"]), projector="mlp2x_gelu", out=out)
    return out

@pytest.fixture(scope="session")
def llava_mistral(parts, tmp_path_factory):
    """SigLIP + Mistral (no own template: named 'mistral') + linear projector."""
    from cosmos_llava.compose import compose

    out = tmp_path_factory.mktemp("models") / "siglip-mistral"
    compose(str(parts["siglip"]), str(parts["mistral"]), projector="linear", template="mistral", out=out)
    return out

@pytest.fixture(scope="session")
def loaded_llama3(llava_llama3):
    from cosmos_llava.loading import load_model

    return load_model(str(llava_llama3))

def run_python(*args, stdin: str | None = None, timeout: int = 300):
    """Run `python ARGS...` in a fresh process from the repository root; returns CompletedProcess."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *map(str, args)], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def run_cli(*args, stdin: str | None = None, timeout: int = 300):
    """Run `python -m cosmos_llava ...` in a fresh process; returns CompletedProcess."""
    return run_python("-m", "cosmos_llava", *args, stdin=stdin, timeout=timeout)
