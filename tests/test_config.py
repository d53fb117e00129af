"""Config validation: defaults are filled, and every bad value is one line naming the key and what is allowed."""

import copy

import pytest
import yaml

from conftest import REPO, base_config, tiny_dataset_config
from weightscape.config import ConfigError, expand_conditions, load_config, validate_config


def test_defaults_are_filled_from_the_schema(fashion_root):
    config = validate_config(base_config())
    assert config["train"]["optimizer"] == "adam"
    assert config["train"]["weight_decay_mode"] == "coupled"
    assert config["models"][0]["weights"] == "pretrained"
    assert config["models"][0]["image_size"] == 32
    assert config["ood"]["severities"] == [1, 2, 3, 4, 5]
    assert config["families"]["baseline"] is True
    assert config["datasets"][0]["split_seed"] == 0


def test_shipped_configs_validate_and_expand(fashion_root):
    default = load_config(REPO / "config.yaml")
    names = [c["name"] for c in expand_conditions(default)]
    assert names[0] == "baseline" and len(names) == 23  # the paper's 21-condition vision grid + 2 synthetic mixes
    families = [c["family"] for c in expand_conditions(default)]
    assert families.count("dropout") == 4 and families.count("weight_decay") == 6 and families.count("diversity") == 10
    synthetic = [c for c in expand_conditions(default) if c["family"] == "synthetic"]
    assert [(c["name"], c["mix"]) for c in synthetic] == [
        ("replace_0.5", {"scheme": "replace", "p": 0.5, "generator": "ddpm"}),
        ("add_0.5", {"scheme": "add", "p": 0.5, "generator": "ddpm"})]
    kinds = [c["kind"] for c in expand_conditions(default) if c["family"] == "diversity"]
    assert kinds.count("augment") == 4 and kinds.count("noise") == 3 and kinds.count("stacked") == 3
    smoke = load_config(REPO / "configs/smoke.yaml")
    assert [(c["family"], c["kind"]) for c in expand_conditions(smoke)] == [
        ("baseline", None), ("dropout", None), ("weight_decay", None), ("diversity", "augment"), ("diversity", "noise"),
        ("synthetic", "replace"), ("combined", "augment")]
    combined = expand_conditions(smoke)[-1]
    assert combined["combines"] == ["autoaugment", "dropout_0.5"] and combined["dropout"] == 0.5
    assert combined["transforms"] == [{"name": "autoaugment", "args": {}}] and combined["level"] == 0.5


def test_diversity_conditions_carry_their_transforms(fashion_root):
    by_name = {c["name"]: c for c in expand_conditions(validate_config(base_config()))}
    assert by_name["noise_0.03"]["transforms"] == [{"name": "gaussian_noise", "args": {"std": 0.03}}]
    assert by_name["noise_0.03"]["level"] == 0.03 and by_name["autoaugment"]["level"] is None
    assert [t["name"] for t in by_name["auto3"]["transforms"]] == ["autoaugment", "hflip", "elastic", "gaussian_noise"]
    assert [t["name"] for t in by_name["auto2"]["transforms"]] == ["autoaugment", "gaussian_noise", "hflip", "vflip"]


def test_conditions_set_their_knob_and_level(fashion_root):
    config = validate_config(base_config(conditions=[{"name": "heavy_drop", "family": "dropout", "dropout": 0.6}]))
    by_name = {c["name"]: c for c in expand_conditions(config)}
    assert by_name["dropout_0.5"] == {"name": "dropout_0.5", "family": "dropout", "kind": None, "level": 0.5,
                                      "dropout": 0.5, "weight_decay": 0.0, "transforms": [], "mix": None}
    assert by_name["weight_decay_0.001"]["weight_decay"] == 0.001 and by_name["weight_decay_0.001"]["dropout"] == 0
    assert by_name["baseline"]["dropout"] == 0 and by_name["baseline"]["weight_decay"] == 0
    assert by_name["heavy_drop"]["level"] == 0.6


def _with(path: str, value):
    """base_config() with one key set (path like 'train.epochs' or 'datasets.0.source'); value None deletes it."""
    config = base_config()
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    key = int(last) if last.isdigit() else last
    node[key] = value
    return config


