"""annotate/human.py: the pair store (ids, validation, atomic autosave, refusing corrupt files), its
output as training data, the command line, and the Gradio UI driven by keyboard in a real browser."""

import json
import os
import socket
import stat
from pathlib import Path

import pytest
from PIL import Image

from annotate import human
from loopback import served_app
from annotate.human import AnnotateError, PairError, PairStore, build_app, find_images, human_main, launch_options



def make_images(folder: Path, names=("a.png", "c.webp", "sub/b.jpg")) -> Path:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 24), "red").save(path)
    return folder


def pair(row_id, image, category, question, answer):
    """The exact row the tool writes for one pair."""
    return {"id": row_id, "image": image, "category": category,
            "conversations": [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]}


def read_json(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------- the store


def test_find_images_recursive_sorted_by_relative_path(tmp_path):
    make_images(tmp_path, ("c.webp", "sub/b.jpg", "a.png", "sub/deep/e.GIF", "z.BMP", "y.jpeg"))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "folder.png").mkdir()  # a folder named like an image is not one
    assert find_images(tmp_path) == ["a.png", "c.webp", "sub/b.jpg", "sub/deep/e.GIF", "y.jpeg", "z.BMP"]


def test_add_writes_exact_rows_and_reloads(tmp_path):
    out = tmp_path / "data" / "qa.json"  # the folder is made on the first save
    store = PairStore(out)
    assert store.rows == [] and not out.exists()  # nothing is written before the first pair

    row = store.add("sub/b.jpg", "ocr", "  Tabelada ne yazıyor?\n", "\n Kapalı.  ")
    assert row == pair("sub/b-1", "sub/b.jpg", "ocr", "Tabelada ne yazıyor?", "Kapalı.")
    assert read_json(out) == [row]
    second = store.add("sub/b.jpg", "sohbet", "Kaç kişi var?", "İki kişi:\nbiri oturuyor.")
    assert second["id"] == "sub/b-2"
    assert read_json(out) == [row, second]
    assert "Kapalı." in out.read_text(encoding="utf-8")  # Turkish stays readable, not \u-escaped

    again = PairStore(out)
    assert again.rows == [row, second]
    assert again.pairs_for("sub/b.jpg") == [row, second] and again.pairs_for("a.png") == []
    assert again.first_without_pairs(["sub/b.jpg", "a.png"]) == 1
    assert again.first_without_pairs(["sub/b.jpg"]) == 0  # all done: start at the first


def test_ids_stay_unique_after_deletions(tmp_path):
    out = tmp_path / "qa.json"
    store = PairStore(out)
    assert [store.add("a.png", "ocr", f"S{i}", f"C{i}")["id"] for i in range(3)] == ["a-1", "a-2", "a-3"]
    store.delete("a-1")
    # Two rows left: a count would hand out a-3 again; the largest n + 1 does not.
    assert store.add("a.png", "ocr", "S", "C")["id"] == "a-4"
    assert [r["id"] for r in read_json(out)] == ["a-2", "a-3", "a-4"]
    # Same stem, other extension: the ids go on from a's, never colliding.
    assert store.add("a.jpg", "ocr", "S", "C")["id"] == "a-5"
    with pytest.raises(PairError, match="Çift bulunamadı: a-1"):
        store.delete("a-1")
    assert [r["id"] for r in read_json(out)] == ["a-2", "a-3", "a-4", "a-5"]


@pytest.mark.parametrize("category, question, answer, message", [
    ("ocr", "  \n ", "Cevap", "Soru boş: önce bir soru yazın."),
    ("ocr", "Soru?", " \t", "Cevap boş: kaydetmek için bir cevap yazın."),
    ("ocr", "Soru?", None, "Cevap boş: kaydetmek için bir cevap yazın."),
    ("ocr", "<image> bu ne?", "Kedi", "<image> ayrılmış bir işarettir (görselin yeri); metinde kullanmayın."),
    ("ocr", "Bu ne?", "Bir <image>", "<image> ayrılmış bir işarettir (görselin yeri); metinde kullanmayın."),
    (None, "Bu ne?", "Kedi", "Bir kategori seçin."),
])
def test_invalid_pairs_are_refused_and_nothing_is_written(tmp_path, category, question, answer, message):
    out = tmp_path / "qa.json"
    store = PairStore(out)
    store.add("a.png", "ocr", "İlk?", "Evet.")
    before = out.read_bytes()
    with pytest.raises(PairError) as caught:
        store.add("a.png", category, question, answer)
    assert str(caught.value) == message
    assert out.read_bytes() == before and len(store.rows) == 1


