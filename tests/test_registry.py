"""The model registry: parsing, arena sampling, lazy shared loading with leases, and both backends
(a local tiny model, and the same model behind `cosmos_llava serve` on loopback)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

import tiny
from loopback import ServeProcess

from cosmos_llava.errors import CosmosLlavaError
from cosmos_llava.generation import GenerationSettings
from cosmos_llava.registry import EndpointBackend, LocalBackend, ModelSpec, Registry, ReplyStats, load_registry


def write(tmp_path, text: str):
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("models: []", "expected a mapping with a non-empty 'models' list"),
    ("models:\n  - name: A\n", "models[0] ('A') needs exactly one of 'model' (local) or 'endpoint'"),
    ("models:\n  - name: A\n    model: x\n    endpoint: http://h/v1\n",
     "models[0] ('A') needs exactly one of 'model' (local) or 'endpoint'"),
    ("models:\n  - name: A\n    endpoint: http://h/v1\n", "models[0] ('A'): an endpoint needs 'endpoint_model', the name it serves"),
    ("models:\n  - name: A\n    model: x\n  - name: A\n    model: y\n", "models[1]: the name 'A' is used twice"),
    ("models:\n  - name: A\n    model: x\n    quantization: 4bit\n", "models[0]: unknown key 'quantization'"),
    ("models:\n  - name: A\n    model: x\n    weight: 0\n", "models[0] ('A'): weight must be a positive number"),
    ("max_resident: 0\nmodels:\n  - name: A\n    model: x\n", "max_resident must be a whole number of at least 1"),
    ("models: [", "is not valid YAML: "),
    ("colour: red\nmodels:\n  - name: A\n    model: x\n",
     "unknown key 'colour' (expected models, max_resident, note, examples)"),
    ("note: [1]\nmodels:\n  - name: A\n    model: x\n", "'note' must be a text or a mapping of language to text"),
    ("examples:\n  - image: yok.png\n    text: Ne var?\nmodels:\n  - name: A\n    model: x\n",
     "examples[0]: image not found: "),
    ("examples:\n  - text: Ne var?\nmodels:\n  - name: A\n    model: x\n", "examples[0] needs 'image' and 'text'"),
])
def test_registry_errors(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(CosmosLlavaError) as info:
        load_registry(path)
    assert str(info.value).startswith(f"{path}") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_registry_reads_paths_relative_to_itself(tmp_path):
    (tmp_path / "local").mkdir()
    registry = load_registry(write(tmp_path, "max_resident: 2\nmodels:\n  - name: Yerel\n    model: local\n"
                                             "    quant: 4bit\n  - name: Uzak\n    endpoint: http://127.0.0.1:9/v1\n"
                                             "    endpoint_model: m\n    weight: 3\n"))
    assert registry.names == ["Yerel", "Uzak"] and registry.max_resident == 2
    assert registry.spec("Yerel").model == str(tmp_path / "local") and registry.spec("Yerel").quant == "4bit"
    with pytest.raises(CosmosLlavaError, match="^unknown model 'X'; the registry has: Yerel, Uzak$"):
        registry.spec("X")


def test_registry_note_and_examples(tmp_path):
    (tmp_path / "ornek").mkdir()
    tiny.solid_image().save(tmp_path / "ornek" / "a.png")
    registry = load_registry(write(tmp_path, "note:\n  tr: Deneme modelleri.\n  en: Demo models.\nexamples:\n"
                                             "  - image: ornek/a.png\n    text: Zemin ne renk?\n"
                                             "models:\n  - name: A\n    model: x\n"))
    assert registry.note == {"tr": "Deneme modelleri.", "en": "Demo models."}
    assert [(e.image, e.text) for e in registry.examples] == [(str(tmp_path / "ornek" / "a.png"), "Zemin ne renk?")]
    plain = load_registry(write(tmp_path, "note: Tek dil.\nmodels:\n  - name: A\n    model: x\n"))
    assert plain.note == {"tr": "Tek dil.", "en": "Tek dil."} and plain.examples == []


def test_sample_pair_is_weighted_distinct_and_side_randomised():
    registry = Registry([ModelSpec("A", model="a", weight=3), ModelSpec("B", model="b"), ModelSpec("C", model="c")])
    rng = random.Random(0)
    pairs = [registry.sample_pair(rng) for _ in range(6000)]
    assert all(a != b for a, b in pairs)
    appearances = Counter(name for pair in pairs for name in pair)
    # A is drawn first with p=3/5, else second with p=3/4 of the rest: P(A in pair) = 3/5 + 2/5 * 3/4 = 0.9
    assert appearances["A"] / 6000 == pytest.approx(0.9, abs=0.02)
    left = Counter(a for a, _ in pairs)
    assert left["A"] / appearances["A"] == pytest.approx(0.5, abs=0.03)  # sides are random
    with pytest.raises(CosmosLlavaError, match="^the arena needs at least two models in the registry$"):
        Registry([ModelSpec("A", model="a")]).sample_pair()


class FakeLoaded:
    def __init__(self, name):
        self.name = name


def test_leases_load_once_share_and_evict_only_idle_models():
    loads = []

    def loader(model, **options):
        loads.append(model)
        time.sleep(0.05)
        return FakeLoaded(model)

    registry = Registry([ModelSpec("A", model="a", max_concurrent=5), ModelSpec("B", model="b")], max_resident=1,
                        loader=loader, wait_s=10)
    leases = [registry.use("A") for _ in range(5)]
    seen = []
    threads = [threading.Thread(target=lambda lease=lease: seen.append(lease.__enter__().loaded.name)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["a"] and seen == ["a"] * 5  # five users, one load
    for lease in leases:
        lease.__exit__(None, None, None)

    with registry.use("A") as a:
        got = {}
        lease_b = registry.use("B")
        waiter = threading.Thread(target=lambda: got.setdefault("b", lease_b.__enter__()))
        waiter.start()
        time.sleep(0.2)
        assert "b" not in got and registry.resident() == ["A"]  # A is in use: B waits for the slot
        assert a.loaded.name == "a"
    waiter.join(timeout=5)
    assert got["b"].loaded.name == "b" and registry.resident() == ["B"] and loads == ["a", "b"]
    lease_b.__exit__(None, None, None)

    busy = Registry([ModelSpec("A", model="a"), ModelSpec("B", model="b")], max_resident=1, loader=loader, wait_s=0.2)
    with busy.use("A"):
        with pytest.raises(CosmosLlavaError, match="^model 'B' could not be loaded: all 1 model slots stayed busy; "
                                                   "try again shortly$"):
            with busy.use("B"):
                pass


def test_max_concurrent_bounds_replies_per_model():
    registry = Registry([ModelSpec("A", model="a"), ModelSpec("E", endpoint="http://h/v1", endpoint_model="m",
                                                                  max_concurrent=2)],
                        max_resident=1, loader=lambda model, **options: FakeLoaded(model), wait_s=0.3)
    with registry.use("A"):  # a local model: one reply at a time by default
        with pytest.raises(CosmosLlavaError, match="^model 'A' is busy: try again shortly$"):
            with registry.use("A"):
                pass
    with registry.use("A"):  # the slot came back
        pass
    with registry.use("E"), registry.use("E"):
        with pytest.raises(CosmosLlavaError, match="^model 'E' is busy: try again shortly$"):
            with registry.use("E"):
                pass


def test_a_failed_load_frees_its_slot():
    def loader(model, **options):
        if model == "bad":
            raise CosmosLlavaError("cannot load model 'bad': not found")
        return FakeLoaded(model)

    registry = Registry([ModelSpec("Bad", model="bad"), ModelSpec("Good", model="good")], max_resident=1, loader=loader,
                        wait_s=1)
    with pytest.raises(CosmosLlavaError, match="^cannot load model 'bad': not found$"):
        with registry.use("Bad"):
            pass
    with registry.use("Good") as good:
        assert good.loaded.name == "good"


@pytest.fixture(scope="module")
def served(llava_llama3):
    proc = ServeProcess(llava_llama3, "--served-model-name", "tiny")
    yield proc
    proc.stop()


def test_local_and_endpoint_backends_give_the_same_reply(llava_llama3, served):
    """The same tiny model, loaded here and served over HTTP, answers the same greedy reply to the
    same two-image conversation: the endpoint path carries images and turns faithfully."""
    registry = Registry([ModelSpec("Yerel", model=str(llava_llama3)),
                         ModelSpec("Uzak", endpoint=f"{served.url}/v1", endpoint_model="tiny")])
    settings = GenerationSettings(temperature=0, max_new_tokens=12)
    replies, stats = {}, {}
    for name in ("Yerel", "Uzak"):
        with registry.use(name) as backend:
            assert isinstance(backend, LocalBackend if name == "Yerel" else EndpointBackend)
            conversation = backend.new_conversation()
            conversation.add_user("Bu ne renk?", [tiny.solid_image((200, 30, 30), size=(40, 40))])
            conversation.add_assistant("Kırmızı.")
            conversation.add_user("Peki bu?", [tiny.solid_image((30, 30, 200), size=(40, 40))])
            stats[name] = ReplyStats()
            replies[name] = "".join(backend.stream(conversation, settings, stats=stats[name])).strip()
    assert replies["Yerel"] == replies["Uzak"] and replies["Yerel"]
    assert stats["Yerel"].prompt_tokens == stats["Uzak"].prompt_tokens > 32
    assert stats["Yerel"].completion_tokens == stats["Uzak"].completion_tokens


def test_endpoint_errors_are_one_line(served):
    settings = GenerationSettings(temperature=0, max_new_tokens=4)
    conversation = EndpointBackend(ModelSpec("X", endpoint="http://x", endpoint_model="y")).new_conversation()
    conversation.add_user("Merhaba")
    wrong = EndpointBackend(ModelSpec("Yanlış", endpoint=f"{served.url}/v1", endpoint_model="other"))
    with pytest.raises(CosmosLlavaError, match="^model 'Yanlış': HTTP 404: The model 'other' does not exist; "
                                               "this server serves 'tiny'$"):
        list(wrong.stream(conversation, settings))
    down = EndpointBackend(ModelSpec("Kapalı", endpoint="http://127.0.0.1:9/v1", endpoint_model="m", timeout_s=5))
    with pytest.raises(CosmosLlavaError, match="^model 'Kapalı' is unreachable: "):
        list(down.stream(conversation, settings))
    keyless = EndpointBackend(ModelSpec("Anahtarsız", endpoint=f"{served.url}/v1", endpoint_model="tiny",
                                        api_key_env="SURELY_UNSET_KEY_VAR"))
    with pytest.raises(CosmosLlavaError, match="^model 'Anahtarsız': the environment variable SURELY_UNSET_KEY_VAR "
                                               "is not set$"):
        list(keyless.stream(conversation, settings))
