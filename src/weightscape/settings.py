"""Typed settings: the validated config as frozen objects. The workflow builds them once per parse
(weightscape.config.validated_settings, in rules/common.smk) and hands each rule what it depends on as `params`;
a job (workflow_scripts/) rebuilds the objects it needs from its own params (`from_params`), never from the config.

Every object splits its settings in two:

* what can change a result - :meth:`params` gives it as a canonical value (plain builtins, mappings key-sorted):
  what Snakemake tracks as a rule's ``params`` and what every resume fingerprint hashes, so re-ordering the keys
  of a config file never reruns a finished job;
* what only steers execution (threads, augmentation worker processes, the evaluation batch size, the device, a
  dataset's `download`, a generator's `checkpoint_every`): :func:`execution_only` is that part of a config, the
  only part a job reads from ``snakemake.config`` (weightscape.execution.job). It is recorded as provenance next to
  the results (``metrics.json``), never a rerun trigger: a thread count can change the last bits of a float on a
  CPU; that is worth recording, not worth redoing work for.

Standard library only at import time, and no import of weightscape.config (which builds these objects).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: keys of the `train` section that only steer execution (the rest are TrainSettings)
TRAIN_EXECUTION_KEYS = ("device", "threads", "num_workers", "eval_batch_size", "jobs_per_gpu")
#: keys of a generator's `sample` / `train` sections that only steer execution (the DDPM draws every step from a
#: generator seeded by (seed, step), so where it checkpoints does not change its weights)
SAMPLE_EXECUTION_KEYS = ("threads",)
GENERATOR_TRAIN_EXECUTION_KEYS = ("threads", "checkpoint_every")
#: `spectra.delta` decides which jobs exist, not what one computes
SPECTRA_WORKFLOW_KEYS = ("delta",)
CURVATURE_WORKFLOW_KEYS = ("enabled", "every_epoch")


def canonical(value: Any) -> Any:
    """`value` as plain builtins with every mapping's keys sorted (tuples become lists), recursively: its repr()
    depends only on the values, which is what Snakemake compares to decide whether params changed."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(key): canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value


def without(section: Mapping, keys: tuple[str, ...]) -> dict:
    """The canonical `section` minus `keys` (e.g. a config section minus its execution-only keys)."""
    return canonical({key: value for key, value in section.items() if key not in keys})


def execution_only(config: Mapping) -> dict:
    """The part of a validated config that only steers execution, in the config's own shape: the `train` execution
    keys, each dataset's `download`, each generator's `train.checkpoint_every` (a generator's `threads` are its
    rules' `threads:`, which a job reads as snakemake.threads). Applied to its own result it returns the same."""
    return {"train": {key: config["train"][key] for key in TRAIN_EXECUTION_KEYS},
            "datasets": [{"name": d["name"], "download": d["download"]} for d in config["datasets"]],
            "generators": [{"name": g["name"], "train": {"checkpoint_every": g["train"]["checkpoint_every"]}}
                           for g in config["generators"]]}


def _fields(cls, values: Mapping, **extra) -> Any:
    """cls(**the values its fields name): a config section may carry keys that belong to another object."""
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name not in extra}, **extra)


@dataclass(frozen=True)
class Execution:
    """How a job runs, not what it computes: the device preference (auto / cpu / cuda) honoured by every rule that
    runs a model, CPU threads, augmentation worker processes, the evaluation batch size and how many jobs share a
    GPU (weightscape.execution.gpus)."""

    device: str
    threads: int
    num_workers: int
    eval_batch_size: int
    jobs_per_gpu: int = 1

    @classmethod
    def from_config(cls, config: Mapping, threads: int | None = None) -> "Execution":
        """From the config's `train` section; `threads` (the job's own, snakemake.threads) overrides the config's."""
        train = config["train"]
        return cls(device=train["device"], threads=int(threads or train["threads"]),
                   num_workers=train["num_workers"], eval_batch_size=train["eval_batch_size"],
                   jobs_per_gpu=train.get("jobs_per_gpu", 1))

    @property
    def gpus(self) -> int:
        """Whole GPUs a job of a model-running rule asks for (the `gpu` resource: SLURM's --gpus; its share of a GPU
        on a local machine is weightscape.execution.gpus.slots_per_job)."""
        return int(self.device == "cuda")

    def torch_device(self):
        """The torch device this preference resolves to on this machine (weightscape.runtime.pick_device)."""
        from weightscape.runtime import pick_device

        return pick_device(self.device)

    def provenance(self) -> dict:
        """What ran the job, recorded next to its results: the resolved device, threads, workers, batch size and
        the torch version (a thread count or a kernel version can move the last bits of a float); on CUDA also the
        GPU it used and how many jobs shared one."""
        import os

        import torch

        device = self.torch_device()
        gpu = {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "jobs_per_gpu": self.jobs_per_gpu,
               "gpu_name": torch.cuda.get_device_name(device)} if device.type == "cuda" else {}
        return {"device": str(device), "threads": self.threads, "num_workers": self.num_workers,
                "eval_batch_size": self.eval_batch_size, "torch": torch.__version__, **gpu}


