"""Data-diversity conditions: named torchvision v2 transforms from the config, and the seeded, batched data path that
feeds augmented, model-ready images to the fine-tuning loop.

A condition's `transforms` is a list of ``{name, args}`` entries (names from :data:`TRANSFORMS`, args the v2 class's
own keyword names), applied in order to one uint8 C x H x W image at its *native* resolution and channel count
(C = 1 or 3), before the resize to the model's input size: pixel-valued arguments (elastic alpha/sigma, crop size,
padding) are in source pixels.

Data flow per image (:class:`AugmentedImages`): uint8 transforms (AutoAugment & co run on uint8, as torchvision
intends), one ``v2.ToDtype(float32, scale=True)`` just before the first float-only transform (noise)
or at the end, then :func:`model_ready` -- the same resize + normalization as ``inputs.to_model_inputs``, with the
run's own ``InputSpec`` for every condition (the paper's public code normalized augmented data with ImageNet stats
and clean data with CLIP stats; here there is one code path).
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from typing import Any, Callable, Iterator, NoReturn

import numpy as np
import torch
from torchvision.transforms import v2

from weightscape.inputs import InputSpec, batches, model_ready


__all__ = ["TRANSFORMS", "FLOAT_ONLY", "CHOICES", "check_transforms", "build_pipeline",
           "AugmentedImages", "augmented_batches", "augmented_epochs"]


def _autoaugment(policy: str = "imagenet", interpolation: str = "nearest", fill: Any = None) -> v2.AutoAugment:
    """v2.AutoAugment with the policy by name: the class wants an AutoAugmentPolicy member, YAML gives a string."""
    return v2.AutoAugment(v2.AutoAugmentPolicy(policy), interpolation=v2.InterpolationMode(interpolation), fill=fill)


def _constructor_args(args: dict) -> dict:
    """YAML strings -> the enum torchvision wants: v2 accepts interpolation names only from 0.27 on (0.26, on the
    GPU machines, rejects "nearest"), InterpolationMode everywhere."""
    if isinstance(args.get("interpolation"), str):
        return {**args, "interpolation": v2.InterpolationMode(args["interpolation"])}
    return args


def _gaussian_noise(std: float) -> v2.GaussianNoise:
    """v2.GaussianNoise(mean=0, sigma=std, clip=True): additive noise on [0, 1] pixels, clamped to [0, 1] (the
    paper's noise condition). Our wrapper only fixes mean/clip and names the level `std` as the paper does."""
    if isinstance(std, bool) or not isinstance(std, (int, float)) or std < 0:
        raise ValueError(f"std must be a number >= 0, got {std!r}")
    return v2.GaussianNoise(mean=0.0, sigma=float(std), clip=True)


#: name -> v2 transform class (or a thin builder around one). Its keyword arguments are the allowed `args`.
TRANSFORMS: dict[str, Callable[..., v2.Transform]] = {
    "autoaugment": _autoaugment,                 # policy, interpolation, fill
    "randaugment": v2.RandAugment,               # num_ops, magnitude, num_magnitude_bins, interpolation, fill
    "augmix": v2.AugMix,                         # severity, mixture_width, chain_depth, alpha, all_ops, ...
    "trivialaugment": v2.TrivialAugmentWide,     # num_magnitude_bins, interpolation, fill
    "gaussian_noise": _gaussian_noise,           # std
    "hflip": v2.RandomHorizontalFlip,            # p
    "vflip": v2.RandomVerticalFlip,              # p
    "elastic": v2.ElasticTransform,              # alpha, sigma, interpolation, fill
    "color_jitter": v2.ColorJitter,              # brightness, contrast, saturation, hue
    "random_crop": v2.RandomCrop,                # size (required), padding, pad_if_needed, fill, padding_mode
    "random_resized_crop": v2.RandomResizedCrop,  # size (required), scale, ratio, interpolation, antialias
    "random_rotation": v2.RandomRotation,        # degrees (required), interpolation, expand, center, fill
    "random_erasing": v2.RandomErasing,          # p, scale, ratio, value
}

#: Transforms that must see float [0, 1] images. v2.GaussianNoise also accepts uint8 but then truncates the noise to
#: whole grey levels (std 0.01 = 2.55 levels would shrink), so the float conversion goes before it.
FLOAT_ONLY = frozenset({"gaussian_noise"})

#: Allowed values of string arguments, for whichever transform has them. The v2 constructors accept any
#: interpolation/padding_mode string and fail only when called; tensors support nearest and bilinear in the
#: geometric ops AutoAugment & co use.
CHOICES: dict[str, tuple[str, ...]] = {
    "policy": tuple(p.value for p in v2.AutoAugmentPolicy),
    "interpolation": ("nearest", "bilinear"),
    "padding_mode": ("constant", "edge", "reflect", "symmetric"),
}

_NON_NEGATIVE = {"elastic": ("alpha", "sigma")}
_EXCLUDED_ARGS = frozenset({"inplace"})  # RandomErasing(inplace=True) would edit the cached dataset images
_DRY_RUN_SIDE = 224  # the paper's input size; a seeded trial run on a 3 x 224 x 224 image catches runtime errors


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    return {k: p for k, p in inspect.signature(TRANSFORMS[name]).parameters.items() if k not in _EXCLUDED_ARGS}


def _fail(where: str, message: Any) -> NoReturn:
    raise ValueError(f"{where}: " + " ".join(str(message).split()))  # always one line


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_value(where: str, arg: str, value: Any, default: Any) -> None:
    """Allowed strings (CHOICES); the type the v2 default implies (bool, int, number): constructors skip that."""
    if arg in CHOICES and value not in CHOICES[arg]:
        _fail(where, f"{value!r} is not allowed; choose one of {', '.join(CHOICES[arg])}")
    if isinstance(default, bool):
        ok, wanted = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, wanted = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):  # float-defaulted v2 args also take a per-axis/per-channel list
        seq = isinstance(value, (list, tuple)) and len(value) > 0 and all(map(_is_number, value))
        ok, wanted = _is_number(value) or seq, "a number"
    else:
        return
    if not ok:
        _fail(where, f"{value!r} is not {wanted}")


