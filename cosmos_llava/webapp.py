"""The Gradio app's tabs, on the model registry (`registry.py`) and the core conversation model.

Chat tab: a multi-turn conversation in which images can be attached at any turn; replies stream;
stop, regenerate, clear; a model picker and generation settings, reasoning (LLaVA-CoT, `reasoning.py`)
among them: a reasoned reply shows each stage as a collapsible "thought" before its conclusion, and
only the conclusion goes into the conversation the model sees later. Each browser session has its own
`ChatSession`; the models themselves are shared (loaded once, leased per reply). Every problem a
user can cause or meet (a bad file, a message too long, a model failure, out of GPU memory) is shown
as a message in the UI; the app keeps serving everyone else.
"""

from __future__ import annotations

import logging
import queue
import threading

from .conversation import Conversation
from .errors import CosmosLlavaError, first_line
from .generation import GenerationSettings, stream_reply
from .reasoning import (REASONING_MODES, STAGE_NAMES_TR, ReasoningSettings, SelfJudge, conclusion_of, read_stages,
                        reason, reasoning_conversation)
from .registry import LocalBackend, Registry, ReplyStats
from .text import COT_STAGES

log = logging.getLogger(__name__)

LABELS = {
    "tr": {
        "title": "Cosmos-LLaVA: görsellerle Türkçe sohbet",
        "chat": "Sohbet", "model": "Model", "message": "Mesajınızı yazın; görsel eklemek için ataç simgesini kullanın",
        "stop": "Durdur", "regenerate": "Yeniden üret", "clear": "Temizle", "settings": "Üretim ayarları", "examples": "Örnekler",
        "temperature": "Sıcaklık (0: en olası cevap)", "top_p": "Top-p", "max_new_tokens": "En fazla yeni token",
        "empty": "Boş mesaj: bir metin yazın ya da bir görsel ekleyin.",
        "nothing_to_regenerate": "Yeniden üretilecek bir cevap yok.",
        "model_changed": "Model değişti: yeni bir sohbet başladı.",
        "unexpected": "Beklenmeyen bir hata oldu",
        "arena": "Arena (kör karşılaştırma)",
        "arena_intro": ("İki anonim model aynı soruya yan yana cevap verir. Cevaplar bitince hangisinin daha iyi "
                        "olduğunu oylayın; model adları oydan sonra açıklanır. Sohbet birkaç tur sürebilir."),
        "vote_a": "A daha iyi", "vote_b": "B daha iyi", "vote_tie": "Berabere", "vote_bad": "İkisi de kötü",
        "new_round": "Yeni tur", "revealed": "Oyunuz kaydedildi", "your_vote": "oyunuz",
        "winner_names": {"model_a": "A daha iyi", "model_b": "B daha iyi", "tie": "berabere",
                         "tie (bothbad)": "ikisi de kötü"},
        "leaderboard": "Sıralama", "refresh": "Yenile", "no_votes": "Henüz kör oy yok: Arena sekmesinde oy verin.",
        "votes_summary": "{votes} kör oy, {models} model; Bradley-Terry puanı, %95 güven aralığı ({rounds} bootstrap turu)",
        "ratings_plot": "Puanlar ve %95 güven aralıkları", "heatmap": "Satırdaki modelin sütundakini yenme oranı",
        "reasoning": "Akıl yürütme (LLaVA-CoT)",
        "reasoning_modes": {"off": "Kapalı", "cot": "Dört aşamalı cevap (CoT)",
                            "stage-beam": "Aşama aşama arama (her aşamada N aday)",
                            "best-of-n": "N cevabın en iyisi"},
        "candidates": "Aday sayısı (N): aşama araması ve N cevabın en iyisi için",
        "stage_names": dict(STAGE_NAMES_TR),
        "reasoning_needs_local": ("Bu akıl yürütme araması yerel bir model gerektirir; uç nokta modelleri "
                                  "yalnızca dört aşamalı cevap (CoT) verebilir."),
        "reasoning_tokens": "{tokens} token üretildi",
        "reasoning_judge": "yargıç {judge_tokens} token, {comparisons} karşılaştırma",
        "reasoning_unreadable": "{count} karar okunamadı",
        "reasoning_loose": "model dört aşamalı biçime tam uymadı",
    },
    "en": {
        "title": "Cosmos-LLaVA: chat about images in Turkish",
        "chat": "Chat", "model": "Model", "message": "Type a message; attach images with the paperclip",
        "stop": "Stop", "regenerate": "Regenerate", "clear": "Clear", "settings": "Generation settings", "examples": "Examples",
        "temperature": "Temperature (0: most likely answer)", "top_p": "Top-p", "max_new_tokens": "Max new tokens",
        "empty": "Empty message: write some text or attach an image.",
        "nothing_to_regenerate": "There is no reply to regenerate.",
        "model_changed": "The model changed: a new conversation started.",
        "unexpected": "An unexpected error occurred",
        "arena": "Arena (blind)",
        "arena_intro": ("Two anonymous models answer the same message side by side. When both are done, vote for "
                        "the better one; the names are revealed after your vote. The chat may go on for several turns."),
        "vote_a": "A is better", "vote_b": "B is better", "vote_tie": "Tie", "vote_bad": "Both are bad",
        "new_round": "New round", "revealed": "Your vote is recorded", "your_vote": "your vote",
        "winner_names": {"model_a": "A is better", "model_b": "B is better", "tie": "tie",
                         "tie (bothbad)": "both are bad"},
        "leaderboard": "Leaderboard", "refresh": "Refresh", "no_votes": "No blind votes yet: vote in the Arena tab.",
        "votes_summary": "{votes} blind votes, {models} models; Bradley-Terry rating, 95% interval ({rounds} bootstrap rounds)",
        "ratings_plot": "Ratings and 95% intervals", "heatmap": "How often the row model beats the column model",
        "reasoning": "Reasoning (LLaVA-CoT)",
        "reasoning_modes": {"off": "Off", "cot": "Four-stage answer (CoT)",
                            "stage-beam": "Stage-by-stage search (N candidates per stage)",
                            "best-of-n": "Best of N answers"},
        "candidates": "Candidates (N): for stage search and best of N",
        "stage_names": {"SUMMARY": "Summary", "CAPTION": "Image description", "REASONING": "Reasoning",
                        "CONCLUSION": "Conclusion"},
        "reasoning_needs_local": ("This reasoning search needs a local model; endpoint models can only give the "
                                  "four-stage answer (CoT)."),
        "reasoning_tokens": "{tokens} tokens generated",
        "reasoning_judge": "judge {judge_tokens} tokens, {comparisons} comparisons",
        "reasoning_unreadable": "{count} verdicts unreadable",
        "reasoning_loose": "the model did not quite follow the four-stage format",
    },
}


