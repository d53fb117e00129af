"""What a layer's weights can and cannot do at the model's input size, probed with random inputs, not read from
layer names: kernel taps that cannot learn (`dead_taps`), and layers whose scale does not change the function
(`scale_effect`).

Dead taps. 
At 48 px an EfficientNet's last stage works on 2 x 2 maps, so the outer 16 taps of a 5 x 5 kernel only ever
multiply padding: their gradient is exactly zero for every input, fine-tuning leaves them where they were, and only
an optimizer term that ignores the gradient (coupled L2 weight decay) moves them. In the "ww" convention those taps
are eigenvalues of the layer's ESD, so they would decide its entropy and stable rank.

`dead_taps` runs one forward and backward pass of random inputs of the model's size (eval mode, a random linear
read-out of the output) and returns, per conv weight, the kernel positions whose gradient is exactly zero in every
output and input channel. Zero is exact for a tap that sees only padding (its products are all 0 * w) whatever
the padding rule (nn.Conv2d's own, timm's dynamic "same" padding, ...); a tap that sees data gets a non-zero
gradient from random inputs almost surely.

Inert scale. `scale_effect` doubles one layer's weight at a time and compares the network's output on the same
random batch in training mode (batch-norm on batch statistics, the state fine-tuning works in; dropout masks
drawn from the same seed): a layer followed by batch norm gives nearly the same output (exactly, but for batch
norm's eps), so its norms (log norm, log spectral norm) are functionally inert - weight decay can shrink them
without changing what the network computes.
Running statistics are restored. Written here because no library reports either.
"""

from __future__ import annotations

import torch
from torch import nn

PROBE_BATCH = 4


def dead_taps(model: nn.Module, image_size: int | tuple[int, int], channels: int | None = None,
              seed: int = 0) -> dict[str, list[int]]:
    """{longname: sorted flat kernel positions (row-major over kh x kw) with zero gradient} for every 2-D conv of
    `model` that has any, at inputs of `image_size` (`channels`: the first conv's in_channels by default). The
    model's weights, gradients and train/eval mode are left as they were."""
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    if not convs:
        return {}
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    channels = channels or next(iter(convs.values())).in_channels
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(PROBE_BATCH, channels, h, w, generator=generator).to(device)
    was_training = model.training
    saved = {name: p.grad for name, p in model.named_parameters()}
    weights = {name: m.weight for name, m in convs.items()}
    requires = {name: p.requires_grad for name, p in weights.items()}
    model.eval()
    try:
        for p in weights.values():
            p.requires_grad_(True)
        out = model(x)
        out = out if isinstance(out, torch.Tensor) else out[0]
        readout = torch.randn(out.shape, generator=generator).to(device)
        grads = torch.autograd.grad((out * readout).sum(), list(weights.values()), allow_unused=True)
    finally:
        model.train(was_training)
        for name, p in weights.items():
            p.requires_grad_(requires[name])
        for name, p in model.named_parameters():
            p.grad = saved[name]
    found = {}
    for name, g in zip(weights, grads):
        if g is None:
            continue
        per_tap = g.detach().abs().flatten(0, 1).sum(dim=0).flatten()  # (kh * kw,)
        dead = torch.nonzero(per_tap == 0).flatten().tolist()
        if dead and len(dead) < per_tap.numel():
            found[name] = dead
    return found


#: relative output change below which doubling a layer's weight counts as (nearly) no change: batch norm's eps
#: keeps the invariance from being exact, most where a channel's variance is small against it (depthwise convs)
INERT_TOLERANCE = 0.01


def scale_effect(model: nn.Module, image_size: int | tuple[int, int], longnames, channels: int | None = None,
                 seed: int = 0) -> dict[str, float]:
    """{longname: max |output(2 W) - output(W)| / max |output(W)|}, training mode, for the modules named in
    `longnames` that have a weight; below INERT_TOLERANCE the layer's scale is functionally inert. The model's
    weights, buffers and train/eval mode are left as they were."""
    modules = dict(model.named_modules())
    convs = [m for m in modules.values() if isinstance(m, nn.Conv2d)]
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    channels = channels or (convs[0].in_channels if convs else 3)
    device = next(model.parameters()).device
    x = torch.randn(PROBE_BATCH, channels, h, w, generator=torch.Generator().manual_seed(seed)).to(device)
    was_training = model.training
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}

    def output():
        torch.manual_seed(seed)
        out = model(x)
        return (out if isinstance(out, torch.Tensor) else out[0]).detach().double()

    found = {}
    model.train()
    try:
        with torch.no_grad():
            reference = output()
            scale = reference.abs().max().item() or 1.0
            for name in longnames:
                weight = getattr(modules.get(name), "weight", None)
                if not isinstance(weight, torch.Tensor):
                    continue
                weight.mul_(2.0)
                try:
                    found[name] = float((output() - reference).abs().max().item() / scale)
                finally:
                    weight.div_(2.0)
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        model.train(was_training)
    return found
