"""`python -m annotate human`: write native Turkish question–answer pairs about images, in a browser.

This is how a CosmosVQA-like dataset gets made: a person looks at each image and writes questions a
Turkish speaker would ask, with their answers. Every pair becomes one row of the LLaVA JSON format,

    {"id": "sub/foto-1", "image": "sub/foto.jpg", "category": "ocr",
     "conversations": [{"from": "human", "value": "<image>\\nTabelada ne yazıyor?"},
                       {"from": "gpt", "value": "Kapalı."}]}

with `image` relative to --images, so the file trains as is:
`python -m training --config ... data=OUT image_folder=IMAGES`.

Work is never lost: every save and delete rewrites the whole file atomically (temp file, fsync,
rename), a restart continues where the file left off, and an --out file that can't be read is never
overwritten (the tool refuses to start instead).

Two parts, one concern each: `PairStore` owns the file (validation, ids, atomic writes) and knows
nothing of Gradio; `build_app` is the Gradio UI on top of it.
"""


import argparse
import json
import os
import re
import secrets
import sys
import threading
from pathlib import Path, PurePosixPath

from cosmos_llava.errors import CosmosLlavaError
from cosmos_llava.templates import IMAGE_TOKEN  # light: the package loads torch only when asked

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
# Categories of LLaVA-Instruct (conversation, detail, complex_reasoning) plus reading text in images.
DEFAULT_CATEGORIES = ("sohbet", "ayrıntılı betimleme", "karmaşık akıl yürütme", "ocr")


class AnnotateError(CosmosLlavaError):
    """A problem with the command line or the --out file; printed as one line `error: ...`."""


class PairError(ValueError):
    """A question–answer pair that can't be saved; the message is Turkish and shown in the UI."""


# ------------------------------------------------------------------------------------------------ store


class PairStore:
    """The --out file: a JSON list of LLaVA rows, kept in memory and rewritten whole on every change.

    Rows the tool did not write (other images, several turns, extra keys) are kept untouched.
    Thread-safe: Gradio runs handlers in worker threads.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.rows: list[dict] = self._load()

    def _load(self) -> list[dict]:
        if self.path.is_dir():
            raise AnnotateError(f"--out is a folder, not a file: {self.path}")
        if not self.path.exists():
            return []
        # Refuse rather than overwrite anything we can't read back: it may be someone's work.
        untouched = "it was left untouched: fix it or choose another --out"
        try:
            text = self.path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise AnnotateError(f"{self.path} is not UTF-8 text; {untouched}") from None
        if not text.strip():
            return []  # an empty file (e.g. made with `touch`) holds no work
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AnnotateError(f"{self.path} is not valid JSON ({exc}); {untouched}") from None
        if not isinstance(rows, list):
            raise AnnotateError(f"{self.path} is not a JSON list of LLaVA rows; {untouched}")
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise AnnotateError(f"{self.path}: row #{index} is not a JSON object; {untouched}")
        return rows

    # -- reading

    def pairs_for(self, image: str) -> list[dict]:
        """This image's rows, in file order."""
        return [row for row in self.rows if row.get("image") == image]

    def images_with_pairs(self) -> set[str]:
        # Rows of several images (a list) or none are someone else's; they are kept, never shown.
        return {row["image"] for row in self.rows if isinstance(row.get("image"), str)}

    def first_without_pairs(self, images: list[str]) -> int:
        """Index of the first image with no rows (where work continues), or 0 when all have some."""
        done = self.images_with_pairs()
        return next((i for i, image in enumerate(images) if image not in done), 0)

    # -- changing (each change is on disk before it is in memory: a failed write changes nothing)

    def add(self, image: str, category: str | None, question: str, answer: str) -> dict:
        """Validate and save one pair as a new row; returns the row. Raises PairError (Turkish)."""
        question, answer = (question or "").strip(), (answer or "").strip()
        category = (category or "").strip()
        if not question:
            raise PairError("Soru boş: önce bir soru yazın.")
        if not answer:
            raise PairError("Cevap boş: kaydetmek için bir cevap yazın.")
        if IMAGE_TOKEN in question or IMAGE_TOKEN in answer:
            raise PairError(f"{IMAGE_TOKEN} ayrılmış bir işarettir (görselin yeri); metinde kullanmayın.")
        if not category:
            raise PairError("Bir kategori seçin.")
        with self._lock:
            row = {
                "id": self._next_id(image),
                "image": image,
                "category": category,
                "conversations": [
                    {"from": "human", "value": f"{IMAGE_TOKEN}\n{question}"},
                    {"from": "gpt", "value": answer},
                ],
            }
            rows = [*self.rows, row]
            self._write(rows)
            self.rows = rows
        return row

    def delete(self, row_id: str) -> None:
        with self._lock:
            rows = [row for row in self.rows if row.get("id") != row_id]
            if len(rows) == len(self.rows):
                raise PairError(f"Çift bulunamadı: {row_id}")
            self._write(rows)
            self.rows = rows

    def _next_id(self, image: str) -> str:
        # "<path without extension>-<n>" with n one past the largest in use, never a count: after a
        # deletion a count would hand out an id that is still taken. The pattern is matched over all
        # rows, so a.jpg and a.png (same stem) never share an id either.
        stem = PurePosixPath(image).with_suffix("").as_posix()
        pattern = re.compile(re.escape(stem) + r"-(\d+)")
        taken = {str(row.get("id")) for row in self.rows}
        n = 1 + max((int(m.group(1)) for i in taken if (m := pattern.fullmatch(i))), default=0)
        while f"{stem}-{n}" in taken:  # only possible with ids written by someone else
            n += 1
        return f"{stem}-{n}"

    def _write(self, rows: list[dict]) -> None:
        """Replace the file atomically: a crash leaves either the old or the new file, never half."""
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
        temp = folder / f".{self.path.name}.{secrets.token_hex(4)}.tmp"  # same folder: rename is atomic
        try:
            # os.open honours the umask (tempfile's files are 0600, which would stick after the rename).
            with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; folders can't be opened like this on Windows.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def question_of(row: dict) -> str:
    """The first human turn without its image marker (rows written by others may look different)."""
    turns = row.get("conversations") if isinstance(row.get("conversations"), list) else []
    text = next((t.get("value", "") for t in turns if isinstance(t, dict) and t.get("from") == "human"), "")
    return str(text).replace(f"{IMAGE_TOKEN}\n", "", 1).replace(IMAGE_TOKEN, "", 1).strip()