class ChatSession:
    """One browser session's chat: the conversation as the model sees it (images decoded, once).

    A plain class, not a dataclass: Gradio serialises dataclass State values into the page config,
    and deep-copies a State's initial value for each new session (an Event cannot be copied)."""

    def __init__(self, model: str | None = None, conversation: Conversation | None = None):
        self.model, self.conversation = model, conversation
        self.cancel = threading.Event()

    def __deepcopy__(self, memo):
        import copy

        return ChatSession(self.model, copy.deepcopy(self.conversation, memo))


class UserMessage(Exception):
    """Something to tell the user (already in their language); the history is left as it was."""


def _file_path(item) -> str:
    return item if isinstance(item, str) else (item.get("path") or item.get("name"))


def chat_reply(registry: Registry, session: ChatSession, history: list[dict], model: str, text: str,
               files: list, settings: GenerationSettings, labels: dict, regenerate: bool = False,
               reasoning: ReasoningSettings | None = None):
    """Add the user's message (unless regenerating) and stream the reply. Yields (history, notice,
    error): the chat to show, a note for the user, and - last, on failure - what went wrong.

    With `reasoning` (a mode other than "off") the reply is a LLaVA-CoT trace: the chat shows one
    "thought" message per stage before the conclusion (`stage_messages`), the conversation keeps only
    the conclusion, and the last step's notice gives the token counts. A bot reply is every assistant
    message after the last user message, so regenerating replaces all of it.

    On failure the conversation and the chat go back to how they were before this message (a retry
    starts clean). A reply stopped by the user is kept as far as it got."""
    original = list(history)
    history = list(history)
    session.cancel = cancel = threading.Event()
    mode = reasoning.mode if reasoning is not None else "off"
    undo = None
    try:
        if mode in SEARCH_MODES and not registry.spec(model).is_local:
            raise UserMessage(labels["reasoning_needs_local"])
        with registry.use(model) as backend:
            notice = None
            if session.model != model or session.conversation is None:
                if session.conversation is not None and session.conversation.turns:
                    notice, history, original = labels["model_changed"], [], []
                session.model, session.conversation = model, backend.new_conversation()
            conversation = session.conversation
            if regenerate:
                if not conversation.turns or conversation.turns[-1].role != "assistant":
                    raise UserMessage(labels["nothing_to_regenerate"])
                previous = conversation.pop_assistant()
                undo = lambda: conversation.add_assistant(previous)  # noqa: E731
                while history and history[-1]["role"] == "assistant":  # the whole reply, stage blocks included
                    history.pop()
            else:
                if not (text or "").strip() and not files:
                    raise UserMessage(labels["empty"])
                paths = [_file_path(f) for f in files or []]
                conversation.add_user(text or "", paths)  # decodes and checks the images (ImageError)
                undo = lambda: conversation.turns.pop()  # noqa: E731
                history += [{"role": "user", "content": {"path": p}} for p in paths]
                if (text or "").strip():
                    history.append({"role": "user", "content": text.strip()})
            if mode != "off":
                start = len(history)
                outcome = None
                steps = reasoning_steps(backend, conversation, settings, reasoning, cancel, labels["stage_names"])
                try:
                    for messages, outcome in steps:
                        history[start:] = messages
                        if outcome is None:  # the last step comes below, with its notice
                            yield list(history), notice, None
                            notice = None
                finally:
                    steps.close()  # a page gone away: the work stops while the model is still leased
                answer, figures = outcome
                conversation.add_assistant(answer)
                yield list(history), reasoning_notice(figures, labels), None
                return
            history.append({"role": "assistant", "content": ""})
            yield history, notice, None
            reply = ""
            for chunk in backend.stream(conversation, settings, cancel):
                reply += chunk
                history[-1] = {"role": "assistant", "content": reply}
                yield history, None, None
            conversation.add_assistant(reply.strip())
            history[-1] = {"role": "assistant", "content": reply.strip()}
            yield history, None, None
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message, never a traceback
        if undo is not None:  # the reply never completed: the conversation ends where it did before
            undo()
        yield original, None, describe(exc, labels)