def test_existing_file_is_continued_and_foreign_rows_kept(tmp_path):
    out = tmp_path / "qa.json"
    foreign = [
        {"id": "x-7", "image": "a.png", "conversations": [
            {"from": "human", "value": "<image>\nBir"}, {"from": "gpt", "value": "Bir."},
            {"from": "human", "value": "İki"}, {"from": "gpt", "value": "İki."}], "source": "eski"},
        {"id": "text-only", "conversations": [{"from": "human", "value": "Merhaba"}, {"from": "gpt", "value": "Selam"}]},
        {"id": "two", "image": ["c.webp", "a.png"], "conversations": [
            {"from": "human", "value": "<image>\n<image>\nFark?"}, {"from": "gpt", "value": "Renk."}]},
        pair("a-3", "a.png", "ocr", "Ne yazıyor?", "Dur."),
    ]
    out.write_text(json.dumps(foreign, ensure_ascii=False), encoding="utf-8")
    store = PairStore(out)
    assert store.first_without_pairs(["a.png", "c.webp"]) == 1
    assert [human.question_of(r) for r in store.pairs_for("a.png")] == ["Bir", "Ne yazıyor?"]
    assert [human.answer_of(r) for r in store.pairs_for("a.png")] == ["Bir.", "Dur."]
    new = store.add("a.png", "sohbet", "Renk?", "Mavi.")
    assert new["id"] == "a-4"
    assert read_json(out) == [*foreign, new]


KEEP = "; it was left untouched: fix it or choose another --out"


@pytest.mark.parametrize("content, message", [
    (b'[{"id": "a-1",', "{out} is not valid JSON (Expecting property name enclosed in double quotes: "
                        "line 1 column 15 (char 14))" + KEEP),
    (b'{"id": "a-1"}', "{out} is not a JSON list of LLaVA rows" + KEEP),
    (b'[{"id": "a-1"}, 3]', "{out}: row #1 is not a JSON object" + KEEP),
    (b'{"id": "a-1"}\n{"id": "a-2"}\n', "{out} is not valid JSON (Extra data: line 2 column 1 (char 14))" + KEEP),
    (b"\xff\xfe[]", "{out} is not UTF-8 text" + KEEP),
])
def test_corrupt_out_file_is_refused_and_left_untouched(tmp_path, content, message):
    out = tmp_path / "qa.json"
    out.write_bytes(content)
    with pytest.raises(AnnotateError) as caught:
        PairStore(out)
    assert str(caught.value) == message.format(out=out)
    assert out.read_bytes() == content


def test_empty_out_file_holds_no_work(tmp_path):
    out = tmp_path / "qa.json"
    out.write_text("\n")
    assert PairStore(out).rows == []


def test_write_is_atomic_fsynced_and_a_failed_write_changes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "qa.json"
    store = PairStore(out)
    first = store.add("a.png", "ocr", "S1", "C1")
    before = out.read_bytes()

    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(("fsync", stat.S_ISDIR(os.fstat(fd).st_mode))),
                                                 real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(("replace", Path(a).parent == Path(b).parent)),
                                                     real_replace(a, b))[1])
    second = store.add("a.png", "ocr", "S2", "C2")
    # The temp file is flushed to disk, renamed over the file in the same folder, then the folder synced.
    assert calls == [("fsync", False), ("replace", True), ("fsync", True)]
    assert read_json(out) == [first, second]

    def disk_full(a, b):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    before = out.read_bytes()
    with pytest.raises(OSError):
        store.add("a.png", "ocr", "S3", "C3")
    with pytest.raises(OSError):
        store.delete(first["id"])
    assert out.read_bytes() == before and store.rows == [first, second]  # memory follows the disk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.json"]  # no temp files left behind

    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # a normal file, not a 0600 temp file


def test_output_is_valid_training_data(tmp_path):
    from cosmos_llava.templates import IMAGE_TOKEN
    from training.data import read_rows

    assert human.IMAGE_TOKEN == IMAGE_TOKEN
    images = make_images(tmp_path / "images")
    out = tmp_path / "elsewhere" / "qa.json"  # not next to the images: image_folder says where they are
    store = PairStore(out)
    store.add("sub/b.jpg", "ocr", "Tabelada ne yazıyor?", "Kapalı.")
    store.add("a.png", "karmaşık akıl yürütme", "Neden kırmızı?\nAçıklayın.", "Dikkat çeksin diye.")
    store.add("sub/b.jpg", "sohbet", "Kaç kişi var?", "İki.")
    store.delete("sub/b-1")

    rows, skipped = read_rows(out, images)  # opens every image too
    assert skipped == []
    assert [(r.id, r.category, r.images) for r in rows] == [
        ("a-1", "karmaşık akıl yürütme", [images / "a.png"]),
        ("sub/b-2", "sohbet", [images / "sub/b.jpg"]),
    ]
    assert rows[0].messages == [{"role": "user", "content": "<image>\nNeden kırmızı?\nAçıklayın."},
                                {"role": "assistant", "content": "Dikkat çeksin diye."}]
    assert rows[1].messages == [{"role": "user", "content": "<image>\nKaç kişi var?"},
                                {"role": "assistant", "content": "İki."}]


