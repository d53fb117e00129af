"""The settings layer: canonical params, result vs execution settings, objects rebuilt from their params, one device
helper, and library entry points the adapters call by keyword."""

import ast
import copy
import importlib
import inspect
import os
import stat

import pytest
import torch
import yaml

from conftest import REPO, base_config, reordered
from weightscape.config import validate_config, validated_settings
from weightscape.io import atomic_path, write_json
from weightscape.settings import (Condition, Dataset, Execution, Generator, Model, Settings, TrainingData,
                                  TrainSettings, TRAIN_EXECUTION_KEYS, canonical)


def _all_params(settings: Settings) -> dict:
    return {"train": settings.train.params(), "spectra": settings.spectra_params(),
            "datasets": {n: d.params() for n, d in settings.datasets.items()},
            "models": {n: m.params() for n, m in settings.models.items()},
            "conditions": {n: c.params() for n, c in settings.conditions.items()},
            "generators": {n: (g.sample_params(), g.train_params()) for n, g in settings.generators.items()},
            "sections": settings.sections}


def test_params_do_not_depend_on_key_order(fashion_root):
    config = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    first = _all_params(validated_settings(copy.deepcopy(config), base_dir=REPO))
    second = _all_params(validated_settings(reordered(copy.deepcopy(config)), base_dir=REPO))
    assert repr(first) == repr(second)  # snakemake compares params by repr()
    assert list(first["train"]) == sorted(first["train"])
    assert canonical({"b": (1, {"d": 1, "c": 2}), "a": None}) == {"a": None, "b": [1, {"c": 2, "d": 1}]}
    assert repr(canonical({"b": 1, "a": 2})) == "{'a': 2, 'b': 1}"


def test_execution_settings_are_not_params(fashion_root):
    config = validate_config(base_config(train={"threads": 2, "num_workers": 1, "eval_batch_size": 32,
                                                "device": "cpu"}))
    settings = validated_settings(config)
    assert not set(TRAIN_EXECUTION_KEYS) & set(settings.train.params())
    assert settings.execution == Execution(device="cpu", threads=2, num_workers=1, eval_batch_size=32)
    assert Execution.from_config(config, threads=3).threads == 3  # the job's own thread count wins
    plain = validated_settings(base_config())
    assert plain.train == settings.train and plain.execution != settings.execution
    generator = Generator(name="g", kind="ddpm", weights=None, per_class=1, prompt="", resolution=8,
                          sample={"steps": 2, "threads": 4}, train={"steps": 5, "threads": 4, "checkpoint_every": 9})
    assert generator.train_params() == {"steps": 5}
    assert generator.sample_params()["sample"] == {"steps": 2} and "train" not in generator.sample_params()


def test_a_job_rebuilds_each_settings_object_from_its_params(fashion_root):
    """What a rule passes a job as params is enough to rebuild the object the workflow built from the config."""
    config = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    config["conditions"].append({"name": "jitter", "family": "diversity", "kind": "augment",
                                 "transforms": [{"name": "color_jitter", "args": {"hue": 0.1, "brightness": 0.4}}]})
    settings = validated_settings(config, base_dir=REPO)
    for condition in settings.conditions.values():
        assert Condition.from_params(condition.params()) == condition
        data = TrainingData.from_params(condition.data_params())
        assert (data.transforms, data.mix) == (condition.transforms, condition.mix)
    for dataset in settings.datasets.values():
        assert Dataset.from_params(dataset.params(), download=dataset.download) == dataset
    for model in settings.models.values():
        assert Model.from_params(model.params()) == model
    assert TrainSettings.from_params(settings.train.params()) == settings.train
    for generator in settings.generators.values():
        rebuilt = Generator.from_params(generator.sample_params(), threads=generator.sample["threads"])
        assert rebuilt == Generator(**{**vars(generator), "train": {}})
        assert Generator.train_settings(generator.train_params(), threads=generator.train["threads"],
                                        checkpoint_every=generator.train["checkpoint_every"]) == generator.train


def test_delta_switch_is_not_a_spectra_job_param(fashion_root):
    on = validated_settings(base_config())
    off = validated_settings(base_config(spectra={"delta": False}))
    assert on.spectra_params() == off.spectra_params() and "delta" not in on.spectra_params()


def test_device_cpu_keeps_jobs_on_the_cpu_where_a_gpu_is_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    base = dict(threads=1, num_workers=0, eval_batch_size=8)
    assert Execution(device="cpu", **base).torch_device() == torch.device("cpu")
    assert Execution(device="auto", **base).torch_device() == torch.device("cuda")
    assert Execution(device="cuda", **base).torch_device() == torch.device("cuda")
    assert Execution(device="cpu", **base).gpus == 0 and Execution(device="cuda", **base).gpus == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        Execution(device="cuda", **base).torch_device()


ADAPTERS = sorted((REPO / "workflow_scripts").glob("*.py"))


def _library_calls(path):
    """(called name, its object, the ast.Call nodes calling it) for every weightscape function an adapter calls,
    directly (`fit(...)`) or through an imported module (`plots.quadrant(...)`)."""
    tree = ast.parse(path.read_text())
    imported = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("weightscape"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                found = getattr(module, alias.name, None)
                if found is None:  # a submodule: from weightscape import plots
                    found = importlib.import_module(f"{node.module}.{alias.name}")
                imported[alias.asname or alias.name] = found
    found = {}
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        func = call.func
        if isinstance(func, ast.Name) and func.id in imported:
            name, obj = func.id, imported[func.id]
        elif (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in imported
              and inspect.ismodule(imported[func.value.id])):
            name, obj = f"{func.value.id}.{func.attr}", getattr(imported[func.value.id], func.attr)
        else:
            continue
        found.setdefault(name, (obj, []))[1].append(call)
    return [(name, obj, calls) for name, (obj, calls) in found.items()]


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda p: p.stem)
def test_adapters_call_library_functions_with_at_most_six_positional_arguments(adapter):
    for name, obj, calls in _library_calls(adapter):
        if not inspect.isfunction(obj):
            continue
        positional = [p for p in inspect.signature(obj).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        assert len(positional) <= 6, f"{name} takes {len(positional)} positional parameters"
        assert all(len(call.args) <= 6 for call in calls), f"{adapter.name} calls {name} with > 6 positional"


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda p: p.stem)
def test_adapters_choose_the_device_only_through_the_execution_settings(adapter):
    text = adapter.read_text()
    assert "pick_device" not in text and "torch.device(" not in text and "cuda" not in text


def test_outputs_are_readable_by_group_and_others(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"1")
    finally:
        os.umask(old)
    for name in ("a.json", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_train_settings_take_exactly_the_result_keys_of_the_schema(fashion_root):
    train = validate_config(base_config())["train"]
    assert set(TrainSettings.from_config(train).params()) | set(TRAIN_EXECUTION_KEYS) == set(train)