# ----------------------------------------------------------------------------------------- reasoning

SEARCH_MODES = ("stage-beam", "best-of-n")
MAX_CANDIDATES = 8


def reasoning_from(mode: str | None, candidates: float, settings: GenerationSettings) -> ReasoningSettings | None:
    """The chat's reasoning settings: the mode and N from the UI, sampling and budget from `settings`
    (the whole trace gets max_new_tokens; a stage-beam stage at most 256 of them). None for "off"."""
    mode = mode or "off"
    if mode not in REASONING_MODES:
        raise CosmosLlavaError(f"reasoning mode must be one of {', '.join(REASONING_MODES)}, got '{mode}'")
    if mode == "off":
        return None
    n = int(candidates)
    if not 1 <= n <= MAX_CANDIDATES:
        raise CosmosLlavaError(f"the number of candidates must be between 1 and {MAX_CANDIDATES}, got {n}")
    result = ReasoningSettings(mode=mode, n=n, temperature=settings.temperature, top_p=settings.top_p,
                               stage_max_tokens=min(ReasoningSettings.stage_max_tokens, settings.max_new_tokens),
                               max_new_tokens=settings.max_new_tokens, seed=settings.seed)
    result.validate()
    return result


def stage_messages(stages: dict[str, str], names: dict[str, str], writing: str | None = None,
                   answer: str | None = None) -> list[dict]:
    """A reasoned reply as chat messages: a "thought" per stage before the conclusion (Gradio shows it
    as a collapsible block titled with the stage's name), then the conclusion as an ordinary message.

    While the reply is under way (`answer` None), `writing` is the stage in progress: its block is
    "pending" (shown empty while a search has not settled it yet), the others "done", and the
    conclusion shows as far as it got. Once finished, `answer` is what the conversation keeps; a
    trace without a CONCLUSION answers with its last stage's text (`conclusion_of`), which is then
    shown once, as the answer."""
    thoughts = [stage for stage in COT_STAGES[:-1] if stage in stages]
    if answer is not None and "CONCLUSION" not in stages and answer.strip() and thoughts \
            and stages[thoughts[-1]].strip() == answer.strip():
        thoughts.pop()
    if answer is None and writing in COT_STAGES[:-1] and writing not in stages:
        stages, thoughts = {**stages, writing: ""}, [*thoughts, writing]
    messages = [{"role": "assistant", "content": stages[stage],
                 "metadata": {"title": names[stage], "status": "pending" if answer is None and stage == writing
                              else "done"}} for stage in thoughts]
    conclusion = answer if answer is not None else stages.get("CONCLUSION")
    if conclusion is not None or not messages:
        messages.append({"role": "assistant", "content": conclusion or ""})
    return messages