# ------------------------------------------------------------------------------------------ command line


@pytest.mark.parametrize("case", ["missing", "file", "no-images", "corrupt", "categories", "port", "out-folder"])
def test_cli_errors_are_one_line_and_exit_1(tmp_path, capsys, case):
    images = make_images(tmp_path / "images")
    out = tmp_path / "qa.json"
    args = {"--images": images, "--out": out}
    extra = []
    if case == "missing":
        args["--images"] = tmp_path / "nope"
        expected = f"--images is not a folder: {tmp_path / 'nope'}"
    elif case == "file":
        args["--images"] = images / "a.png"
        expected = f"--images is not a folder: {images / 'a.png'}"
    elif case == "no-images":
        empty = tmp_path / "empty"
        (empty / "sub").mkdir(parents=True)
        (empty / "sub" / "notes.txt").write_text("x")
        args["--images"] = empty
        expected = f"no images (.jpg, .jpeg, .png, .webp, .bmp, .gif) under {empty}"
    elif case == "corrupt":
        out.write_text("[{")
        expected = (f"{out} is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 3 "
                    "(char 2)); it was left untouched: fix it or choose another --out")
    elif case == "categories":
        extra = ["--categories", " , ,"]
        expected = "--categories names no category"
    elif case == "port":
        extra = ["--port", "70000"]
        expected = "--port must be between 1 and 65535, got 70000"
    else:
        out.mkdir()
        expected = f"--out is a folder, not a file: {out}"
    argv = [str(x) for kv in args.items() for x in kv] + extra
    assert human_main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: {expected}\n"
    assert captured.out == ""
    if case == "corrupt":
        assert out.read_text() == "[{"


def test_cli_launches_with_its_options(tmp_path, capsys, monkeypatch):
    import gradio as gr

    images = make_images(tmp_path / "images")
    out = tmp_path / "qa.json"
    out.write_text(json.dumps([pair("a-1", "a.png", "ocr", "S", "C")]))
    launched = {}

    def fake_launch(demo, **kwargs):  # record instead of serving forever
        launched.update(kwargs, demo=demo)

    monkeypatch.setattr(gr.Blocks, "launch", fake_launch)
    monkeypatch.setattr(gr.Blocks, "block_thread", lambda demo: None)  # the real one waits for Ctrl-C
    assert human_main(["--images", str(images), "--out", str(out), "--categories", "ocr, sayma ,ocr"]) == 0
    assert capsys.readouterr().err == (f"3 images, 1 rows already in {out}\nannotating at http://127.0.0.1:7861 "
                                       "(Ctrl-C stops; every save is already on disk)\n")
    keys = ("server_name", "server_port", "share", "quiet", "prevent_thread_lock", "js", "allowed_paths", "ssr_mode")
    assert {k: launched[k] for k in keys} == {
        "server_name": "127.0.0.1", "server_port": 7861, "share": False, "quiet": True, "prevent_thread_lock": True,
        "js": human.KEYBOARD_JS,
        "allowed_paths": [str(images.resolve())], "ssr_mode": False}
    radio = next(b for b in launched["demo"].blocks.values() if isinstance(b, gr.Radio))
    assert [c[1] for c in radio.choices] == ["ocr", "sayma"] and radio.value == "ocr"

    launched.clear()
    human_main(["--images", str(images), "--out", str(out), "--host", "0.0.0.0", "--port", "9000", "--share"])
    assert (launched["server_name"], launched["server_port"], launched["share"], launched["quiet"]) == (
        "0.0.0.0", 9000, True, False)  # with --share, Gradio's banner gives the public link
    radio = next(b for b in launched["demo"].blocks.values() if isinstance(b, gr.Radio))
    assert [c[1] for c in radio.choices] == list(human.DEFAULT_CATEGORIES)


def test_cli_port_taken_is_one_line_error(tmp_path, capsys):
    images = make_images(tmp_path / "images")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = human_main(["--images", str(images), "--out", str(tmp_path / "qa.json"), "--port", str(port)])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"3 images, 0 rows already in {tmp_path / 'qa.json'}"
    assert err[1].startswith(f"error: cannot serve on 127.0.0.1:{port}: Cannot find empty port") and len(err) == 2


# ------------------------------------------------------------------------------------------ real browser


