"""The demo's two base models, made from scratch on the shape world: a Turkish BPE tokenizer and a
small LLaMA-architecture LM pretrained on the world's text, and a small CLIP-architecture vision
encoder pretrained contrastively on the world's image-caption pairs, with a dense per-patch objective
beside the contrast. Both are saved as ordinary checkpoints (like a hub LLM and
`openai/clip-vit-large-patch14-336`), so `compose` and `training/` take them exactly as they take real
ones.

Both pretraining loops run on `transformers.Trainer` (the LM with its causal loss, CLIP with
`return_loss=True` and the dense loss added), so device placement, bf16 on GPUs, schedules and
progress bars come from there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CosmosLlavaError

# The LLaMA-3 special tokens, so the model uses the llama3 chat template as Cosmos' LLaMA-3 models do.
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
            "<|pad|>"]


@dataclass
class VisionShape:
    image_size: int = 96
    patch_size: int = 16  # 6 x 6 = 36 patches (36 image tokens); a region of the world is 2 x 2 patches
    hidden_size: int = 128
    layers: int = 4
    heads: int = 4

    def __post_init__(self):
        # Checked here, where the numbers are chosen, so a bad shape fails in one line before the encoder is
        # built (the sin-cos position start splits the width into quarters; attention splits it into heads).
        if self.image_size % self.patch_size:
            raise CosmosLlavaError(f"vision image_size {self.image_size} is not a multiple of "
                                   f"patch_size {self.patch_size}")
        if self.hidden_size % 4 or self.hidden_size % self.heads:
            raise CosmosLlavaError(f"vision hidden_size {self.hidden_size} must be a multiple of 4 (the 2-D sin-cos "
                                   f"position table) and of heads ({self.heads})")


@dataclass
class TextShape:
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 768
    max_positions: int = 512


def train_tokenizer(texts: list[str], out: Path, vocab_size: int = 1024):
    """A byte-level BPE tokenizer (any input can be encoded) with LLaMA-3's special tokens; BOS is
    added by the post-processor, as in the real LLaMA-3 tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B", special_tokens=[("<|begin_of_text|>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|pad|>", model_max_length=TextShape.max_positions)
    fast.save_pretrained(out)
    return fast


class _Blocks(torch.utils.data.Dataset):
    def __init__(self, blocks: list[list[int]]):
        self.blocks = blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, index):
        ids = torch.tensor(self.blocks[index])
        return {"input_ids": ids, "labels": ids.clone()}