def reasoning_steps(backend, conversation: Conversation, settings: GenerationSettings, reasoning: ReasoningSettings,
                    cancel: threading.Event, names: dict[str, str]):
    """The reply to the conversation's last user message in a reasoning mode, step by step: yields
    (messages, outcome), the reply as chat messages (`stage_messages`) and, with the last step only,
    (answer, figures for the notice). The conversation itself is not changed."""
    if reasoning.mode in SEARCH_MODES:
        if not isinstance(backend, LocalBackend):
            raise CosmosLlavaError(f"reasoning mode '{reasoning.mode}' needs a local model")
        yield from _search_steps(backend.loaded, conversation, reasoning, cancel, names)
        return
    # cot: one streamed trace, re-read as it grows so that the stages appear live
    question = reasoning_conversation(conversation)
    stats = ReplyStats(completion_tokens=-1)
    if isinstance(backend, LocalBackend):
        text = "<SUMMARY>"  # the reply is opened with the first tag (an endpoint cannot be made to)
        reply = stream_reply(backend.loaded, question, settings, cancel, assistant_prefix=text)
    else:
        text, reply = "", backend.stream(question, settings, cancel, stats)

    def writing(stages: dict[str, str]) -> str | None:
        current = next((stage for stage in reversed(COT_STAGES) if stage in stages), None)
        return current if current is not None and f"</{current}>" not in text else None

    stages = read_stages(text)
    yield stage_messages(stages, names, writing(stages)), None
    for chunk in reply:
        text += chunk
        stages = read_stages(text)
        yield stage_messages(stages, names, writing(stages)), None
    answer, well_formed = conclusion_of(text)
    tokens = reply.completion_tokens if isinstance(backend, LocalBackend) else stats.completion_tokens
    figures = {"tokens": tokens if tokens >= 0 else None, "well_formed": well_formed}
    yield stage_messages(stages, names, answer=answer), (answer, figures)