@dataclass(frozen=True)
class TrainSettings:
    """The fine-tuning settings that determine a run's weights (config section `train` minus execution keys)."""

    optimizer: str
    lr: float
    momentum: float
    batch_size: int
    epochs: int
    weight_decay_mode: str
    bf16: bool

    @classmethod
    def from_config(cls, train: Mapping) -> "TrainSettings":
        return _fields(cls, train)

    @classmethod
    def from_params(cls, params: Mapping) -> "TrainSettings":
        return cls(**params)

    def params(self) -> dict:
        return canonical(self)

    def replace(self, **changes) -> "TrainSettings":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Mix:
    """A synthetic condition's training set: `scheme` replace | add, share `p`, images from `generator`."""

    scheme: str
    p: float
    generator: str


@dataclass(frozen=True)
class TrainingData:
    """What a condition's training data depends on: its augmentations and its synthetic mix
    (:meth:`Condition.data_params`); conditions that differ only in the regularizer train on the same data."""

    transforms: tuple[dict, ...]
    mix: Mix | None

    @classmethod
    def from_params(cls, params: Mapping) -> "TrainingData":
        """From :meth:`Condition.data_params`."""
        mix = params["mix"]
        return cls(transforms=tuple({"name": t["name"], "args": dict(t["args"])} for t in params["transforms"]),
                   mix=Mix(**mix) if mix else None)


@dataclass(frozen=True)
class Condition:
    """One grid condition (weightscape.config.conditions describes the fields); all of it can change a result."""

    name: str
    family: str
    kind: str | None
    level: float | None
    dropout: float
    weight_decay: float
    transforms: tuple[dict, ...]
    mix: Mix | None
    combines: tuple[str, str] | None = None  # combined conditions: (data condition, regularizer condition)

    @classmethod
    def from_dict(cls, condition: Mapping) -> "Condition":
        """From an expanded condition dict (weightscape.config.expand_conditions)."""
        mix = condition.get("mix")
        transforms = tuple({"name": t["name"], "args": dict(t.get("args") or {})} for t in condition["transforms"])
        combines = tuple(condition["combines"]) if condition.get("combines") else None
        return _fields(cls, condition, transforms=transforms, mix=Mix(**mix) if mix else None, combines=combines)

    @classmethod
    def from_params(cls, params: Mapping) -> "Condition":
        """From :meth:`params` (what a rule passes a job)."""
        return cls.from_dict(params)

    def params(self) -> dict:
        """Every field (`combines` only where set, so adding the field left other conditions' params as they were)."""
        params = canonical(self)
        if self.combines is None:
            del params["combines"]
        return params

    def data_params(self) -> dict:
        """What its training data depends on (transforms and synthetic mix): conditions that differ only in the
        regularizer (dropout, weight decay) train on the same data, so they share its diversity measurement."""
        params = self.params()
        return {key: params[key] for key in ("transforms", "mix")}


@dataclass(frozen=True)
class Dataset:
    """A `datasets[]` entry; `download` (may torchvision fetch missing files) only steers execution."""

    name: str
    source: str
    root: str | None
    download: bool
    image_size: int
    train_per_class: int
    val_per_class: int
    test_per_class: int | None
    split_seed: int
    resample_per_seed: bool

    @classmethod
    def from_config(cls, dataset: Mapping) -> "Dataset":
        return _fields(cls, dataset)

    @classmethod
    def from_params(cls, params: Mapping, download: bool) -> "Dataset":
        """From :meth:`params` and the execution setting `download` (execution_only)."""
        return cls(**params, download=download)

    def params(self) -> dict:
        return without(dataclasses.asdict(self), ("download",))

    def subset_params(self) -> dict:
        """How a job that trains on a seed's data draws its training subset: {} when every seed trains on
        train.npz, else {per_class, split_seed} for weightscape.data.canonical.seed_subset of pool.npz."""
        if not self.resample_per_seed:
            return {}
        return {"per_class": self.train_per_class, "split_seed": self.split_seed}

    def source_options(self) -> dict:
        """What a source reader (weightscape.data.sources) reads: root, download, image_size, ..."""
        return dataclasses.asdict(self)

    def source_params(self) -> dict:
        """What reading the raw source depends on (the judge's split draws from all of it, not from the subset)."""
        return canonical({key: getattr(self, key) for key in ("source", "root", "image_size")})


