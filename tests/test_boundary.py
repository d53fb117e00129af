"""The boundary between Snakemake and the library: a job computes from its rule's input, params, wildcards and
threads (and the execution settings) only.

- No adapter reads snakemake.config; the one helper they share (weightscape.execution.job) reads only the
  execution settings (weightscape.settings.execution_only).
- Every key of the schema, perturbed one at a time, gives new params to exactly the rules whose outputs depend on
  it (execution settings to none), so what reruns a job is what the job uses.
- One job of every rule, run with its params and a config emptied of everything but the execution settings,
  writes the bytes the smoke run wrote.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from conftest import FASHION_MNIST_ROOT, REPO

ADAPTERS = sorted((REPO / "workflow_scripts").glob("*.py"))
JOBS = REPO / "tests" / "workflow_jobs.py"


# --- the adapters -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda p: p.stem)
def test_no_adapter_reads_the_config_and_every_one_opens_with_the_job_helper(adapter):
    tree = ast.parse(adapter.read_text())
    reads = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "config"
             and isinstance(node.value, ast.Name) and node.value.id == "snakemake"]
    assert reads == [], f"{adapter.name} reads snakemake.config on line(s) {reads}"
    body = tree.body[1:] if isinstance(tree.body[0].value if isinstance(tree.body[0], ast.Expr) else None,
                                       ast.Constant) else tree.body
    assert ast.unparse(body[0]) == "from weightscape.execution import job", adapter.name
    assert isinstance(body[1], ast.With) and len(body) == 2, f"{adapter.name}: the job is one `with job(...)` block"
    assert ast.unparse(body[1].items[0].context_expr) == "job(snakemake, __file__)", adapter.name


def test_the_job_helper_reads_only_the_execution_settings(fashion_root):
    from weightscape.config import validate_config
    from weightscape.execution import Job
    from weightscape.settings import Execution, execution_only

    config = validate_config(yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text()))
    config["train"].update(device="cpu", num_workers=2, eval_batch_size=64, jobs_per_gpu=4)
    config["datasets"][0]["download"] = True
    emptied = execution_only(config)
    assert execution_only(emptied) == emptied
    assert set(emptied) == {"train", "datasets", "generators"}
    run = Job(SimpleNamespace(config=emptied, threads=3), log=sys.stderr)
    assert run.execution == Execution(device="cpu", threads=3, num_workers=2, eval_batch_size=64, jobs_per_gpu=4)
    assert run.download("fashion_mnist") is True
    assert run.checkpoint_every("ddpm") == 10


# --- every key of the schema -------------------------------------------------------------------------------------
def schema_leaves() -> dict[str, dict]:
    """key path (lists of entries as `[]`, e.g. datasets[].root) -> its schema, for every settable key."""
    from weightscape.config import schema

    full = schema()

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            node = full["$defs"][node["$ref"].rsplit("/", 1)[1]]
        return node

    leaves = {}

    def walk(node: dict, path: str) -> None:
        node = resolve(node)
        if node.get("type") == "object" and "properties" in node:
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}" if path else key)
        elif node.get("type") == "array" and resolve(node.get("items", {})).get("properties"):
            walk(node["items"], f"{path}[]")
        else:
            leaves[path] = {**node, "items": resolve(node.get("items", {}))}

    walk(full, "")
    return leaves


#: key (or a prefix of keys) -> the rules that must get new params when it changes. Execution settings: none.
#: Keys that decide which jobs exist (names, levels, switches) also add or remove jobs; what is compared here is the
#: params of the jobs present both before and after.
RULES = {
    "datasets": {"prepare_data", "judge_split"},
    "datasets[].name": {"plots"},  # only its place in the paths of the ESD archives; the rest are other jobs
    "datasets[].download": set(),
    "datasets[].train_per_class": {"prepare_data"},  # the judge draws from the whole source, not from the split
    "datasets[].val_per_class": {"prepare_data"},
    "datasets[].test_per_class": {"prepare_data"},
    "datasets[].split_seed": {"prepare_data"},
    # each seed draws its own training subset: every job that trains or measures on a seed's data
    "datasets[].resample_per_seed": {"prepare_data", "finetune", "diversity", "curvature_reference", "curvature_run",
                                     "summary_md"},
    "models": {"pretrained"},
    "models[].name": {"plots"},
    "seeds": {"diversity"},
    "ood": {"corrupt"},
    "train": {"finetune", "train_judge"},
    "train.epochs": {"finetune"},  # the judge trains for fidelity.judge.epochs
    "train.eval_batch_size": set(), "train.device": set(), "train.threads": set(), "train.num_workers": set(),
    "train.jobs_per_gpu": set(),  # how many jobs share a GPU: their resources (gpu_slots), never their params
    "generators[].name": {"finetune", "diversity"},  # the synthetic conditions' mix names it
    "generators[]": {"synthesize"},
    "generators[].sample.threads": set(),
    "generators[].train": {"train_generator"},
    "generators[].train.threads": set(), "generators[].train.checkpoint_every": set(),
    "fidelity.judge.train_per_class": {"judge_split", "train_judge"},
    "fidelity.judge.seed": {"judge_split", "train_judge"},
    "fidelity.judge.epochs": {"train_judge"},
    "spectra": {"spectra_reference", "spectra_run", "spectra_delta"},
    "spectra.delta": set(),  # removes the spectra_delta jobs
    "curvature": {"curvature_reference", "curvature_run"},
    "curvature.enabled": set(),  # removes the curvature jobs and figure
    "curvature.every_epoch": {"finetune"},
    "diversity": {"diversity", "fidelity"},
    "compare": {"compare"},
    "stats": {"answer"},
    "plots": {"plots"},
    # a new level or condition: its own jobs, and the grid-wide tables that list every condition
    "families": {"summarize_spectra", "summarize_diversity", "plots"},
    "families.synthetic.generator": {"finetune", "diversity"},
    "conditions[].name": {"summarize_spectra", "summarize_diversity", "plots"},
    "conditions[].family": {"finetune", "summarize_spectra", "summarize_diversity", "plots"},
    "conditions[].combines": {"finetune", "summarize_diversity", "answer"},
    "conditions[].kind": {"finetune", "summarize_diversity"},
    "conditions[].level": {"finetune", "summarize_diversity"},
    "conditions[].dropout": {"finetune", "summarize_diversity"},  # a dropout condition's level is its p
    "conditions[].weight_decay": {"finetune"},
    "conditions[].transforms": {"finetune", "diversity"},
    "conditions[].mix": {"finetune", "diversity", "summarize_diversity"},  # the scheme is its kind, p its level
    "conditions[].mix.generator": {"finetune", "diversity"},
}

#: the smoke grid, plus what gives every key something to change: declared conditions of each kind, a second
#: generator, more synthetic images per class
EXTRA_CONDITIONS = [
    {"name": "jitter", "family": "diversity", "kind": "augment", "level": 1.0,
     "transforms": [{"name": "hflip", "args": {"p": 0.5}}]},
    {"name": "declared_dropout", "family": "dropout", "dropout": 0.2, "weight_decay": 0.0},
    {"name": "declared_mix", "family": "synthetic", "mix": {"scheme": "add", "p": 0.2, "generator": "ddpm"}},
]


def base_config() -> dict:
    config = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    config["conditions"] += copy.deepcopy(EXTRA_CONDITIONS)
    config["generators"][0]["per_class"] = 30
    config["generators"].append({**copy.deepcopy(config["generators"][0]), "name": "ddpm_b"})
    return config


def _parts(path: str) -> list[str]:
    """datasets[].root -> [datasets, [], root]; conditions[jitter].kind -> [conditions, [jitter], kind]."""
    return [part for piece in path.split(".") for part in
            ([piece[:piece.index("[")], piece[piece.index("["):]] if "[" in piece else [piece])]


def _entry(entries: list, selector: str, key: str) -> dict:
    """The entry of a list a key path means: `[name]` the one of that name, `[]` the first that has `key` (else
    the first)."""
    if selector != "[]":
        return next(entry for entry in entries if entry["name"] == selector[1:-1])
    return next((entry for entry in entries if key in entry), entries[0])


def _get(config: dict, path: str):
    parts, node = _parts(path), config
    for i, part in enumerate(parts):
        node = _entry(node, part, parts[i + 1]) if part.startswith("[") else node[part]
    return node


def _set(config: dict, path: str, value) -> None:
    parts, node = _parts(path), config
    for i, part in enumerate(parts[:-1]):
        node = _entry(node, part, parts[i + 1]) if part.startswith("[") else node.setdefault(part, {})
    node[parts[-1]] = value


def automatic(value, schema: dict):
    """A valid other value for a plain key, from its schema (None: the key needs an explicit perturbation)."""
    if schema.get("enum"):
        return next(v for v in schema["enum"] if v != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int) and not isinstance(value, bool):
        return value + 1 if value + 1 <= schema.get("maximum", value + 1) else value - 1
    if isinstance(value, float):
        for candidate in (value * 0.5, value + 0.05, value * 1.5):
            low, high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
            if (low is None or candidate > low) and (high is None or candidate < high) and \
                    schema.get("minimum", candidate) <= candidate <= schema.get("maximum", candidate) and \
                    candidate != value:
                return candidate
    if isinstance(value, list) and schema["items"].get("enum"):
        missing = [v for v in schema["items"]["enum"] if v not in value]
        return value + missing[:1] if missing else value[:-1]
    if isinstance(value, list) and value and isinstance(value[0], int):
        return value + [value[-1] + 1]
    return None


def explicit(tmp: Path) -> dict:
    """Perturbations a schema cannot suggest: key -> {key: value} set together (paths as in RULES)."""
    folder = tmp / "imagefolder"
    if not folder.exists():
        from PIL import Image

        for split, count in (("train", 40), ("test", 25)):
            for label in ("a", "b"):
                (folder / split / label).mkdir(parents=True)
                for i in range(count):
                    Image.new("L", (8, 8), i * 5).save(folder / split / label / f"{i}.png")
    (tmp / "fashion_copy").mkdir(exist_ok=True)
    for path in FASHION_MNIST_ROOT.glob("*-ubyte.gz"):
        if not (tmp / "fashion_copy" / path.name).exists():
            (tmp / "fashion_copy" / path.name).symlink_to(path)
    return {
        "datasets[].name": {"datasets[].name": "fmnist"},
        "datasets[].source": {"datasets[].source": "imagefolder", "datasets[].root": str(folder)},
        "datasets[].root": {"datasets[].root": str(tmp / "fashion_copy")},
        "models[].name": {"models[].name": "lite0"},
        "models[].arch": {"models[].arch": "torchvision:resnet18"},
        "models[].weights": {"models[].weights": "random"},
        "ood.corruptions": {"ood.corruptions": ["gaussian_noise", "fog"]},
        "ood.severities": {"ood.severities": [1, 3]},
        "generators[].name": {"generators[ddpm].name": "ddpm_c", "families.synthetic.generator": "ddpm_c",
                              "conditions[declared_mix].mix.generator": "ddpm_c"},
        "generators[].kind": {"generators[].kind": "stable_diffusion", "generators[].weights": "org/pipeline"},
        "generators[].weights": {"generators[].weights": str(REPO / "resources" / "generators" / "fashion_mnist-ddpm")},
        "generators[].prompt": {"generators[].prompt": "a picture of a {class}"},
        "generators[].train.arch.block_out_channels": {"generators[].train.arch.block_out_channels": [16, 32, 64]},
        "spectra.min_tail": {"spectra.min_tail": 4},
        "stats.equivalence_margin": {"stats.equivalence_margin": {"default": 0.1}},
        "plots.esd_layers": {"plots.esd_layers": ["classifier"]},
        "plots.layer_metric": {"plots.layer_metric": "log_norm"},
        "families.dropout": {"families.dropout": [0.5, 0.3]},
        "families.weight_decay": {"families.weight_decay": [1.0e-3, 1.0e-4]},
        "families.diversity.noise": {"families.diversity.noise": [0.05, 0.1]},
        "families.synthetic.generator": {"families.synthetic.generator": "ddpm_b"},
        "families.synthetic.add": {"families.synthetic.add": [0.2]},
        "families.synthetic.replace": {"families.synthetic.replace": [0.5, 0.4]},
        "conditions[].name": {"conditions[jitter].name": "renamed"},
        "conditions[].family": {"conditions[declared_dropout].family": "weight_decay"},  # its weight decay: 0
        "conditions[].combines": {"conditions[].combines": ["noise_0.05", "dropout_0.5"]},
        "conditions[].kind": {"conditions[].kind": "stacked"},
        "conditions[].transforms[].name": {"conditions[].transforms": [{"name": "vflip", "args": {"p": 0.5}}]},
        "conditions[].transforms[].args": {"conditions[].transforms": [{"name": "hflip", "args": {"p": 0.6}}]},
        "conditions[].mix.scheme": {"conditions[].mix.scheme": "replace"},
        "conditions[].mix.generator": {"conditions[].mix.generator": "ddpm_b"},
    }


def expected_rules(key: str) -> set[str]:
    """RULES of the longest prefix of `key` that names a key or a section."""
    prefixes = [p for p in RULES if key == p or key.startswith(p + ".") or key.startswith(p + "[]")]
    if not prefixes:
        raise KeyError(f"{key}: no entry in RULES; say which rules' params it belongs to")
    return RULES[max(prefixes, key=len)]


def test_every_key_of_the_schema_gives_new_params_to_exactly_the_rules_that_use_it(tmp_path, fashion_root):
    from weightscape.config import validate_config

    base = base_config()
    full = validate_config(copy.deepcopy(base), base_dir=tmp_path)
    changes = explicit(tmp_path)
    configs = {"base": tmp_path / "base.yaml"}
    configs["base"].write_text(yaml.safe_dump(base))
    for key, schema in schema_leaves().items():
        change = changes.get(key)
        if change is None:
            value = automatic(_get(full, key), schema)
            assert value is not None, f"{key}: add a perturbation to explicit()"
            change = {key: value}
        config = copy.deepcopy(base)
        for path, value in change.items():
            _set(config, path, value)
        configs[key] = tmp_path / f"{key.replace('[]', '').replace('.', '-')}.yaml"
        configs[key].write_text(yaml.safe_dump(config))
    out = tmp_path / "params.json"
    done = subprocess.run([sys.executable, str(JOBS), "params", str(tmp_path), str(out),
                           *map(str, configs.values())], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    found = {key: json.loads(out.read_text())[str(path)] for key, path in configs.items()}
    reference = found.pop("base")
    wrong = {}
    for key, jobs in found.items():
        changed = {job.split()[0] for job in set(jobs) & set(reference) if jobs[job] != reference[job]}
        if changed != expected_rules(key):
            wrong[key] = {"changed": sorted(changed), "expected": sorted(expected_rules(key))}
    assert wrong == {}


# --- a job with its params and an emptied config -----------------------------------------------------------------
#: outputs that record how long their job took (compared without these keys)
TIMED = {"synthesize": ("seconds", "images_per_second"), "train_generator": ("train_seconds",)}
DRIVER = """
import pickle, sys
adapter, objects = sys.argv[1], sys.argv[2]
with open(objects, "rb") as fh:
    snakemake = pickle.load(fh)