def _search_steps(loaded, conversation: Conversation, reasoning: ReasoningSettings, cancel: threading.Event,
                  names: dict[str, str]):
    """stage-beam / best-of-n: `reason` runs on a worker thread and reports each stage as it settles.
    Stop takes effect between stages and between the judge's comparisons (a batch being generated
    runs to its end); what had settled is kept, the last stage standing as the answer."""
    events: queue.Queue = queue.Queue()

    def on_stage(stage: str, text: str) -> None:
        events.put(("stage", stage, text))

    def work() -> None:
        try:
            events.put(("done", reason(loaded, conversation, reasoning, SelfJudge(loaded), on_stage, cancel), None))
        except BaseException as exc:  # noqa: BLE001 - raised again on the listening side
            events.put(("error", exc, None))

    stages: dict[str, str] = {}
    upcoming = COT_STAGES[0] if reasoning.mode == "stage-beam" else None
    yield stage_messages(stages, names, upcoming), None
    worker = threading.Thread(target=work, name="cosmos-llava-reasoning", daemon=True)
    worker.start()
    finished = False
    try:
        while True:
            kind, value, text = events.get()
            if kind == "stage":
                stages[value] = text
                upcoming = next((stage for stage in COT_STAGES if stage not in stages), None)
                if reasoning.mode == "stage-beam" and upcoming is not None:  # (the whole result comes next)
                    yield stage_messages(stages, names, upcoming), None
                continue
            finished = True
            break
    finally:
        if not finished:  # nobody listens any more (the page went away): stop at the next chance
            cancel.set()
            worker.join()  # the model stays leased until its work has stopped
    if kind == "error":
        raise value
    result = value
    if result.cancelled:
        yield stage_messages(result.stages, names, answer=result.answer), (result.answer, {"stopped": True})
        return
    figures = {"tokens": result.generated_tokens, "judge_tokens": result.judge_tokens,
               "comparisons": result.comparisons, "unreadable": result.unreadable_verdicts}
    stages = dict(result.stages)
    if not result.well_formed:  # best-of-n: the answer may be a stage's text rather than a conclusion
        stages.pop("CONCLUSION", None)
    yield stage_messages(stages, names, answer=result.answer), (result.answer, figures)


def reasoning_notice(figures: dict, labels: dict) -> str | None:
    """One line on what a reasoned reply cost; None for a stopped search (its figures are lost)."""
    if figures.get("stopped"):
        return None
    parts = []
    if figures.get("tokens") is not None:
        parts.append(labels["reasoning_tokens"].format(tokens=figures["tokens"]))
    if "comparisons" in figures:
        parts.append(labels["reasoning_judge"].format(**figures))
        if figures["unreadable"]:
            parts.append(labels["reasoning_unreadable"].format(count=figures["unreadable"]))
    if figures.get("well_formed") is False:
        parts.append(labels["reasoning_loose"])
    return f"{labels['reasoning']}: " + "; ".join(parts) if parts else None


def settings_from(temperature: float, top_p: float, max_new_tokens: int) -> GenerationSettings:
    settings = GenerationSettings(temperature=float(temperature), top_p=float(top_p),
                                  max_new_tokens=int(max_new_tokens))
    settings.validate()
    return settings


def describe(exc: BaseException, labels: dict) -> str:
    if isinstance(exc, UserMessage):
        return str(exc)
    if isinstance(exc, CosmosLlavaError):
        return first_line(exc)
    log.exception("unexpected error in the app")
    return f"{labels['unexpected']}: {type(exc).__name__}: {first_line(exc)}"


# ------------------------------------------------------------------------------------------------ UI