def _checked_steps(spec: Any, key: str) -> list[tuple[str, v2.Transform]]:
    """Validate `spec` and return (label, transform) steps, the single float conversion included."""
    if not isinstance(spec, list):
        _fail(key, f"expected a list of {{name, args}} entries, got {type(spec).__name__}")
    steps: list[tuple[str, v2.Transform]] = []
    converted = False
    for i, entry in enumerate(spec):
        at = f"{key}[{i}]"
        if not isinstance(entry, dict):
            _fail(at, f"expected a mapping {{name: ..., args: {{...}}}}, got {type(entry).__name__} {entry!r}")
        for k in entry:
            if k not in ("name", "args"):
                _fail(f"{at}.{k}", "not a key of a transform entry; allowed: name, args")
        name = entry.get("name")
        if not isinstance(name, str) or name not in TRANSFORMS:
            close = difflib.get_close_matches(str(name), TRANSFORMS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            _fail(f"{at}.name", f"{name!r} is not a known transform{hint}; allowed: {', '.join(sorted(TRANSFORMS))}")
        args = entry.get("args")
        args = {} if args is None else args
        if not isinstance(args, dict):
            _fail(f"{at}.args", f"expected a mapping of argument names to values, got {type(args).__name__}")
        params = _parameters(name)
        for arg, value in args.items():
            if arg not in params:
                _fail(f"{at}.args.{arg}", f"not an argument of {name}; allowed: {', '.join(params)}")
            _check_value(f"{at}.args.{arg}", arg, value, params[arg].default)
        for arg, p in params.items():
            if p.default is inspect.Parameter.empty and arg not in args:
                _fail(f"{at}.args.{arg}", f"missing; {name} requires it")
        if name == "randaugment":  # v2 indexes its magnitude bins with `magnitude` only when an op is drawn
            magnitude = args.get("magnitude", params["magnitude"].default)
            bins = args.get("num_magnitude_bins", params["num_magnitude_bins"].default)
            if not 0 <= magnitude < bins:
                _fail(f"{at}.args.magnitude", f"{magnitude} is out of range; choose 0 to num_magnitude_bins - 1 = "
                                              f"{bins - 1}")
        for arg in _NON_NEGATIVE.get(name, ()):  # accepted by v2 but meaningless (elastic sigma < 0: no smoothing)
            if arg in args and min(np.ravel(args[arg])) < 0:
                _fail(f"{at}.args.{arg}", f"{args[arg]!r} is negative; {name} needs {arg} >= 0")
        try:
            transform = TRANSFORMS[name](**_constructor_args(args))
        except Exception as exc:  # the v2 constructor's own check, reported on one line
            _fail(f"{at}.args" + (f".{next(iter(args))}" if len(args) == 1 else ""), f"{name} rejects {args}: {exc}")
        if name in FLOAT_ONLY and not converted:
            steps.append(("to float", v2.ToDtype(torch.float32, scale=True)))
            converted = True
        steps.append((at, transform))
    if not converted:
        steps.append(("to float", v2.ToDtype(torch.float32, scale=True)))
    _dry_run(spec, steps)
    return steps


def _dry_run(spec: list[dict], steps: list[tuple[str, v2.Transform]]) -> None:
    """Run the steps once, seeded, on a random image (the global RNG is left as it was): catches what the v2
    constructors accept but the call rejects (e.g. a wrong-typed `fill`). Large enough for any crop `size`."""
    sizes = [int(s) for e in spec for s in np.ravel((e.get("args") or {}).get("size", 0))]
    side = max([_DRY_RUN_SIDE, *sizes])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        image = torch.randint(0, 256, (3, side, side), dtype=torch.uint8)
        for at, transform in steps:
            try:
                image = transform(image)
            except Exception as exc:
                _fail(at, f"{type(transform).__name__} failed on a trial 3x{side}x{side} image: {exc}")


def check_transforms(spec: list[dict], key: str = "transforms") -> None:
    """Raise ValueError (one line naming the position, e.g. ``transforms[1].args.p``) if `spec` is not a valid list of
    {name, args} entries: unknown names or args, disallowed values, or values the v2 transform itself rejects."""
    _checked_steps(spec, key)


def build_pipeline(spec: list[dict]) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 C x H x W image (C = 1 or 3) -> float32 C x H' x W' in [0, 1] (H' = H unless a crop resizes). Checks `spec` first.

    uint8 transforms run on uint8; ``v2.ToDtype(float32, scale=True)`` is inserted once, before the first
    float-only transform (:data:`FLOAT_ONLY`) or at the end. Transforms listed after it get float images (the
    v2 ops accept them). An empty spec is just the conversion. Random draws come from torch's global RNG.
    """
    return v2.Compose([transform for _, transform in _checked_steps(spec, "transforms")])


class AugmentedImages(torch.utils.data.Dataset):
    """uint8 N x H x W x C images (C = 1 or 3) + labels -> (augmented model-ready float32 3 x S x S, label).

    Per item: :func:`build_pipeline` (`transforms`) at the native channel count, then :func:`model_ready` with
    `spec` (gray -> 3 channels, resize, normalize).
    """

    def __init__(self, images: np.ndarray | torch.Tensor, labels: Any, spec: InputSpec, transforms: list[dict]):
        with warnings.catch_warnings():  # read-only numpy arrays: we never write to them
            warnings.simplefilter("ignore", UserWarning)
            self.images = torch.as_tensor(images)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[-1] not in (1, 3):
            raise ValueError(f"images must be uint8 N x H x W x C with C = 1 or 3, got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        self.labels = torch.as_tensor(labels)
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        self.spec = spec
        self.pipeline = build_pipeline(transforms)

    def __len__(self) -> int:
        return len(self.images)

    def augmented(self, index: int) -> torch.Tensor:
        """Image `index` through the pipeline, at its native channel count and size (not yet model-ready)."""
        # augment at the native channel count: noise on a gray image stays gray (per-channel noise on a replicated
        # gray image would add colour the clean and test images never have); model_ready then makes 3 channels
        return self.pipeline(self.images[index].permute(2, 0, 1).contiguous())

    def image(self, index: int) -> torch.Tensor:
        return model_ready(self.augmented(index), self.spec)

    def ready(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Augmented images (:meth:`augmented`) -> their model-ready batch: the same values as stacking
        :meth:`image` of each (resize and normalization work plane by plane), with model_ready run once on the
        batch - a third of its per-image cost - when the views share one size."""
        if len({view.shape for view in views}) == 1:
            return model_ready(torch.stack(views), self.spec)
        return torch.stack([model_ready(view, self.spec) for view in views])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(index), self.labels[index]


def augmented_batches(images: np.ndarray | torch.Tensor, labels: Any, spec: InputSpec, transforms: list[dict],
                      batch_size: int, generator: torch.Generator,
                      num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (model-ready inputs, labels) batches, augmented with `transforms`, shuffled by `generator`.

    Deterministic for a given `generator` state, whatever `num_workers`:
    * order: ``train.batches(n, batch_size, generator)`` -- the same order an un-augmented epoch gets from the
      same generator, so conditions differ only in their augmentation; it advances `generator` as that does.
    * augmentation draws: a seed is taken from a copy of `generator` (not advancing it); the v2 draws of the whole
      epoch come, image after image, from torch's RNG seeded with it and swapped in around each batch, so the
      caller's global RNG (dropout masks) is neither used nor changed.
    * num_workers = 0 augments in this process; num_workers >= 1 runs the same stream in one background process,
      up to `num_workers` batches ahead of training. One stream keeps the draws independent of the setting (so it
      only steers execution); the price is that augmentation uses at most one extra core.
    The generator state is consumed when this is called, not when the first batch is taken.
    """
    return augmented_epochs(images, labels, spec, transforms, batch_size, num_workers)(generator)


def augmented_epochs(images: np.ndarray | torch.Tensor, labels: Any, spec: InputSpec, transforms: list[dict],
                     batch_size: int, num_workers: int = 0,
                     ) -> Callable[[torch.Generator], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """``epoch(generator)`` = :func:`augmented_batches` with the dataset and pipeline built (and checked) once: the
    shape of ``train.fit``'s `epoch_batches`."""

    dataset = AugmentedImages(images, labels, spec, transforms)

    def epoch(generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        copy = torch.Generator()
        copy.set_state(generator.get_state())
        seed = int(torch.randint(0, 2**62, (1,), generator=copy))
        order = batches(len(dataset), batch_size, generator)
        if num_workers > 0:
            # generator=: the loader's own base seed must not be drawn from (and advance) the global RNG
            return iter(torch.utils.data.DataLoader(_EpochStream(dataset, order, seed), batch_size=None,
                                                    num_workers=1, prefetch_factor=num_workers,
                                                    generator=torch.Generator()))
        return _main_process_batches(dataset, order, seed)

    return epoch


class _EpochStream(torch.utils.data.IterableDataset):
    """One epoch's augmented batches as a stream a background worker can produce (the same draws as in-process)."""

    def __init__(self, dataset: "AugmentedImages", order: Any, seed: int):
        self.dataset, self.order, self.seed = dataset, order, seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return _main_process_batches(self.dataset, self.order, self.seed)


def _main_process_batches(dataset: AugmentedImages, order: Any, seed: int) -> Iterator[tuple[torch.Tensor, ...]]:
    # Hand-written because v2 transforms take no generator argument: they draw from torch's global RNG, so each
    # batch swaps in the augmentation's own RNG state and hands the caller's back afterwards.
    state = torch.Generator().manual_seed(seed).get_state()
    for index in order:
        with torch.random.fork_rng(devices=[]):  # the augmentation's own RNG stream, the caller's restored after
            torch.set_rng_state(state)
            views = [dataset.augmented(int(i)) for i in index]
            state = torch.get_rng_state()
        yield dataset.ready(views), dataset.labels[index]
