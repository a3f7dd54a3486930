"""`python -m cosmos_llava chat`: one-shot answers, the interactive loop, and bad input."""

import pytest
from PIL import Image

import tiny
from conftest import run_cli
from cosmos_llava.errors import ImageError
from cosmos_llava.generation import GenerationSettings, generate_reply
from cosmos_llava.images import load_image


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    good = root / "good.png"
    tiny.solid_image().save(good)
    data = good.read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00garbage" * 50)
    (root / "notes.txt").write_text("bu bir görsel değil")
    (root / "empty.png").write_bytes(b"")
    # 10000 x 10000 = 100 megapixels: a few KB on disk, 300 MB decoded.
    Image.new("1", (10000, 10000)).save(root / "bomb.png")
    return root


def test_prompt_prints_only_the_answer(llava_llama3, loaded_llama3, tmp_path):
    image = tmp_path / "scene.png"
    tiny.solid_image().save(image)
    result = run_cli("chat", "--model", llava_llama3, "--image", image, "--prompt", "Görselde ne var?",
                     "--temperature", "0", "--max-new-tokens", "12")
    assert result.returncode == 0, result.stderr
    conv = loaded_llama3.new_conversation()
    conv.add_user("Görselde ne var?", [image])
    expected = generate_reply(loaded_llama3, conv, GenerationSettings(temperature=0, max_new_tokens=12))
    assert result.stdout.strip() == expected
    assert result.stdout.count("\n") == 1  # the answer and nothing else


def test_interactive_session(llava_llama3, tmp_path):
    image = tmp_path / "scene.png"
    tiny.solid_image().save(image)
    script = f"/image {image}\nBu ne?\nPeki rengi?\n/image /yok/boyle/bir/dosya.png\n/reset\n/system Kısa yanıt ver.\n/nope\n/quit\n"
    result = run_cli("chat", "--model", llava_llama3, "--temperature", "0", "--max-new-tokens", "4", stdin=script)
    assert result.returncode == 0, result.stderr
    assert "1 image(s) will go with your next message" in result.stdout
    assert "conversation cleared" in result.stdout
    assert "system prompt set; conversation cleared" in result.stdout
    assert "error: image file not found: /yok/boyle/bir/dosya.png" in result.stderr
    assert "error: unknown command '/nope'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name,message", [
    ("missing.png", "image file not found: {path}"),
    ("notes.txt", "not an image file (unrecognised format): {path}"),
    ("empty.png", "image file is empty (0 bytes): {path}"),
    ("bomb.png", "image is too large: 10000x10000 = 100,000,000 pixels, the limit is 64,000,000: {path}"),
])
def test_bad_images_give_one_line_errors(llava_llama3, bad_files, name, message):
    path = bad_files / name
    result = run_cli("chat", "--model", llava_llama3, "--image", path, "--prompt", "Bu ne?")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "error: " + message.format(path=path) + "\n"


@pytest.mark.parametrize("name", ["truncated.png", "corrupt.jpg"])
def test_truncated_and_corrupt_images(bad_files, name):
    path = bad_files / name
    with pytest.raises(ImageError, match=r"^(image file is truncated or corrupt|not an image file).*: " + str(path) + "$"):
        load_image(path)


def test_truncated_image_via_cli(llava_llama3, bad_files):
    result = run_cli("chat", "--model", llava_llama3, "--image", bad_files / "truncated.png", "--prompt", "Bu ne?")
    assert result.returncode == 1
    assert result.stderr.startswith("error: image file is truncated or corrupt (")
    assert result.stderr.count("\n") == 1


def test_images_are_normalised_to_rgb(tmp_path):
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.save(tmp_path / "t.png")
    image = load_image(tmp_path / "t.png")
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert load_image((tmp_path / "t.png").read_bytes()).size == (4, 4)


@pytest.mark.parametrize("args,message", [
    (["--prompt", "  "], "error: empty message: write some text or attach an image"),
    (["--prompt", "x", "--template", "chatml"], "error: unknown chat template 'chatml'; choose one of: llama3, mistral, vicuna_v1, plain"),
    (["--prompt", "x", "--temperature", "-1"], "error: temperature must be >= 0, got -1.0"),
])
def test_bad_arguments(llava_llama3, args, message):
    result = run_cli("chat", "--model", llava_llama3, *args)
    assert result.returncode == 1
    assert result.stderr == message + "\n"


def test_too_long_message(llava_llama3):
    result = run_cli("chat", "--model", llava_llama3, "--prompt", "çok uzun " * 400)
    assert result.returncode == 1
    assert result.stderr.startswith("error: the message is too long: ")
    assert result.stderr.endswith("tokens (images included), the model's context window is 512\n")


def test_unknown_quant_is_a_usage_error(llava_llama3):
    result = run_cli("chat", "--model", llava_llama3, "--quant", "3bit", "--prompt", "x")
    assert result.returncode == 2 and "invalid choice: '3bit'" in result.stderr