def answer_of(row: dict) -> str:
    turns = row.get("conversations") if isinstance(row.get("conversations"), list) else []
    return str(next((t.get("value", "") for t in turns if isinstance(t, dict) and t.get("from") == "gpt"), ""))


def find_images(folder: str | Path) -> list[str]:
    """Image paths relative to `folder` (POSIX style, as they go in the JSON), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotateError(f"--images is not a folder: {folder}")
    images = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    )
    if not images:
        raise AnnotateError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    return images


# --------------------------------------------------------------------------------------------------- UI

# Element ids the keyboard script and the tests address.
QUESTION_ID, ANSWER_ID, SAVE_ID, PREV_ID, NEXT_ID = "question", "answer", "save-btn", "prev-btn", "next-btn"

# Runs once when the page loads (launch(js=...)). Listening on the window in the capture phase makes
# the shortcuts work whichever element has focus, before Gradio's own key handlers see them;
# preventDefault keeps Alt+← from sending the browser back a page. Enter in the question box moves to
# the answer box right here, synchronously, so fast typing can't land in the question box.
KEYBOARD_JS = """
() => {
  if (window.__annotateKeys) return;
  window.__annotateKeys = true;
  window.addEventListener("keydown", (e) => {
    if (e.isComposing) return;
    let id = null;
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) id = "%(save)s";
    else if ((e.altKey && e.key === "ArrowLeft") || e.key === "PageUp") id = "%(prev)s";
    else if ((e.altKey && e.key === "ArrowRight") || e.key === "PageDown") id = "%(next)s";
    else if (e.key === "Enter" && !e.shiftKey && e.target.closest && e.target.closest("#%(q)s")) {
      e.preventDefault();
      e.stopPropagation();
      document.querySelector("#%(a)s textarea")?.focus();
      return;
    }
    if (!id) return;
    e.preventDefault();
    e.stopPropagation();
    document.getElementById(id)?.click();
  }, true);
}
""" % {"save": SAVE_ID, "prev": PREV_ID, "next": NEXT_ID, "q": QUESTION_ID, "a": ANSWER_ID}

# After a save: the question box when it is empty (the next pair starts there), otherwise
# the answer box (a save refused for an empty answer leaves the question in place).
FOCUS_JS = """
() => {
  const q = document.querySelector("#%(q)s textarea"), a = document.querySelector("#%(a)s textarea");
  ((q && q.value.trim() === "") || !a ? q : a)?.focus();
}
""" % {"q": QUESTION_ID, "a": ANSWER_ID}

# After a move to another image, start at the question; after a move refused for unsaved text, stay.
FOCUS_AFTER_MOVE_JS = """
() => {
  const q = document.querySelector("#%(q)s textarea");
  if (q && q.value.trim() === "") q.focus();
}
""" % {"q": QUESTION_ID}

CSS = """
#status { min-height: 1.5em; }
#shortcuts { opacity: 0.75; font-size: 0.9em; }
"""

SHORTCUTS = ("Kısayollar: **Enter** (cevap kutusunda) ya da **Ctrl+Enter**: kaydet · **Shift+Enter**: yeni satır · "
             "sorudayken **Enter**: cevaba geç · **Alt+←** / **Alt+→** ya da **PageUp** / **PageDown**: "
             "önceki / sonraki görsel")
TABLE_HEADERS = ["Kimlik", "Kategori", "Soru", "Cevap"]
UNSAVED = "Kaydedilmemiş metin var: önce kaydedin (Enter) ya da kutuları boşaltın, sonra görsel değiştirin."


def build_app(images_dir: str | Path, out_path: str | Path | PairStore, categories=DEFAULT_CATEGORIES):
    """The Gradio UI over a `PairStore`; launch it with `demo.launch(**launch_options(images_dir))`.

    `out_path` may be a path (the store is loaded here, raising AnnotateError for a bad file) or a store.
    """
    import gradio as gr

    images_dir = Path(images_dir)
    images = find_images(images_dir)
    store = out_path if isinstance(out_path, PairStore) else PairStore(out_path)
    categories = list(categories)

    def header(index: int) -> str:
        image = images[index]
        done = len(store.images_with_pairs() & set(images))
        return (f"**{index + 1} / {len(images)}** · `{image}` · bu görselde {len(store.pairs_for(image))} çift · "
                f"toplam {len(store.rows)} çift, {done}/{len(images)} görselde çift var")

    def pairs(index: int):
        """The table of this image's pairs and the choices for deleting one."""
        rows = store.pairs_for(images[index])
        table = [[row.get("id"), row.get("category", ""), question_of(row), answer_of(row)] for row in rows]
        return table, gr.update(choices=[str(row.get("id")) for row in rows], value=None)

    def show(index: int, status: str = ""):
        return index, str(images_dir / images[index]), header(index), *pairs(index), status

    def on_load():
        return show(store.first_without_pairs(images))

    def move(index: int, step: int, question: str, answer: str):
        if (question or "").strip() or (answer or "").strip():
            gr.Warning(UNSAVED, title="Uyarı")  # moving on would throw the typed text away
            return (gr.skip(),) * 5 + (f"⚠️ {UNSAVED}",)
        target = min(max(index + step, 0), len(images) - 1)
        edge = "" if target != index else ("İlk görseldesiniz." if step < 0 else "Son görseldesiniz.")
        return show(target, edge)

    def save(index: int, category: str, question: str, answer: str):
        try:
            row = store.add(images[index], category, question, answer)
        except (PairError, OSError) as exc:
            message = str(exc) if isinstance(exc, PairError) else (
                f"Dosya yazılamadı ({exc.strerror or exc}); çift kaydedilmedi, metin kutularda duruyor.")
            gr.Warning(message, title="Uyarı")
            return gr.skip(), gr.skip(), header(index), *pairs(index), f"⚠️ {message}"
        return "", "", header(index), *pairs(index), f"✅ Kaydedildi: `{row['id']}`"

    def delete(index: int, row_id: str | None):
        if not row_id:
            message = "Silmek için önce tablodan ya da listeden bir çift seçin."
        else:
            try:
                store.delete(row_id)
                return header(index), *pairs(index), f"🗑️ Silindi: `{row_id}`"
            except PairError as exc:
                message = str(exc)
            except OSError as exc:
                message = f"Dosya yazılamadı ({exc.strerror or exc}); çift silinmedi."
        gr.Warning(message, title="Uyarı")
        return header(index), *pairs(index), f"⚠️ {message}"

    def pick(index: int, event: gr.SelectData):
        # Clicking a row of the table chooses it for deletion.
        rows = store.pairs_for(images[index])
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        return gr.update(value=str(rows[row].get("id"))) if 0 <= row < len(rows) else gr.skip()

    # delete_cache: every image shown is copied into Gradio's cache; drop copies older than an hour.
    with gr.Blocks(title="Soru–cevap yazımı · Cosmos-LLaVA", delete_cache=(3600, 3600),
                   analytics_enabled=False) as demo:
        index = gr.State(0)
        gr.Markdown("## Görseller için soru–cevap yazımı\nHer görsel için doğal Türkçe sorular ve "
                    "cevaplarını yazın; bir görsele istediğiniz kadar çift ekleyebilirsiniz. "
                    "Her kayıt dosyaya hemen yazılır.")
        with gr.Row():
            with gr.Column(scale=3):
                image = gr.Image(type="filepath", interactive=False, show_label=False, height="72vh",
                                 buttons=["fullscreen"], elem_id="image")
            with gr.Column(scale=2):
                position = gr.Markdown(elem_id="position")
                category = gr.Radio(categories, value=categories[0], label="Kategori", elem_id="category")
                question = gr.Textbox(label="Soru", lines=1, max_lines=6, autofocus=True, elem_id=QUESTION_ID,
                                      placeholder="Görsel hakkında bir soru yazın…")
                # lines=1 makes Enter submit (Gradio's rule) while Shift+Enter still adds a line.
                answer = gr.Textbox(label="Cevap", lines=1, max_lines=12, elem_id=ANSWER_ID,
                                    placeholder="Cevabı yazın, Enter ile kaydedin…")
                with gr.Row():
                    prev_button = gr.Button("← Önceki", elem_id=PREV_ID)
                    save_button = gr.Button("Kaydet", variant="primary", elem_id=SAVE_ID)
                    next_button = gr.Button("Sonraki →", elem_id=NEXT_ID)
                status = gr.Markdown(elem_id="status")
                gr.Markdown(SHORTCUTS, elem_id="shortcuts")
                table = gr.Dataframe(headers=TABLE_HEADERS, value=[], interactive=False, wrap=True,
                                     label="Bu görselin çiftleri", elem_id="pairs")
                with gr.Row():
                    to_delete = gr.Dropdown([], value=None, label="Silinecek çift", scale=3, elem_id="to-delete")
                    delete_button = gr.Button("Sil", variant="stop", scale=1, elem_id="delete-btn")

        view = [index, image, position, table, to_delete, status]
        hidden = {"api_visibility": "private"}  # a UI, not an API
        demo.load(on_load, outputs=view, **hidden)
        for button, step in ((prev_button, -1), (next_button, 1)):
            button.click(lambda i, q, a, step=step: move(i, step, q, a), [index, question, answer], view,
                         **hidden).then(None, js=FOCUS_AFTER_MOVE_JS)
        saved = [question, answer, position, table, to_delete, status]
        for trigger in (save_button.click, answer.submit):
            trigger(save, [index, category, question, answer], saved, **hidden).then(None, js=FOCUS_JS)
        delete_button.click(delete, [index, to_delete], [position, table, to_delete, status], **hidden)
        table.select(pick, [index], [to_delete], **hidden)
    return demo


