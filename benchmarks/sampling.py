"""Sampling overhead: rule synthesize's sampler (weightscape.synth.sampling.sample_ddpm) vs the diffusers DDIM loop
called directly on the same UNet and batches, side by side.

Both do the same work: DDIM with `--steps` steps and classifier-free guidance (one conditional + one unconditional
pass per step, batched together), `--per-class` images per class in batches of `--batch-size`. The UNet is the
shipped generator (resources/generators/fashion_mnist-ddpm) or, with --random, a random-init UNet of the default
architecture. Runs alternate (bare, project, ...) and the median images/s of each is reported.
Goal: project / bare >= 0.95.

    python benchmarks/sampling.py [--per-class 10] [--steps 50] [--batch-size 50] [--guidance-scale 2.0]
                                  [--repeats 3] [--threads 1] [--random]
"""

from __future__ import annotations

import statistics

import torch

from _common import REPO, alternating, options
from weightscape.runtime import pin_threads


def bare_sampling(unet, scheduler, labels, batch_size, guidance_scale, null_class, seed):
    """The floor: the diffusers scheduler loop as its documentation writes it, plus guidance."""
    out = []
    for start in range(0, len(labels), batch_size):
        y = labels[start:start + batch_size]
        generator = torch.Generator().manual_seed(seed + start)
        x = torch.randn((len(y), unet.config.in_channels, unet.config.sample_size, unet.config.sample_size),
                        generator=generator)
        classes = torch.cat([y, torch.full_like(y, null_class)])
        with torch.no_grad():
            for t in scheduler.timesteps:
                conditional, unconditional = unet(torch.cat([x, x]), t, class_labels=classes).sample.chunk(2)
                x = scheduler.step(unconditional + guidance_scale * (conditional - unconditional), t, x).prev_sample
        out.append(x)
    return torch.cat(out)


def main() -> None:
    args = options(__doc__, per_class=10, steps=50, batch_size=50, guidance_scale=2.0, repeats=3, threads=1,
                   random=False)
    pin_threads(args.threads)

    from weightscape.synth.ddpm import build_unet, load_ddpm
    from weightscape.synth.sampling import ddim_scheduler, sample_ddpm

    if args.random:
        train = {"arch": {"block_out_channels": [32, 64, 64], "layers_per_block": 1, "norm_num_groups": 8},
                 "num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2"}
        info = {"classes": [str(i) for i in range(10)], "train": train}
        unet = build_unet(train["arch"], 28, 1, 10).eval()
    else:
        unet, info = load_ddpm(REPO / "resources" / "generators" / "fashion_mnist-ddpm")
    settings = {"steps": args.steps, "guidance_scale": args.guidance_scale, "eta": 0.0,
                "batch_size": args.batch_size, "seed": 0}
    classes = len(info["classes"])
    labels = torch.arange(classes).repeat_interleave(args.per_class)
    seconds, _ = alternating({  # the bare loop's scheduler is made outside the timing
        "bare": lambda scheduler: bare_sampling(unet, scheduler, labels, args.batch_size, args.guidance_scale,
                                                classes, 0),
        "weightscape": lambda _: sample_ddpm(unet, info, args.per_class, settings),
    }, args.repeats, fresh=lambda: ddim_scheduler(info["train"], args.steps))
    rate = {name: len(labels) / statistics.median(values) for name, values in seconds.items()}
    print(f"{len(labels)} images, DDIM {args.steps} steps, guidance {args.guidance_scale}, batch {args.batch_size}, "
          f"{args.threads} thread(s), {'random' if args.random else 'shipped'} UNet, median of {args.repeats}")
    print(f"bare diffusers loop   {rate['bare']:8.2f} images/s")
    print(f"weightscape synthesize{rate['weightscape']:8.2f} images/s")
    print(f"ratio weightscape / bare: {rate['weightscape'] / rate['bare']:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