def pretrain_lm(texts: list[str], tokenizer, out: Path, shape: TextShape, steps: int, batch_size: int = 32,
                block: int = 128, learning_rate: float = 1e-3, seed: int = 0, progress: bool = True) -> dict:
    """Pretrain a LLaMA-architecture LM on `texts` (shuffled, joined with EOS, packed into blocks)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    rng = random.Random(seed)
    texts = list(texts)
    rng.shuffle(texts)
    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=True)["input_ids"] + [tokenizer.eos_token_id]
    blocks = [stream[i:i + block] for i in range(0, len(stream) - block + 1, block)]
    torch.manual_seed(seed)
    # Untied input and output embeddings, as LLaMA-3-8B's: measured on this world, a tied 4-layer LM
    # learned "which token names the shape" lookups hundreds of steps later than an untied one.
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=shape.hidden_size,
                         intermediate_size=shape.intermediate_size, num_hidden_layers=shape.layers,
                         num_attention_heads=shape.heads, num_key_value_heads=shape.heads,
                         max_position_embeddings=shape.max_positions, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config)
    loss = _train(model, _Blocks(blocks), out, steps, batch_size, learning_rate, seed, progress, "LM")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"tokens": len(stream), "blocks": len(blocks), "final_loss": loss}


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, pairs: list[tuple[Path, str]], image_processor, tokenizer, max_length: int,
                 targets: list | None = None):
        self.pairs, self.image_processor, self.tokenizer, self.max_length = pairs, image_processor, tokenizer, max_length
        self.targets = targets

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        from PIL import Image

        path, caption = self.pairs[index]
        with Image.open(path) as image:
            pixels = self.image_processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]
        ids = self.tokenizer(caption, add_special_tokens=False)["input_ids"][: self.max_length - 1]
        row = {"pixel_values": pixels, "input_ids": ids + [self.tokenizer.eos_token_id]}
        if self.targets is not None:
            row["patch_targets"] = torch.tensor(self.targets[index])
        return row


def _pair_collate(pad_id: int):
    def collate(rows):
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, :len(r["input_ids"])] = 1
        batch = {"pixel_values": torch.stack([r["pixel_values"] for r in rows]), "input_ids": ids,
                 "attention_mask": mask, "return_loss": True}
        if "patch_targets" in rows[0]:
            batch["patch_targets"] = torch.stack([r["patch_targets"] for r in rows])
        return batch
    return collate


class _DenseCLIP(torch.nn.Module):
    """CLIP's contrastive loss plus a dense one: from each patch token of the layer the projector reads,
    linear heads name the kind, colour and size of the shape in the patch's cell (or "empty") and the
    cell's region (see world.patch_targets for why the region).

    Why: the caption contrast alone leaves the shape *kind* only partly readable per token (a linear
    probe on the contrastive encoder's tokens finds a region's kind 82% of the time, a single token's
    62%, the colour always), and an LLM can only learn "where is the square?" if every token of the
    square says "square" (with this objective the same probes read 99.8% and 99%). Real encoders add
    such dense objectives for the same reason (SigLIP 2's LocCa captioning of regions, RegionCLIP's
    region-text alignment). Only the CLIP is saved; the heads are pretraining scaffolding."""

    def __init__(self, clip, layer: int, classes: tuple[int, ...], weight: float = 1.0):
        super().__init__()
        self.clip, self.layer, self.classes, self.weight = clip, layer, classes, weight
        self.heads = torch.nn.Linear(clip.config.vision_config.hidden_size, sum(classes))

    def forward(self, pixel_values, input_ids, attention_mask, patch_targets, return_loss=True):
        # return_loss is accepted because the shared pair collate sends it; this model always returns a loss.
        out = self.clip(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask,
                        return_loss=True, output_hidden_states=True)
        tokens = out.vision_model_output.hidden_states[self.layer][:, 1:]  # the class token carries no cell
        logits = self.heads(tokens).split(self.classes, dim=-1)
        dense = sum(torch.nn.functional.cross_entropy(part.flatten(0, 1).float(), patch_targets[..., i].flatten())
                    for i, part in enumerate(logits))
        return {"loss": out.loss + self.weight * dense, "contrastive_loss": out.loss.detach(), "dense_loss": dense.detach()}


def pretrain_clip(pairs: list[tuple[Path, str]], tokenizer, out: Path, shape: VisionShape, steps: int,
                  batch_size: int = 64, learning_rate: float = 1e-3, seed: int = 0, progress: bool = True,
                  patch_targets: list | None = None, target_classes: tuple[int, ...] = (),
                  target_layer: int = -2, dense_weight: float = 1.0) -> dict:
    """Contrastive (CLIP) pretraining of a vision tower with a small text tower on image-caption pairs;
    the checkpoint and its image processor are saved like a hub CLIP.

    With `patch_targets` (per pair, one tuple of class indices per patch, row-major; `target_classes`
    gives each position's number of classes), the dense objective of `_DenseCLIP` is added on the
    vision layer `target_layer`, weighted by `dense_weight`."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    torch.manual_seed(seed)
    vision = dict(hidden_size=shape.hidden_size, intermediate_size=4 * shape.hidden_size,
                  num_hidden_layers=shape.layers, num_attention_heads=shape.heads, image_size=shape.image_size,
                  patch_size=shape.patch_size)
    text = dict(vocab_size=len(tokenizer), hidden_size=shape.hidden_size, intermediate_size=4 * shape.hidden_size,
                num_hidden_layers=2, num_attention_heads=shape.heads, max_position_embeddings=64,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                bos_token_id=tokenizer.bos_token_id)
    model = CLIPModel(CLIPConfig(vision_config=vision, text_config=text, projection_dim=shape.hidden_size))
    _init_positions(model.vision_model.embeddings)
    processor = CLIPImageProcessorPil(size={"shortest_edge": shape.image_size},
                                      crop_size={"height": shape.image_size, "width": shape.image_size})
    dataset = _Pairs(pairs, processor, tokenizer, max_length=64, targets=patch_targets)
    trained = model if patch_targets is None else _DenseCLIP(model, target_layer, target_classes, dense_weight)
    loss = _train(trained, dataset, out, steps, batch_size, learning_rate, seed, progress, "CLIP",
                  collate=_pair_collate(tokenizer.pad_token_id))
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return {"pairs": len(pairs), "final_loss": loss}


def sincos_positions(side: int, dim: int) -> torch.Tensor:
    """MAE's 2-D sin-cos position table, (side * side, dim) in row-major patch order: the first half of
    the channels encodes the row, the second half the column, each as sines and cosines of geometric
    frequencies. Every row of the table has norm sqrt(dim / 2)."""
    quarter = dim // 4
    freqs = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    rows, cols = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                                indexing="ij")

    def encode(coordinate):
        angles = coordinate.flatten()[:, None] * freqs[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(rows), encode(cols)], dim=1)


def _init_positions(embeddings) -> None:
    """Start the (learned) position embedding from a 2-D sin-cos table instead of CLIP's N(0, 0.02).
    Why: a raw 16 x 16 x 3 patch projects to a vector of norm about 10, so a 0.02-scale position
    embedding is a few per cent of the patch embedding. A few hundred steps never grow it to matter,
    and then position is nearly lost in the patch features (a linear probe finds a patch's own cell about
    half the time). The table has about the patch embedding's norm, so "left" and "top" survive into
    the features the LLM reads. The class token's slot stays zero, as in MAE."""
    weight = embeddings.position_embedding.weight
    with torch.no_grad():
        weight.zero_()
        weight[1:] = sincos_positions(embeddings.image_size // embeddings.patch_size, weight.shape[1])


def _train(model, dataset, out: Path, steps: int, batch_size: int, learning_rate: float, seed: int, progress: bool,
           name: str, collate=None) -> float | None:
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(out / "trainer"), max_steps=steps, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20), weight_decay=0.01,
        logging_steps=max(1, steps // 10), save_strategy="no", report_to="none", seed=seed, data_seed=seed,
        disable_tqdm=not progress, dataloader_num_workers=0, remove_unused_columns=False,
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(), use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    model.to("cpu")
    return losses[-1] if losses else None