@pytest.fixture
def served(tmp_path):
    """The app on 127.0.0.1 in this process, over 3 images with one pair already written for a.png."""
    images = make_images(tmp_path / "images")
    out = tmp_path / "qa.json"
    existing = pair("a-1", "a.png", "ocr", "Ne yazıyor?", "Dur.")
    out.write_text(json.dumps([existing], ensure_ascii=False, indent=2), encoding="utf-8")
    with served_app(build_app(images, out), launch_options(images), queue=False) as url:
        yield url, out, existing


def test_browser_keyboard_flow_writes_exact_rows(browser_page, served):
    from playwright.sync_api import expect

    page = browser_page
    url, out, existing = served
    question, answer = page.locator("#question textarea"), page.locator("#answer textarea")
    status, position = page.locator("#status"), page.locator("#position")

    def focused() -> str:
        return page.evaluate("document.activeElement.closest('[id]')?.id")

    def wait_saved(row_id: str) -> None:
        expect(status).to_have_text(f"✅ Kaydedildi: {row_id}")
        expect(question).to_have_value("")
        expect(answer).to_have_value("")
        page.wait_for_function("document.activeElement.closest('#question') !== null")  # back to the question

    page.goto(url)
    # Continues at the first image without pairs: a.png has one, c.webp is next.
    expect(position).to_contain_text("2 / 3 · c.webp · bu görselde 0 çift")

    # An empty answer: a Turkish warning (toast and status line) and nothing written.
    question.click()
    page.keyboard.type("Tabelada ne yazıyor?")
    page.keyboard.press("Enter")  # Enter in the question moves to the answer
    assert focused() == "answer"
    before = out.read_bytes()
    page.keyboard.press("Enter")
    expect(status).to_have_text("⚠️ Cevap boş: kaydetmek için bir cevap yazın.")
    expect(page.locator('[data-testid="toast-text"]')).to_have_text("Cevap boş: kaydetmek için bir cevap yazın.")
    assert out.read_bytes() == before
    expect(question).to_have_value("Tabelada ne yazıyor?")  # the typed question is kept
    page.wait_for_function("document.activeElement.closest('#answer') !== null")

    page.keyboard.type("Kapalı.")
    page.keyboard.press("Enter")  # Enter in the answer saves
    wait_saved("c-1")

    page.keyboard.type("Kaç kişi var?")
    page.keyboard.press("Enter")
    page.keyboard.type("İki kişi:")
    page.keyboard.press("Shift+Enter")  # a new line, not a save
    page.keyboard.type("biri oturuyor.")
    page.locator("#category label", has_text="karmaşık akıl yürütme").click()
    answer.focus()
    page.keyboard.press("Control+Enter")  # saves once (not also through Gradio's own Enter handler)
    wait_saved("c-2")
    expect(position).to_contain_text("2 / 3 · c.webp · bu görselde 2 çift")

    # Typed but unsaved text blocks moving on, so it can't be lost.
    page.keyboard.type("Yarım soru")
    page.keyboard.press("Alt+ArrowRight")
    expect(status).to_contain_text("Kaydedilmemiş metin var")
    expect(position).to_contain_text("2 / 3")
    assert focused() == "question"  # still where the typing was
    question.fill("")

    page.keyboard.press("Alt+ArrowRight")
    expect(position).to_contain_text("3 / 3 · sub/b.jpg · bu görselde 0 çift")
    page.wait_for_function("document.activeElement.closest('#question') !== null")
    page.keyboard.type("Ne renk?")
    page.keyboard.press("Enter")
    page.keyboard.type("Kırmızı.")
    page.keyboard.press("Enter")
    wait_saved("sub/b-1")

    page.keyboard.press("Alt+ArrowLeft")
    expect(position).to_contain_text("2 / 3 · c.webp · bu görselde 2 çift")
    page.keyboard.press("PageUp")
    expect(position).to_contain_text("1 / 3 · a.png · bu görselde 1 çift")
    page.keyboard.press("PageDown")
    expect(position).to_contain_text("2 / 3 · c.webp")

    # Delete c-1: click its row in the table, then Sil.
    page.locator("#pairs").get_by_text("Tabelada ne yazıyor?", exact=True).locator("visible=true").click()
    expect(page.locator("#to-delete input")).to_have_value("c-1")
    page.locator("#delete-btn").click()
    expect(status).to_have_text("🗑️ Silindi: c-1")
    expect(position).to_contain_text("bu görselde 1 çift")

    assert read_json(out) == [
        existing,
        pair("c-2", "c.webp", "karmaşık akıl yürütme", "Kaç kişi var?", "İki kişi:\nbiri oturuyor."),
        # The category stays as last chosen, across images, until changed.
        pair("sub/b-1", "sub/b.jpg", "karmaşık akıl yürütme", "Ne renk?", "Kırmızı."),
    ]