def chat_tab(registry: Registry, labels: dict):
    """The chat tab's components and events (call inside a `gr.Blocks`)."""
    import gradio as gr

    with gr.Tab(labels["chat"], id="chat"):
        session = gr.State(ChatSession())  # deep-copied for every browser session
        model = gr.Dropdown(registry.names, value=registry.names[0], label=labels["model"], elem_id="chat-model")
        chatbot = gr.Chatbot(height=480, show_label=False, elem_id="chat-history")
        box = gr.MultimodalTextbox(file_types=["image"], file_count="multiple", placeholder=labels["message"],
                                   show_label=False, submit_btn=True, stop_btn=True, elem_id="chat-input")
        with gr.Row():
            regenerate = gr.Button(labels["regenerate"], elem_id="chat-regenerate")
            clear = gr.Button(labels["clear"], elem_id="chat-clear")
        if registry.examples:  # clicking one fills the message box; the user sends it
            gr.Examples([[{"text": e.text, "files": [e.image]}] for e in registry.examples], inputs=[box],
                        label=labels["examples"], elem_id="chat-examples")
        with gr.Accordion(labels["settings"], open=False, elem_id="chat-settings"):
            temperature = gr.Slider(0.0, 2.0, value=0.2, step=0.05, label=labels["temperature"])
            top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label=labels["top_p"])
            max_new_tokens = gr.Slider(16, 2048, value=512, step=16, label=labels["max_new_tokens"])
            reasoning = gr.Dropdown([(labels["reasoning_modes"][mode], mode) for mode in REASONING_MODES], value="off",
                                    label=labels["reasoning"], elem_id="chat-reasoning")
            candidates = gr.Slider(1, MAX_CANDIDATES, value=4, step=1, label=labels["candidates"],
                                   interactive=False, elem_id="chat-candidates")

    def respond(message, history, state, model_name, temp, p, max_new, mode="off", n=4, regenerate=False):
        message = message or {}
        text, files = message.get("text", ""), message.get("files", [])
        try:
            settings = settings_from(temp, p, max_new)
            reasoning_settings = reasoning_from(mode, n, settings)
        except CosmosLlavaError as exc:
            gr.Warning(first_line(exc))
            yield history, state, message
            return
        for shown, notice, error in chat_reply(registry, state, history or [], model_name, text, files, settings,
                                               labels, regenerate=regenerate, reasoning=reasoning_settings):
            if notice:
                gr.Info(notice)
            if error:
                gr.Warning(error)
                yield shown, state, message  # the user's message comes back to the box: nothing typed is lost
                return
            yield shown, state, None

    def regenerate_reply(history, state, model_name, temp, p, max_new, mode="off", n=4):
        yield from respond(None, history, state, model_name, temp, p, max_new, mode, n, regenerate=True)

    def stop(state):
        state.cancel.set()

    def clear_chat():
        return [], ChatSession(), None

    inputs = [chatbot, session, model, temperature, top_p, max_new_tokens, reasoning, candidates]
    # N matters only to the searches
    reasoning.change(lambda mode: gr.update(interactive=mode in SEARCH_MODES), reasoning, candidates,
                     api_visibility="private", queue=False)
    box.submit(respond, [box, *inputs], [chatbot, session, box], api_name="chat")
    box.stop(stop, [session], None, api_visibility="private", queue=False)
    regenerate.click(regenerate_reply, inputs, [chatbot, session, box], api_name="regenerate")
    clear.click(clear_chat, None, [chatbot, session, box], api_name="clear", queue=False)
    return {"model": model, "chatbot": chatbot, "box": box, "session": session, "reasoning": reasoning,
            "candidates": candidates}


NO_MODELS = {
    "tr": ("### Henüz model yok\nUygulamaya hangi modelleri sunacağını söyleyin: bir model listesi (YAML) yazın ve "
           "`python app.py --models models.yaml` ile başlatın (ya da `COSMOS_LLAVA_MODELS` ortam değişkenini "
           "ayarlayın). Biçim için README'deki \"Web app\" bölümüne bakın."),
    "en": ("### No models yet\nTell the app which models to offer: write a model registry (YAML) and start it with "
           "`python app.py --models models.yaml` (or set `COSMOS_LLAVA_MODELS`). See \"Web app\" in the README "
           "for the format."),
}


def load_app_registry(path: str | None, default_path) -> Registry | None:
    """The registry given, else the bundled demo one; None when there is neither (the app says how)."""
    from pathlib import Path

    from .registry import load_registry

    if path:
        return load_registry(path)
    return load_registry(default_path) if Path(default_path).is_file() else None