def launch_options(images_dir: str | Path) -> dict:
    """What `launch()` needs besides host and port (Gradio 6 takes theme, css and js there)."""
    import gradio as gr

    return {
        "theme": gr.themes.Soft(),
        "css": CSS,
        "js": KEYBOARD_JS,
        # Images outside the working and temp folders may only be served from allowed paths.
        "allowed_paths": [str(Path(images_dir).resolve())],
        "ssr_mode": False,
        "footer_links": ["gradio"],
    }


# -------------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m annotate human",
        description="Write Turkish question–answer pairs about images into a LLaVA-format JSON file.")
    parser.add_argument("--images", required=True, help="folder of images (searched recursively)")
    parser.add_argument("--out", required=True,
                        help="LLaVA JSON file to write; an existing one is loaded and continued")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7861, help="port (default: %(default)s)")
    parser.add_argument("--categories", default=",".join(DEFAULT_CATEGORIES),
                        help="comma-separated question categories (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    return parser


def parse_categories(text: str) -> list[str]:
    categories = list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))  # ordered, unique
    if not categories:
        raise AnnotateError("--categories names no category")
    return categories


def human_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not 0 < args.port < 65536:
            raise AnnotateError(f"--port must be between 1 and 65535, got {args.port}")
        categories = parse_categories(args.categories)
        images = find_images(args.images)  # checked before the slow gradio import
        store = PairStore(args.out)
    except AnnotateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(images)} images, {len(store.rows)} rows already in {args.out}", file=sys.stderr)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    demo = build_app(args.images, store, categories)
    try:
        # Gradio's own banner suggests `share=True` in code; our flag is --share, so it speaks only then.
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, quiet=not args.share,
                    prevent_thread_lock=True, **launch_options(args.images))
    except OSError as exc:  # typically the port is taken
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: cannot serve on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return 1
    print(f"annotating at http://{args.host}:{args.port} (Ctrl-C stops; every save is already on disk)",
          file=sys.stderr, flush=True)
    demo.block_thread()  # until Ctrl-C
    return 0