exec(compile(open(adapter).read(), adapter, "exec"), {"snakemake": snakemake, "__file__": adapter,
                                                      "__name__": "__main__"})
"""


def _content(path: Path, rule: str):
    if path.suffix == ".json" and rule in TIMED:
        return {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMED[rule]}
    return path.read_bytes()


@pytest.mark.pipeline
def test_every_rules_job_writes_the_runs_bytes_from_its_params_and_an_emptied_config(smoke, tmp_path):
    workdir, config = smoke
    objects = tmp_path / "objects"
    objects.mkdir()
    done = subprocess.run([sys.executable, str(JOBS), "objects", str(workdir), str(objects), str(config)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    index = json.loads((objects / "index.json").read_text())
    assert {entry["rule"] for entry in index} >= {"finetune", "prepare_data", "train_generator", "answer", "plots"}
    env = {**os.environ, "WEIGHTSCAPE_FORK_SERVER": "0"}
    differ = {}
    for entry in index:  # each in a folder of its own that holds its inputs (links to the run's) and nothing else
        rule, scratch = entry["rule"], tmp_path / entry["rule"]
        snakemake = pickle.loads((objects / f"{rule}.pickle").read_bytes())
        for path in [*snakemake.output, *snakemake.log]:
            (scratch / path).parent.mkdir(parents=True, exist_ok=True)
        for path in entry["inputs"]:
            if not Path(path).is_absolute() and not (scratch / path).exists():
                (scratch / path).parent.mkdir(parents=True, exist_ok=True)
                (scratch / path).symlink_to(workdir / path)
        ran = subprocess.run([sys.executable, "-c", DRIVER, entry["script"], str(objects / f"{rule}.pickle")],
                             cwd=scratch, env=env, capture_output=True, text=True, timeout=900)
        assert ran.returncode == 0, (entry["job"], ran.stderr[-2000:])
        for output in entry["outputs"]:
            if _content(scratch / output, rule) != _content(workdir / output, rule):
                differ.setdefault(entry["job"], []).append(output)
    assert differ == {}