def build_app(registry: Registry | None, db_path: str, lang: str = "tr", bootstrap_rounds: int = 100):
    import gradio as gr

    from .arena import Arena, voter_salt
    from .arena_store import ArenaStore

    labels = LABELS[lang]
    with gr.Blocks(title="Cosmos-LLaVA") as demo:
        gr.Markdown(f"## {labels['title']}")
        if registry is None:
            gr.Markdown(NO_MODELS[lang], elem_id="no-models")
            return demo
        note = registry.note.get(lang) or next(iter(registry.note.values()), None)
        if note:
            gr.Markdown(note, elem_id="registry-note")
        store = ArenaStore(db_path)
        with gr.Tabs():
            chat_tab(registry, labels)
            if len(registry.names) >= 2:
                arena_tab(Arena(registry, store, voter_salt(db_path)), labels)
            leaderboard_tab(store, labels, bootstrap_rounds)
    return demo


def launch_options() -> dict:
    """What `launch()` takes besides host and port (Gradio 6: theme and css go there)."""
    import gradio as gr

    return {"theme": gr.themes.Soft(), "ssr_mode": False}


def arena_tab(arena, labels: dict):
    """The blind side-by-side arena (rules in arena.py; the store enforces the vote rules)."""
    import gradio as gr

    from .arena import ArenaSession

    with gr.Tab(labels["arena"], id="arena"):
        gr.Markdown(labels["arena_intro"])
        state = gr.State(ArenaSession())  # deep-copied for every browser session
        with gr.Row():
            left = gr.Chatbot(label="Model A", height=420, elem_id="arena-a")
            right = gr.Chatbot(label="Model B", height=420, elem_id="arena-b")
        box = gr.MultimodalTextbox(file_types=["image"], file_count="multiple", placeholder=labels["message"],
                                   show_label=False, submit_btn=True, stop_btn=True, elem_id="arena-input")
        with gr.Row():
            votes = [gr.Button(labels[key], interactive=False, elem_id=f"vote-{key[5:]}")
                     for key in ("vote_a", "vote_b", "vote_tie", "vote_bad")]
        reveal = gr.Markdown(elem_id="arena-reveal")
        new_round = gr.Button(labels["new_round"], elem_id="arena-new")
        with gr.Accordion(labels["settings"], open=False):
            temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label=labels["temperature"])
            max_new_tokens = gr.Slider(16, 2048, value=512, step=16, label=labels["max_new_tokens"])

    def vote_buttons(enabled: bool):
        return [gr.update(interactive=enabled) for _ in votes]

    def send(message, hist_a, hist_b, session, temp, max_new, request: gr.Request):
        message = message or {}
        text, files = (message.get("text") or "").strip(), [_file_path(f) for f in message.get("files", [])]
        if not session.voter:
            session.voter = arena.voter_for(getattr(request, "session_hash", None) or "anonymous")
        hist_a, hist_b = list(hist_a or []), list(hist_b or [])
        shown = [{"role": "user", "content": {"path": p}} for p in files]
        if text:
            shown.append({"role": "user", "content": text})
        def can_vote() -> bool:  # the store enforces this too; the buttons only mirror it
            battle = session.battle
            return bool(battle and battle.finished and battle.turns and battle.vote is None)

        def show(answer_a: str, answer_b: str):
            return ([*hist_a, *shown, {"role": "assistant", "content": answer_a}],
                    [*hist_b, *shown, {"role": "assistant", "content": answer_b}], session, None,
                    *vote_buttons(can_vote()))

        try:
            for answer_a, answer_b in arena.turn(session, text, files, settings_from(temp, 1.0, max_new)):
                yield show(answer_a, answer_b)  # the last step comes once both answers are finished
        except Exception as exc:  # noqa: BLE001 - a message, never a traceback
            gr.Warning(describe(exc, labels))
            yield hist_a, hist_b, session, message, *vote_buttons(can_vote())

    def stop(session):
        session.cancel.set()

    def cast(winner):
        def handler(session):
            try:
                model_a, model_b = arena.vote(session, winner)
            except Exception as exc:  # noqa: BLE001
                gr.Warning(describe(exc, labels))
                return gr.update(), *vote_buttons(False), gr.update()
            text = (f"**{labels['revealed']}** ({labels['your_vote']}: {labels['winner_names'][winner]}) — "
                    f"**A:** {model_a} · **B:** {model_b}")
            return text, *vote_buttons(False), gr.update(interactive=False)
        return handler

    def start_new_round(session):
        session.battle = None
        return [], [], session, "", gr.update(value=None, interactive=True), *vote_buttons(False)

    box.submit(send, [box, left, right, state, temperature, max_new_tokens], [left, right, state, box, *votes],
               api_name="arena_send")
    box.stop(stop, [state], None, api_visibility="private", queue=False)
    for button, winner in zip(votes, ("model_a", "model_b", "tie", "tie (bothbad)")):
        button.click(cast(winner), [state], [reveal, *votes, box],
                     api_name=f"vote_{winner.replace(' (bothbad)', '_bothbad')}")
    new_round.click(start_new_round, [state], [left, right, state, reveal, box, *votes], api_name="arena_new_round")


