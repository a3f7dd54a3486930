"""Tiny, offline stand-ins for the real checkpoints, built from configs at test time.

Nothing is downloaded: a byte-level BPE tokenizer is trained with `tokenizers` on `data/turkish.txt`,
and CLIP / SigLIP / LLaMA / Mistral models are created from small configs with random weights. Sizes
are multiples of 64 because bitsandbytes' CPU 4-bit kernels work in blocks of 64.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
    SiglipConfig,
    SiglipImageProcessorPil,
    SiglipModel,
)

CORPUS = Path(__file__).parent / "data" / "turkish.txt"
IMAGE_SIZE = 56  # 4 x 4 patches of 14 px
PATCH = 14

# Meta's Llama-3-Instruct chat template, verbatim: the "model's own template" case.
LLAMA3_OWN_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
MISTRAL_SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"]


def train_tokenizer(specials: list[str], vocab_size: int = 512) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train([str(CORPUS)], trainer)
    return tok


def llama3_tokenizer(with_template: bool = True) -> PreTrainedTokenizerFast:
    tok = train_tokenizer(LLAMA3_SPECIALS)
    bos = tok.token_to_id("<|begin_of_text|>")
    # Like the real Llama-3 tokenizer: BOS is added by the post-processor.
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B", special_tokens=[("<|begin_of_text|>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", model_max_length=4096
    )
    if with_template:
        fast.chat_template = LLAMA3_OWN_TEMPLATE
    return fast


def mistral_tokenizer() -> PreTrainedTokenizerFast:
    tok = train_tokenizer(MISTRAL_SPECIALS)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", model_max_length=4096
    )


_VISION = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=2, image_size=IMAGE_SIZE,
    patch_size=PATCH,
)
_TEXT_ENCODER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=2, vocab_size=99)


def save_tiny_clip(out: Path, seed: int = 1) -> Path:
    """A full CLIP (text + vision) checkpoint, like openai/clip-vit-large-patch14-336."""
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(vision_config=_VISION, text_config=_TEXT_ENCODER, projection_dim=64))
    model.save_pretrained(out)
    CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(out)
    return out


def save_tiny_siglip(out: Path, seed: int = 2) -> Path:
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(vision_config=_VISION, text_config=_TEXT_ENCODER))
    model.save_pretrained(out)
    SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(out)
    return out


_LM = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    max_position_embeddings=512, tie_word_embeddings=False,
)


def save_tiny_llama3(out: Path, seed: int = 3, with_template: bool = True) -> Path:
    tok = llama3_tokenizer(with_template)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **_LM
    )
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def save_tiny_mistral(out: Path, seed: int = 4) -> Path:
    tok = mistral_tokenizer()
    torch.manual_seed(seed)
    config = MistralConfig(
        vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, sliding_window=None, **_LM
    )
    MistralForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out
