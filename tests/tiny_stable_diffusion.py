"""A tiny randomly initialized Stable Diffusion pipeline built offline (no hub): the same components as the real
one (UNet2DConditionModel, AutoencoderKL, CLIP text encoder + BPE tokenizer, DDIM), a few thousand parameters, so
the real loading (`from_pretrained` of a saved directory) and sampling code runs in CI."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def _byte_vocab() -> list[str]:
    """The 256 byte-level symbols of GPT-2/CLIP BPE (transformers' bytes_to_unicode)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    symbols, extra = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def write_tokenizer_files(directory: Path) -> tuple[Path, Path]:
    """vocab.json + merges.txt of a character-level CLIP tokenizer (no merges: every word splits into bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    symbols = _byte_vocab()
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    vocab, merges = directory / "vocab.json", directory / "merges.txt"
    vocab.write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
    merges.write_text("#version: 0.2\n")
    return vocab, merges


def save_tiny_pipeline(directory: Path) -> Path:
    """Build the tiny pipeline with fixed seeds and `save_pretrained` it to `directory`."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=4)
    vocab, merges = write_tokenizer_files(directory / "_tokenizer_files")
    tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=64)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                                num_attention_heads=2, num_hidden_layers=2,
                                                max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id,
                                                eos_token_id=tokenizer.eos_token_id,
                                                pad_token_id=tokenizer.pad_token_id, projection_dim=16))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)  # as Stable Diffusion v1.x ships it
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipeline.save_pretrained(directory / "pipeline")
    return directory / "pipeline"