def leaderboard_tab(store, labels: dict, rounds: int = 100):
    """Ratings from blind votes: the table (Chatbot Arena's method, in rating.py) and two plots."""
    import gradio as gr

    with gr.Tab(labels["leaderboard"], id="leaderboard") as tab:
        summary = gr.Markdown(elem_id="leaderboard-summary")
        table = gr.Markdown(elem_id="leaderboard-table")
        with gr.Row():
            ratings_plot = gr.Plot(label=labels["ratings_plot"], elem_id="leaderboard-ratings")
            heatmap = gr.Plot(label=labels["heatmap"], elem_id="leaderboard-heatmap")
        refresh = gr.Button(labels["refresh"], elem_id="leaderboard-refresh")

    def compute():
        from . import rating

        battles = store.rating_battles(mode="blind")
        if not battles:
            return labels["no_votes"], "", None, None
        counts = rating.collapse(battles)  # once, for the table and the heatmap (it keeps Elo's order)
        rows = rating.leaderboard(counts, rounds=rounds, seed=0)
        head = labels["votes_summary"].format(votes=len(battles), models=len(rows), rounds=rounds)
        return head, rating.format_table(rows), ratings_figure(rows, labels), heatmap_figure(counts, labels)

    outputs = [summary, table, ratings_plot, heatmap]
    refresh.click(compute, None, outputs, api_name="leaderboard")
    tab.select(compute, None, outputs, api_visibility="private")


def ratings_figure(rows, labels: dict):
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 0.5 * len(rows) + 1.5))
    names = [r.model for r in rows][::-1]
    ratings = [r.rating for r in rows][::-1]
    # the full-data fit can sit outside its bootstrap interval when votes are few: clip the bars at 0
    low = [max(0.0, r.rating - r.ci_low) for r in rows][::-1]
    high = [max(0.0, r.ci_high - r.rating) for r in rows][::-1]
    ax.errorbar(ratings, range(len(rows)), xerr=[low, high], fmt="o", capsize=4)
    ax.set_yticks(range(len(rows)), names)
    ax.set_xlabel("Bradley-Terry")
    ax.set_title(labels["ratings_plot"])
    fig.tight_layout()
    plt.close(fig)
    return fig


def heatmap_figure(counts, labels: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .rating import win_fraction_matrix

    models, matrix = win_fraction_matrix(counts)
    fig, ax = plt.subplots(figsize=(1.2 * len(models) + 2.5, 1.0 * len(models) + 2))
    image = ax.imshow(np.ma.masked_invalid(matrix), vmin=0, vmax=1, cmap="RdYlGn")
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
    ax.set_yticks(range(len(models)), models)
    for i in range(len(models)):
        for j in range(len(models)):
            if not np.isnan(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(labels["heatmap"])
    fig.tight_layout()
    plt.close(fig)
    return fig
