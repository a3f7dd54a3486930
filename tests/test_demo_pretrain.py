"""The demo's vision pretraining with the dense objective: it trains through Trainer and saves a plain
CLIP (the per-patch heads are scaffolding, not part of the checkpoint)."""

import json

import torch
from safetensors import safe_open

from cosmos_llava.demo import pretrain, world


def test_dense_clip_pretraining_saves_a_plain_clip(tmp_path):
    from transformers import CLIPVisionModel

    records = world.write_world(tmp_path / "data", 8, seed=3, size=48, prefix="t")
    pairs = [(tmp_path / "data" / r["image"], c) for r in records for c in r["captions"]]
    targets = [world.patch_targets(r, 3) for r in records for _ in r["captions"]]
    tokenizer = pretrain.train_tokenizer([c for _, c in pairs], tmp_path / "tok", vocab_size=300)
    shape = pretrain.VisionShape(image_size=48, patch_size=16, hidden_size=32, layers=2, heads=2)
    info = pretrain.pretrain_clip(pairs, tokenizer, tmp_path / "clip", shape, steps=3, batch_size=8, progress=False,
                                  patch_targets=targets, target_classes=world.PATCH_TARGET_CLASSES, target_layer=-2)
    assert info["pairs"] == 24 and info["final_loss"] > 0

    with safe_open(str(tmp_path / "clip" / "model.safetensors"), "pt") as weights:
        names = list(weights.keys())
    assert not [n for n in names if "heads" in n]
    assert json.loads((tmp_path / "clip" / "config.json").read_text())["architectures"] == ["CLIPModel"]
    vision = CLIPVisionModel.from_pretrained(tmp_path / "clip")
    pixels = torch.zeros(1, 3, 48, 48)
    assert vision(pixel_values=pixels).last_hidden_state.shape == (1, 10, 32)


def test_dense_clip_loss_adds_the_per_patch_cross_entropies():
    """With all-zero heads every class is equally likely: the dense part is ln 5 + ln 7 + ln 3."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
        text_config=dict(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16),
        projection_dim=32))
    model = pretrain._DenseCLIP(clip, -2, (5, 7, 3))
    torch.nn.init.zeros_(model.heads.weight)
    torch.nn.init.zeros_(model.heads.bias)
    out = model(pixel_values=torch.randn(2, 3, 32, 32), input_ids=torch.randint(0, 50, (2, 5)),
                attention_mask=torch.ones(2, 5, dtype=torch.long), patch_targets=torch.randint(0, 3, (2, 4, 3)))
    expected = torch.log(torch.tensor(5.0)) + torch.log(torch.tensor(7.0)) + torch.log(torch.tensor(3.0))
    assert torch.allclose(out["dense_loss"], expected)
    assert torch.allclose(out["loss"], out["contrastive_loss"] + expected)
