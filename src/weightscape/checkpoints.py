"""Model checkpoints of the results tree: safetensors weights + a `model.json` that says how to rebuild the module.

Used by the fine-tuning stage, the spectral stage and the CLI; every failure is one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from weightscape.io import atomic_path, read_json
from weightscape.models import build_model


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit its model; the message names the file."""


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    """State dict as safetensors, written atomically (contiguous copies: safetensors rejects shared storage)."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def load_checkpoint(weights: str | Path, info_json: str | Path | None = None) -> tuple[torch.nn.Module, dict]:
    """Rebuild a model offline: architecture from `info_json` (default: model.json beside the weights),
    weights from the safetensors file, loaded strictly."""
    weights = Path(weights)
    info_json = Path(info_json) if info_json else weights.with_name("model.json")
    for path in (weights, info_json):
        if not path.is_file():
            raise CheckpointError(f"{path}: file not found")
    info = read_json(info_json)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from None
    model = build_model(info["arch"], info["num_classes"], weights="random").module
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when strict=False
        first = str(exc).split("size mismatch for ", 1)[-1].split(":")[0]
        raise CheckpointError(f"{weights}: does not match {info['arch']} with {info['num_classes']} classes "
                              f"(size mismatch for {first})") from None
    if missing or unexpected:
        detail = f"missing {sorted(missing)[:3]}" if missing else f"unexpected {sorted(unexpected)[:3]}"
        raise CheckpointError(f"{weights}: does not match {info['arch']} with {info['num_classes']} classes ({detail})")
    return model, info
