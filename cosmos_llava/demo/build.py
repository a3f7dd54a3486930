"""`python -m cosmos_llava.demo build`: the demo models, from nothing, through the project's own recipe.

    shape world (seeded)  ->  rule-based Turkish teacher  ->  captions, instructions, test set, LM text
    tokenizer + LLaMA-architecture LM (pretrained on the text)   \\
    CLIP-architecture vision encoder (contrastive, image-caption)  -> compose -> stage 1 -> stage 2
    -> eval (held-out scenes of another seed) -> models/<name>/ with a model card

Stage 1 and stage 2 run through `training/` unchanged, with the shipped configs
`training/configs/demo_stage1.yaml` and `demo_stage2.yaml`. Two contestants come out: the full
recipe, and a clearly weaker one that had 8% of its stage 2 (about half an epoch). Every step's
output is kept in the work folder (`--work`), and a step whose output exists is skipped, so an
interrupted build continues.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import CosmosLlavaError

REPO = Path(__file__).resolve().parents[2]
STRONG, WEAK = "cosmos-llava-demo", "cosmos-llava-demo-mini"


@dataclass
class BuildPlan:
    train_scenes: int = 6000
    test_scenes: int = 600
    test_per_type: int = 100
    instructions_per_scene: int = 4
    vocab_size: int = 1024
    # The LM reads the world's text in 256-token blocks, so a description and the questions after it
    # (teacher.lm_corpus) stay in one block. Measured here at 2,000 steps the LM still answered those
    # questions from the text alone only 19-70% of the time, and it made stage 2's loss fall faster from
    # the first epoch; 1,000 steps is what the 45-minute CPU budget leaves.
    lm_steps: int = 1000
    lm_block: int = 256
    lm_batch_size: int = 16
    clip_steps: int = 1500
    # The vision encoder's dense objective (see pretrain._DenseCLIP) against its caption contrast. Measured
    # at 1,200 steps, the share of held-out shape tokens whose kind the head reads right: weight 1, 0.81;
    # 3, 0.90; 10, 0.93 (dense alone, 0.93), while the contrastive loss still fell to 0.09.
    clip_dense_weight: float = 10.0
    stage1_epochs: float = 1.0
    # With demo_stage2.yaml's batch 64, packed: 2,625 updates, 1,532 s of the committed build on 2 CPU cores
    # (about 215 s an epoch after about 28 s of start-up; 5.5 epochs took as long before training reused
    # its start-up encoding). An H200 ran 8 epochs (16 px patches, padded) in 2 minutes: colour 0.90 and
    # position 0.91 there, against 0.53 and 0.40 at 5 epochs on this CPU.
    stage2_epochs: float = 7.0
    stage2_batch_size: int | None = None  # None: demo_stage2.yaml's
    weak_fraction: float = 0.08  # of stage 2's epochs (0.56), for the weaker contestant
    image_size: int = 96
    # One patch per cell of the world's 3 x 3 grid, so each of the 9 image tokens holds one whole shape or
    # nothing. Measured against 16 px (36 tokens, a shape over 2 x 2 patches): the contrastive+dense loss
    # ended at 0.066 instead of 0.154, the encoder trained in 305 s instead of 456, and a packed stage-2
    # step computes in 6.1 instead of 9.4 ms per row.
    patch_size: int = 32
    text_hidden: int = 128
    text_layers: int = 4
    # The projector reads the tower's embedding output (exact colour and absolute position per patch) next
    # to its second-to-last layer (shape), as several-layer LLaVA variants do.
    vision_layers: tuple[int, ...] = (0, -2)
    # LLaVA-1's linear projector: measured here, the small LM learned to find a named shape among the
    # image tokens several hundred steps sooner through it than through mlp2x_gelu.
    projector: str = "linear"
    seed: int = 1  # training scenes; the test scenes use seed + 1000

    @classmethod
    def quick(cls) -> "BuildPlan":
        """The CI build (about 2 minutes on 2 CPU cores): 600 scenes, a half-size LM (2 layers, hidden 64)
        and few pretraining steps, then 5 epochs of stage 2 at batch 8 (1,500 updates). What it learns in
        that time is how many shapes a scene holds, so its bar (QUICK_BAR) is on counting. Measured here
        (50 questions per category): counting 0.72 (all shapes: 27 of 30) in 117 s, and with seed 2
        0.68 in 112 s; yes/no, colour and position stay at chance. Stage-2 epochs are what counting
        needs (800 scenes: 2 epochs 0.50, 3 epochs 0.56, 4 epochs 0.78); the half-size LM is what lets
        5 epochs fit (a stage-2 row cost 8.5 ms instead of 14.5)."""
        return cls(train_scenes=600, test_scenes=200, test_per_type=50, instructions_per_scene=4, text_hidden=64,
                   text_layers=2, lm_steps=80, clip_steps=60, stage1_epochs=1.0, stage2_epochs=5.0,
                   stage2_batch_size=8, weak_fraction=0.1)


# The reduced build's accuracy bar (chance is 0.20; the weaker contestant, at half an epoch, 0.00).
QUICK_BAR = {"sayma_exact": 0.50}


_STARTED: dict[str, float] = {}


def _step(work: Path, name: str, echo) -> bool:
    """True when the step still has to run (its marker file is missing)."""
    if (work / f".done-{name}").exists():
        echo(f"[{name}] done earlier, skipped")
        return False
    echo(f"[{name}] ...")
    _STARTED[name] = time.perf_counter()
    return True


def _done(work: Path, name: str, info: dict | None = None) -> None:
    """The step's marker, with what it reported and how long it took (summed into the build time)."""
    seconds = round(time.perf_counter() - _STARTED.pop(name), 1)
    (work / f".done-{name}").write_text(json.dumps({**(info or {}), "seconds": seconds}, ensure_ascii=False),
                                        encoding="utf-8")