@dataclass(frozen=True)
class Model:
    """A `models[]` entry: architecture spec, weights (pretrained / random / a file) and input resolution."""

    name: str
    arch: str
    weights: str
    image_size: int

    @classmethod
    def from_config(cls, model: Mapping) -> "Model":
        return _fields(cls, model)

    @classmethod
    def from_params(cls, params: Mapping) -> "Model":
        return cls(**params)

    def params(self) -> dict:
        return canonical(self)


@dataclass(frozen=True)
class Generator:
    """A `generators[]` entry. `sample` and `train` keep the config's nested sections (execution keys included);
    :meth:`sample_params` and :meth:`train_params` are what the synthesize and train_generator jobs depend on."""

    name: str
    kind: str
    weights: str | None
    per_class: int
    prompt: str
    resolution: int
    sample: dict
    train: dict = dataclasses.field(default_factory=dict)  # empty in a job that only samples (from_params)

    @classmethod
    def from_config(cls, generator: Mapping) -> "Generator":
        return _fields(cls, generator, sample=dict(generator["sample"]), train=dict(generator["train"]))

    @classmethod
    def from_params(cls, params: Mapping, threads: int) -> "Generator":
        """The sampling generator of a synthesize job, from :meth:`sample_params` and the job's `threads`."""
        return cls(**{key: value for key, value in params.items() if key != "sample"},
                   sample={**params["sample"], "threads": threads})

    @staticmethod
    def train_settings(params: Mapping, threads: int, checkpoint_every: int) -> dict:
        """The `train` section a train_generator job trains with: :meth:`train_params` and its execution keys."""
        return {**params, "threads": threads, "checkpoint_every": checkpoint_every}

    def sample_params(self) -> dict:
        """Everything that shapes the synthetic images except the training of the generator (whose weights are an
        input file of the job) and execution keys."""
        return canonical({**without(dataclasses.asdict(self), ("train", "sample")),
                          "sample": without(self.sample, SAMPLE_EXECUTION_KEYS)})

    def train_params(self) -> dict:
        """The settings that shape a trained generator's weights (steps included: the fingerprint of a resumable
        training treats a larger step count as a continuation, weightscape.synth.ddpm)."""
        return without(self.train, GENERATOR_TRAIN_EXECUTION_KEYS)


@dataclass(frozen=True)
class Settings:
    """The whole validated config as settings objects, keyed by the names the wildcards use."""

    datasets: dict[str, Dataset]
    models: dict[str, Model]
    conditions: dict[str, Condition]
    seeds: tuple[int, ...]
    generators: dict[str, Generator]
    train: TrainSettings
    execution: Execution
    sections: dict[str, dict]  # the plain sections (ood, spectra, diversity, curvature, compare, stats, ...)

    @classmethod
    def from_config(cls, config: Mapping, conditions: list[dict]) -> "Settings":
        """From a config whose defaults are filled in and the grid's expanded conditions: what
        weightscape.config.validated_settings gives."""
        return cls(datasets={d["name"]: Dataset.from_config(d) for d in config["datasets"]},
                   models={m["name"]: Model.from_config(m) for m in config["models"]},
                   conditions={c["name"]: Condition.from_dict(c) for c in conditions},
                   seeds=tuple(config["seeds"]),
                   generators={g["name"]: Generator.from_config(g) for g in config["generators"]},
                   train=TrainSettings.from_config(config["train"]), execution=Execution.from_config(config),
                   sections={name: canonical(config[name]) for name in
                             ("ood", "spectra", "diversity", "curvature", "compare", "stats", "plots",
                              "fidelity")})

    def spectra_params(self) -> dict:
        """The analyze() options of a spectra job (`spectra` minus what only decides which jobs exist)."""
        return without(self.sections["spectra"], SPECTRA_WORKFLOW_KEYS)

    def curvature_params(self) -> dict:
        """What a curvature measurement depends on (`curvature` minus the switches that decide where it runs)."""
        return without(self.sections["curvature"], CURVATURE_WORKFLOW_KEYS)

    def finetune_curvature(self) -> dict | None:
        """The curvature settings a fine-tune measures after every epoch, or None (curvature.every_epoch off)."""
        curvature = self.sections["curvature"]
        return self.curvature_params() if curvature["enabled"] and curvature["every_epoch"] else None
