"""The committed demo models (`models/`), as `python app.py` serves them with no arguments: they load,
and score on the held-out questions what their cards say. The scenes are redrawn here from the build's
test seed, so this is the build's own test set, not a copy of it."""

import json
from pathlib import Path

import pytest

from cosmos_llava.demo.build import BAR, STRONG, WEAK, BuildPlan, evaluate, scores, write_test_set

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"


@pytest.fixture(scope="module")
def held_out_scores(tmp_path_factory):
    """Both committed models on the build's whole held-out test set, through the build's own eval step."""
    work = tmp_path_factory.mktemp("held-out")
    write_test_set(work / "data" / "test", BuildPlan())
    summary = evaluate(work, MODELS, [STRONG, WEAK], False, lambda line: None)
    return {name: scores(summary, name) for name in (STRONG, WEAK)}


def test_committed_models_are_small_safetensors():
    for name in (STRONG, WEAK):
        weights = list((MODELS / name).glob("*.safetensors"))
        assert weights and sum(f.stat().st_size for f in weights) <= 15 * 2**20, name
        assert "python -m cosmos_llava.demo build" in (MODELS / name / "README.md").read_text(encoding="utf-8")
        # The recipe the card states: LLaVA-1's linear projector, an LM with untied embeddings.
        config = json.loads((MODELS / name / "config.json").read_text(encoding="utf-8"))
        assert config["cosmos_llava"]["projector"] == BuildPlan.projector == "linear"
        assert config["text_config"]["tie_word_embeddings"] is False


def test_scores_reproduce_the_committed_ones(held_out_scores):
    """Greedy answers from the committed weights: the scores the build recorded, up to a near-tie
    flipping on another CPU (0.02 is two questions of a hundred)."""
    for name in (STRONG, WEAK):
        recorded = json.loads((MODELS / name / "scores.json").read_text(encoding="utf-8"))["held_out"]
        assert set(recorded) == set(BAR)
        for key, value in held_out_scores[name].items():
            if recorded[key] is None:  # F1 of a model that never says "Evet."
                assert value is None, (name, key, value)
            else:
                assert value == pytest.approx(recorded[key], abs=0.02), (name, key, value, recorded[key])


def test_weak_model_is_clearly_weaker(held_out_scores):
    """The arena's two contestants differ: over the four accuracies (yes/no and the three exact-match
    categories) the mini trails by a wide margin, colour most of all (F1 is left out: it is None or
    near 0 for a model that hardly ever says "Evet.")."""
    strong, weak = held_out_scores[STRONG], held_out_scores[WEAK]
    accuracies = ("yes_no_accuracy", "renk_exact", "sayma_exact", "konum_exact")
    assert sum(weak[key] for key in accuracies) < sum(strong[key] for key in accuracies) - 0.4, (strong, weak)
    assert weak["renk_exact"] < strong["renk_exact"] - 0.2, (strong, weak)


def test_app_serves_the_demo_models_by_default():
    """`python app.py` with no --models: the registry next to the models, the note, world examples."""
    import app
    from cosmos_llava.webapp import load_app_registry

    assert app.DEFAULT_MODELS == MODELS / "demo.yaml"
    registry = load_app_registry(None, app.DEFAULT_MODELS)
    assert registry.names == [STRONG, WEAK]
    assert "Demo modelleri" in registry.note["tr"]
    assert registry.examples and all(Path(e.image).is_file() for e in registry.examples)