def step_seconds(work: Path) -> float:
    """The time of every finished step, also those of earlier, interrupted runs of this build."""
    return sum(json.loads(marker.read_text(encoding="utf-8")).get("seconds", 0.0) for marker in work.glob(".done-*"))


def _write_json(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


def write_test_set(folder: Path, plan: BuildPlan) -> list[dict]:
    """The held-out scenes (seed + 1000) drawn into `folder`/images and their scored questions in
    `folder`/test.json; returns the scene records."""
    from . import teacher, world

    test = world.write_world(folder, plan.test_scenes, plan.seed + 1000, size=plan.image_size, prefix="test")
    _write_json(folder / "test.json", teacher.test_rows(test, random.Random(plan.seed + 1000), plan.test_per_type))
    return test


def make_data(work: Path, plan: BuildPlan, echo) -> None:
    from . import teacher, world

    data = work / "data"
    if _step(work, "data", echo):
        train = world.write_world(data / "train", plan.train_scenes, plan.seed, size=plan.image_size, prefix="egitim")
        test = write_test_set(data / "test", plan)
        rng = random.Random(plan.seed)
        _write_json(data / "train" / "captions.json", teacher.caption_rows(train, rng))
        _write_json(data / "train" / "instructions.json",
                    teacher.instruction_rows(train, rng, plan.instructions_per_scene))
        corpus = teacher.lm_corpus(train, rng)
        (data / "corpus.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
        _write_json(data / "train" / "scenes.json", train)
        _done(work, "data", {"train_scenes": len(train), "test_scenes": len(test)})


def base_models(work: Path, plan: BuildPlan, progress: bool, echo) -> None:
    from . import pretrain

    data = work / "data"
    if _step(work, "language-model", echo):
        texts = (data / "corpus.txt").read_text(encoding="utf-8").splitlines()
        instructions = json.loads((data / "train" / "instructions.json").read_text(encoding="utf-8"))
        # The tokenizer also sees the questions as asked, so their words are single tokens too.
        texts += [turn["value"].replace("<image>\n", "") for row in instructions for turn in row["conversations"]]
        tokenizer = pretrain.train_tokenizer(texts, work / "llm", plan.vocab_size)
        shape = pretrain.TextShape(hidden_size=plan.text_hidden, layers=plan.text_layers,
                                   intermediate_size=3 * plan.text_hidden)
        info = pretrain.pretrain_lm(texts, tokenizer, work / "llm", shape, plan.lm_steps, batch_size=plan.lm_batch_size,
                                    block=plan.lm_block, progress=progress)
        _done(work, "language-model", info)
        echo(f"  language model: {info}")
    if _step(work, "vision-encoder", echo):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(work / "llm")
        scenes = json.loads((data / "train" / "scenes.json").read_text(encoding="utf-8"))
        from .world import PATCH_TARGET_CLASSES, patch_targets

        pairs, targets = [], []
        for s in scenes:  # one pair per caption; the scene's patch targets are the same for each
            scene_targets = patch_targets(s, plan.image_size // plan.patch_size)
            for caption in s["captions"]:
                pairs.append((data / "train" / s["image"], caption))
                targets.append(scene_targets)
        shape = pretrain.VisionShape(image_size=plan.image_size, patch_size=plan.patch_size)
        info = pretrain.pretrain_clip(pairs, tokenizer, work / "clip", shape, plan.clip_steps, progress=progress,
                                      patch_targets=targets, target_classes=PATCH_TARGET_CLASSES,
                                      target_layer=plan.vision_layers[-1], dense_weight=plan.clip_dense_weight)
        _done(work, "vision-encoder", info)
        echo(f"  vision encoder: {info}")
    if _step(work, "compose", echo):
        from ..compose import compose

        compose(str(work / "clip"), str(work / "llm"), projector=plan.projector, out=work / "base", template="llama3",
                system_prompt="", vision_feature_layer=plan.vision_layers)
        _done(work, "compose")


def _train(config: str, overrides: dict, echo) -> None:
    from training.config import load_config
    from training.engine import train

    items = [f"{key}={value}" for key, value in overrides.items()]
    echo(f"  python -m training --config {config} {' '.join(items)}")
    train(load_config(str(REPO / config), items), echo=lambda line: echo(f"  {line}"))


def stages(work: Path, plan: BuildPlan, progress: bool, echo) -> None:
    data = work / "data" / "train"
    if _step(work, "stage1", echo):
        _train("training/configs/demo_stage1.yaml", {
            "model": work / "base", "data": data / "captions.json", "image_folder": data,
            "output_dir": work / "stage1", "num_train_epochs": plan.stage1_epochs, "disable_tqdm": not progress}, echo)
        _done(work, "stage1")
    for name, epochs in ((STRONG, plan.stage2_epochs), (WEAK, plan.stage2_epochs * plan.weak_fraction)):
        if _step(work, f"stage2-{name}", echo):
            batch = {} if plan.stage2_batch_size is None else {"per_device_train_batch_size": plan.stage2_batch_size}
            _train("training/configs/demo_stage2.yaml", {
                "model": work / "stage1", "data": data / "instructions.json", "image_folder": data,
                "output_dir": work / name, "num_train_epochs": round(epochs, 3), "disable_tqdm": not progress,
                **batch}, echo)
            _done(work, f"stage2-{name}")


def export(work: Path, out: Path, names: list[str], echo) -> None:
    """The trained models as they ship: float16 safetensors (half the size; loaded back as float32 on
    a CPU) with their processor, in `out/<name>/`."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from ..compose import save

    for name in names:
        model = AutoModelForImageTextToText.from_pretrained(work / name, dtype=torch.float16)
        processor = AutoProcessor.from_pretrained(work / name, backend="pil")
        shutil.rmtree(out / name, ignore_errors=True)
        save(model, processor, out / name)
        size = sum(f.stat().st_size for f in (out / name).glob("*.safetensors"))
        echo(f"  {out / name}: {size / 2**20:.1f} MiB of weights")


def evaluate(work: Path, models: Path, names: list[str], progress: bool, echo) -> dict:
    """The exported models on the held-out test scenes, through the project's `eval`."""
    from ..evaluation.run import AnswerSettings, EvalPlan, read_items, run_eval
    from ..registry import ModelSpec

    test = work / "data" / "test" / "test.json"
    specs = [ModelSpec(name=name, model=str(models / name)) for name in names]
    plan = EvalPlan(specs, read_items(test, None), work / "eval", ["binary", "exact"],
                    AnswerSettings(max_new_tokens=8, batch_size=32, progress=progress), None, str(test))
    shutil.rmtree(work / "eval", ignore_errors=True)  # the models changed: answer afresh
    return run_eval(plan, echo=lambda line: echo(f"  {line}"))


def scores(summary: dict, name: str) -> dict:
    """The quality-bar figures of one model: yes/no accuracy and F1, exact match per short category."""
    model = summary["models"][name]
    binary = model["binary"].get("overall", {})
    exact = model["exact"]
    return {"yes_no_accuracy": binary.get("accuracy"), "yes_no_f1": binary.get("f1"),
            **{f"{category}_exact": (exact.get(category) or {}).get("accuracy") for category in ("renk", "sayma", "konum")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cosmos_llava.demo build",
                                     description="Rebuild the demo models from scratch and evaluate them.")
    parser.add_argument("--work", default="build/demo", help="work folder (a rerun continues where it stopped)")
    parser.add_argument("--out", default=str(REPO / "models"), help="where the finished models go")
    parser.add_argument("--quick", action="store_true", help="the small CI build (minutes on a CPU)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="delete the work folder first")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    args = parser.parse_args(argv)
    plan = BuildPlan.quick() if args.quick else BuildPlan()
    work = Path(args.work)
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def echo(line: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {line}", file=sys.stderr, flush=True)

    plan_file = work / "plan.json"
    recorded = json.dumps(asdict(plan))
    if plan_file.exists() and json.loads(plan_file.read_text()) != json.loads(recorded):  # tuples come back as lists
        raise CosmosLlavaError(f"{work} was built with another plan; use --fresh or another --work")
    plan_file.write_text(recorded, encoding="utf-8")
    make_data(work, plan, echo)
    base_models(work, plan, not args.no_progress, echo)
    stages(work, plan, not args.no_progress, echo)
    out = Path(args.out)
    finishing = time.perf_counter()
    echo("[export] ...")
    export(work, out, [STRONG, WEAK], echo)
    echo("[eval] ...")
    summary = evaluate(work, out, [STRONG, WEAK], not args.no_progress, echo)
    figures = {name: scores(summary, name) for name in (STRONG, WEAK)}
    # The build's time: its steps (of this run or an interrupted earlier one), then export and eval now.
    seconds = step_seconds(work) + time.perf_counter() - finishing
    write_cards(out, work, plan, figures, seconds)
    (work / "scores.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
    for name, values in figures.items():
        echo(f"{name}: " + ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in values.items()))
    if args.quick:
        for key, bar in QUICK_BAR.items():
            value = figures[STRONG][key]
            verdict = "cleared" if value is not None and value >= bar else "NOT cleared"
            shown = "-" if value is None else f"{value:.2f}"
            echo(f"quick build's bar: {LABELS[key]} {shown} >= {bar:.2f}: {verdict}")
    echo(f"built in {seconds:.0f} s; models, cards and registry in {out}")
    return 0


BAR = {"yes_no_accuracy": 0.95, "yes_no_f1": 0.95, "renk_exact": 0.90, "sayma_exact": 0.85, "konum_exact": 0.85}
LABELS = {"yes_no_accuracy": "yes/no accuracy", "yes_no_f1": "yes/no F1", "renk_exact": "colour, exact match",
          "sayma_exact": "counting (1-5), exact match", "konum_exact": "position, exact match"}


def write_cards(out: Path, work: Path, plan: BuildPlan, figures: dict, seconds: float) -> None:
    """A model card per model (how it was made, its scores) and the app registry `out/demo.yaml`."""
    import platform

    import torch

    machine = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{platform.processor() or 'CPU'}, " \
        f"{torch.get_num_threads()} threads"
    table = ["| metric (held-out scenes, seed %d) | %s | %s | bar |" % (plan.seed + 1000, STRONG, WEAK),
             "| --- | ---: | ---: | ---: |"]
    for key, label in LABELS.items():
        cells = [f"{figures[n][key]:.3f}" if figures[n][key] is not None else "—" for n in (STRONG, WEAK)]
        table.append(f"| {label} | {cells[0]} | {cells[1]} | {BAR[key]:.2f} |")
    recipe = {STRONG: f"{plan.stage2_epochs:g} epochs of stage 2",
              WEAK: f"{plan.stage2_epochs * plan.weak_fraction:g} epochs of stage 2 ({plan.weak_fraction:.0%} of the full recipe's)"}
    for name in (STRONG, WEAK):
        card = f"""# {name}

A **demo** model for Cosmos-LLaVA's synthetic shape world: it answers Turkish questions about images
of circles, squares, triangles and stars in six colours (daire, kare, üçgen, yıldız; kırmızı, mavi,
yeşil, sarı, mor, turuncu), two sizes and five positions. It knows nothing else; load a real model
(for example Cosmos' Turkish-LLaVA) for real images.

## How it was made
`python -m cosmos_llava.demo build`, from nothing, on this machine ({machine}), in {seconds / 60:.0f} minutes
for both models:
1. {plan.train_scenes} scenes drawn at {plan.image_size} px (seed {plan.seed}); the rule-based Turkish teacher
   (`cosmos_llava/demo/teacher.py`) wrote captions, {plan.instructions_per_scene} instruction rows per scene
   (yes/no, colour, counting, position, descriptions, reasoning, multi-turn) and the text for the LM.
2. A byte-level BPE tokenizer ({plan.vocab_size} tokens at most) and a LLaMA-architecture LM ({plan.text_layers}
   layers, hidden {plan.text_hidden}, untied embeddings) pretrained on that text ({plan.lm_steps} steps of
   {plan.lm_batch_size} x {plan.lm_block} tokens; each scene's description followed by questions about it); a
   CLIP-architecture vision encoder (ViT, 4 layers, hidden 128, {plan.patch_size} px patches, position embedding
   started from a 2-D sin-cos table) pretrained on the image-caption pairs ({plan.clip_steps} steps): CLIP's
   contrastive loss plus a dense one (weight {plan.clip_dense_weight:g}), in which every patch token of layer
   {plan.vision_layers[-1]} names the kind, colour and size of the shape in its cell and the cell's place (heads
   dropped afterwards).
3. `compose` ({plan.projector} projector reading vision layer(s) {", ".join(map(str, plan.vision_layers))}, llama3 chat
   template, no system prompt), then `training/` unchanged:
   stage 1 (`training/configs/demo_stage1.yaml`) and {recipe[name]}
   (`training/configs/demo_stage2.yaml`: full, rows packed into padding-free batches, the vision tower frozen).
4. Saved in float16.

## Scores
Measured by `python -m cosmos_llava eval` (metrics `binary`, `exact`) on {plan.test_per_type} questions per
category from {plan.test_scenes} held-out scenes of another seed; every question ends with "Tek kelimeyle
cevap ver." as in training.

{chr(10).join(table)}

The bar column is the quality the recipe aims at; a figure below it has not been reached yet (see
the project README's status of the demo models).
"""
        (out / name / "README.md").write_text(card, encoding="utf-8")
        # The same figures for machines, so a model folder can be checked against its card.
        (out / name / "scores.json").write_text(json.dumps(
            {"held_out": figures[name], "test_seed": plan.seed + 1000, "questions_per_category": plan.test_per_type,
             "build_seconds": round(seconds)}, indent=1), encoding="utf-8")
    write_registry(out, work)


NOTE = {
    "tr": ("**Demo modelleri.** Bu iki küçük model yalnızca projenin sentetik şekil dünyasını bilir (daire, kare, "
           "üçgen, yıldız; altı renk; iki boyut; beş konum) ve `python -m cosmos_llava.demo build` ile sıfırdan "
           "eğitildi. Aşağıdaki örneklerden birini deneyin. Gerçek görseller için gerçek bir model yükleyin: "
           "`python app.py --models models.yaml` (README, \"Web app\")."),
    "en": ("**Demo models.** These two small models know only the project's synthetic shape world (circle, "
           "square, triangle, star; six colours; two sizes; five positions) and were trained from scratch by "
           "`python -m cosmos_llava.demo build`. Try one of the examples below. For real images load a real "
           "model: `python app.py --models models.yaml` (README, \"Web app\")."),
}


def write_registry(out: Path, work: Path, per_category: int = 2) -> None:
    """`out/demo.yaml`, the registry `python app.py` serves by default, with example questions on
    held-out scenes (their images copied next to it)."""
    import yaml

    rows = json.loads((work / "data" / "test" / "test.json").read_text(encoding="utf-8"))
    examples, taken = [], {}
    folder = out / "demo-examples"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for row in rows:
        if taken.get(row["category"], 0) >= per_category:
            continue
        taken[row["category"]] = taken.get(row["category"], 0) + 1
        image = folder / Path(row["image"]).name
        shutil.copyfile(work / "data" / "test" / row["image"], image)
        examples.append({"image": f"demo-examples/{image.name}",
                         "text": row["conversations"][0]["value"].replace("<image>\n", "")})
    registry = {"max_resident": 2, "note": NOTE, "examples": examples,
                "models": [{"name": STRONG, "model": STRONG}, {"name": WEAK, "model": WEAK}]}
    header = "# The demo models python app.py serves by default; rebuilt by python -m cosmos_llava.demo build.\n"
    (out / "demo.yaml").write_text(header + yaml.safe_dump(registry, allow_unicode=True, sort_keys=False),
                                   encoding="utf-8")