BAD_CONFIGS = {
    "unknown dataset": (_with("datasets.0.source", "mnist3d"), "datasets[0].source", "fashion_mnist"),
    "unknown model": (_with("models.0.arch", "resnet9000"), "models[0].arch", "timm:"),
    "unknown timm model": (_with("models.0.arch", "timm:not_a_real_net"), "models[0].arch", "not_a_real_net"),
    "unknown family": (base_config(conditions=[{"name": "x", "family": "dropconnect"}]), "conditions[0].family",
                       "weight_decay"),
    "dropout = 1": (_with("families.dropout", [1.0]), "families.dropout[0]", "< 1"),
    "negative dropout": (_with("families.dropout", [-0.1]), "families.dropout[0]", ">= 0"),
    "negative weight decay": (_with("families.weight_decay", [-1e-4]), "families.weight_decay[0]", ">= 0"),
    "zero epochs": (_with("train.epochs", 0), "train.epochs", ">= 1"),
    "missing imagefolder path": (_with("datasets.0", tiny_dataset_config(source="imagefolder", root="/nonexistent/x")),
                                 "datasets[0].root", "/nonexistent/x"),
    "missing fashion root": (_with("datasets.0.root", "/nonexistent/fmnist"), "datasets[0].root", "/nonexistent/fmnist"),
    "train size too large": (_with("datasets.0.train_per_class", 7000), "datasets[0].train_per_class", "6000"),
    "test size too large": (_with("datasets.0.test_per_class", 5000), "datasets[0].test_per_class", "1000"),
    "duplicate condition": (base_config(conditions=[{"name": "baseline", "family": "baseline"}]), "conditions",
                            "duplicate condition name 'baseline'"),
    "duplicate dataset": (base_config(datasets=[tiny_dataset_config(), tiny_dataset_config()]), "datasets[1].name",
                          "duplicate"),
    "unknown top-level key": (base_config(trian={"lr": 0.1}), "trian", "unknown key"),
    "unknown nested key": (_with("train.lr_schedule", "cosine"), "train.lr_schedule", "allowed keys here"),
    "wrong type": (_with("train.lr", "fast"), "train.lr", "expected number"),
    "empty seed list": (_with("seeds", []), "seeds", "at least 1"),
    "duplicate seeds": (_with("seeds", [1, 1]), "seeds", "duplicates"),
    "bad name": (_with("datasets.0.name", "my data/1"), "datasets[0].name", "not a valid name"),
    "unknown corruption": (_with("ood.corruptions", ["frost"]), "ood.corruptions[0]", "gaussian_noise"),
    "ood larger than test": (_with("ood.test_per_class", 50), "ood.test_per_class", "more than"),
    "missing weights file": (_with("models.0.weights", "nowhere.safetensors"), "models[0].weights", "nowhere"),
    "sgd with decoupled decay": (_with("train.optimizer", "sgd") | {"train": {"optimizer": "sgd",
                                 "weight_decay_mode": "decoupled"}}, "train.weight_decay_mode", "adam+decoupled"),
    "dropout condition without p": (base_config(conditions=[{"name": "d", "family": "dropout"}]),
                                    "conditions[0].dropout", "must set dropout"),
    "unknown augmentation": (_with("families.diversity", {"augment": ["mixup"]}), "families.diversity.augment[0]",
                             "autoaugment"),
    "zero noise std": (_with("families.diversity", {"noise": [0.0]}), "families.diversity.noise[0]", "> 0"),
    "unknown transform": (base_config(conditions=[{"name": "x", "family": "diversity", "kind": "augment",
                                                   "transforms": [{"name": "autoaugmnet"}]}]),
                          "conditions[0].transforms[0].name", "autoaugment"),
    "bad transform argument": (base_config(conditions=[{"name": "x", "family": "diversity", "kind": "augment",
                                                        "transforms": [{"name": "autoaugment",
                                                                        "args": {"polcy": "imagenet"}}]}]),
                               "conditions[0].transforms[0].args.polcy", "policy"),
    "diversity without kind": (base_config(conditions=[{"name": "x", "family": "diversity",
                                                        "transforms": [{"name": "hflip"}]}]),
                               "conditions[0].kind", "augment"),
    "transforms on dropout": (base_config(conditions=[{"name": "x", "family": "dropout", "dropout": 0.2,
                                                       "transforms": [{"name": "hflip"}]}]),
                              "conditions[0].transforms", "only diversity"),
    "synthetic without generator": (_with("families.synthetic", {"replace": [0.5]}), "families.synthetic.generator",
                                    "not a declared generator"),
    "unknown generator": (base_config(generators=[{"name": "ddpm", "kind": "ddpm"}],
                                      families={"synthetic": {"generator": "gan", "add": [0.5]}}),
                          "families.synthetic.generator", "declared: ddpm"),
    "too few synthetic images": (base_config(generators=[{"name": "g", "kind": "ddpm", "per_class": 2}],
                                             families={"synthetic": {"generator": "g", "add": [0.5]}}),
                                 "generators[0].per_class", "needs 4 synthetic images per class"),
    "missing generator directory": (base_config(generators=[{"name": "g", "kind": "ddpm", "weights": "nowhere/gen"}]),
                                    "generators[0].weights", "'nowhere/gen' is not a generator directory"),
    "stable diffusion without weights": (base_config(generators=[{"name": "sd", "kind": "stable_diffusion"}]),
                                         "generators[0].weights", "hub id"),
    "unknown generator kind": (base_config(generators=[{"name": "g", "kind": "gan"}]), "generators[0].kind", "ddpm"),
    "duplicate generator": (base_config(generators=[{"name": "g", "kind": "ddpm"}, {"name": "g", "kind": "ddpm"}]),
                            "generators[1].name", "duplicate generator name"),
    "synthetic share above 1": (_with("families.synthetic", {"replace": [1.5]}), "families.synthetic.replace[0]",
                                "<= 1"),
    "synthetic condition without mix": (base_config(conditions=[{"name": "x", "family": "synthetic"}]),
                                        "conditions[0].mix", "must set mix"),
    "mix on a dropout condition": (base_config(conditions=[{"name": "x", "family": "dropout", "dropout": 0.1,
                                                            "mix": {"scheme": "add", "p": 0.5, "generator": "g"}}]),
                                   "conditions[0].mix", "only synthetic"),
    "combined without combines": (base_config(conditions=[{"name": "c", "family": "combined"}]),
                                  "conditions[0].combines", "must name"),
    "combined with an unknown condition": (base_config(conditions=[{"name": "c", "family": "combined",
                                                                    "combines": ["autoaugment", "dropout_0.9"]}]),
                                           "conditions[0].combines[1]", "'dropout_0.9' is not a condition"),
    "combined the wrong way round": (base_config(conditions=[{"name": "c", "family": "combined",
                                                              "combines": ["dropout_0.5", "autoaugment"]}]),
                                     "conditions[0].combines[0]", "allowed: diversity or synthetic"),
    "combined with its own dropout": (base_config(conditions=[{"name": "c", "family": "combined", "dropout": 0.2,
                                                               "combines": ["autoaugment", "dropout_0.5"]}]),
                                      "conditions[0].dropout", "takes its data and regularizer from combines"),
    "combines on a dropout condition": (base_config(conditions=[{"name": "d", "family": "dropout", "dropout": 0.2,
                                                                 "combines": ["autoaugment", "dropout_0.5"]}]),
                                        "conditions[0].combines", "only combined conditions"),
    "unknown stats metric": (_with("stats.metrics", ["alpah"]), "stats.metrics[0]", "log_norm"),
    "negative margin": (_with("stats.equivalence_margin", {"default": -1}), "stats.equivalence_margin.default",
                        "equivalence_margin"),
    "too few seeds for the verdicts": (_with("stats.min_seeds", 1), "stats.min_seeds", ">= 2"),
    "missing datasets": (_with("datasets", None) | {"datasets": None}, "datasets", "expected array"),
    "empty grid": (_with("families", {"baseline": False, "dropout": [], "weight_decay": [],
                                      "diversity": {"augment": [], "noise": [], "stacked": []}}), "families",
                   "grid is empty"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_bad_config_is_one_line_naming_the_key(case, fashion_root):
    config, key, allowed = BAD_CONFIGS[case]
    with pytest.raises(ConfigError) as info:
        validate_config(copy.deepcopy(config))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(key), message
    assert allowed in message, message


def test_at_least_twelve_distinct_bad_configs_are_covered():
    assert len(BAD_CONFIGS) >= 12
    assert len({key for _, key, _ in BAD_CONFIGS.values()}) >= 12


def test_load_config_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("datasets: [\n  - name: x\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listing)


def test_cli_check_config_lists_the_grid_or_one_error_line(tmp_path, capsys, fashion_root):
    from weightscape.cli import main

    assert main(["check-config", str(REPO / "configs" / "smoke.yaml")]) == 0
    out = capsys.readouterr().out
    assert "7 conditions x 3 seed(s)" in out and "= 21 fine-tuning runs" in out
    assert "dropout_0.5" in out and "kind=noise" in out and "kind=replace" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(base_config(seeds=[])))
    assert main(["check-config", str(bad)]) == 1
    assert capsys.readouterr().err.strip() == "weightscape: config error: seeds: needs at least 1 item(s), got 0"


def test_schema_enums_match_the_registries_they_name():
    """Each schema enum lists exactly the names of the registry that serves it (one fails when either side gains
    a name the other lacks)."""
    from weightscape.config import schema
    from weightscape.config.conditions import AUGMENT_SOURCES, DIVERSITY_KINDS, MIX_SCHEMES, STACKED_PRESETS
    from weightscape.augment import TRANSFORMS
    from weightscape.data.corruptions import CORRUPTIONS
    from weightscape.data.sources import SOURCES
    from weightscape.names import FAMILIES, SPECTRAL_METRICS
    from weightscape.spectra import CONVENTIONS
    from weightscape.synth.generate import SYNTHESIZERS
    from weightscape.train import OPTIMIZERS

    s, p = schema(), "properties"
    condition = s[p]["conditions"]["items"][p]
    pairs = {
        "datasets[].source": (s[p]["datasets"]["items"][p]["source"]["enum"], SOURCES),
        "train.optimizer": (s[p]["train"][p]["optimizer"]["enum"], {o for o, _ in OPTIMIZERS}),
        "train.weight_decay_mode": (s[p]["train"][p]["weight_decay_mode"]["enum"], {m for _, m in OPTIMIZERS}),
        "generators[].kind": (s[p]["generators"]["items"][p]["kind"]["enum"], SYNTHESIZERS),
        "families.diversity.augment": (s[p]["families"][p]["diversity"][p]["augment"]["items"]["enum"],
                                       AUGMENT_SOURCES),
        "families.diversity.stacked": (s[p]["families"][p]["diversity"][p]["stacked"]["items"]["enum"],
                                       STACKED_PRESETS),
        "corruption": (s["$defs"]["corruption"]["enum"], CORRUPTIONS),
        "ood.corruptions default": (s[p]["ood"][p]["corruptions"]["default"], CORRUPTIONS),
        "conditions[].family": (condition["family"]["enum"], FAMILIES),
        "conditions[].kind": (condition["kind"]["enum"], DIVERSITY_KINDS + MIX_SCHEMES),
        "conditions[].mix.scheme": (condition["mix"][p]["scheme"]["enum"], MIX_SCHEMES),
        "spectra.convention": (s[p]["spectra"][p]["convention"]["enum"], CONVENTIONS),
        "stats.metrics": (s[p]["stats"][p]["metrics"]["items"]["enum"], SPECTRAL_METRICS),
    }
    for key, (enum, registry) in pairs.items():
        assert sorted(enum) == sorted(registry), key
    assert set(AUGMENT_SOURCES) <= set(TRANSFORMS)


def test_a_weights_file_that_is_no_checkpoint_fails_the_config_check(tmp_path, fashion_root):
    broken = tmp_path / "model.safetensors"
    broken.write_bytes(b"not a checkpoint")
    config = base_config(models=[{"name": "lite0", "arch": "efficientnet_lite0", "weights": str(broken)}])
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert message.startswith("models[0].weights: ") and str(broken) in message and "\n" not in message
    assert "not a readable checkpoint" in message
