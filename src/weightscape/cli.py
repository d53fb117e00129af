"""`weightscape` command line: the pipeline's tools for use outside it (config check, spectra, ...)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _check(args: argparse.Namespace) -> int:
    from weightscape.config import ConfigError, expand_conditions, load_config

    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"weightscape: config error: {error}", file=sys.stderr)
        return 1
    conditions = expand_conditions(config)
    runs = len(config["datasets"]) * len(config["models"]) * len(conditions) * len(config["seeds"])
    print(f"{args.config}: valid; {len(conditions)} conditions x {len(config['seeds'])} seed(s) x "
          f"{len(config['datasets'])} dataset(s) x {len(config['models'])} model(s) = {runs} fine-tuning runs")
    for condition in conditions:
        level = "-" if condition["level"] is None else f"{condition['level']:g}"
        kind = f" kind={condition['kind']}" if condition["kind"] else ""
        print(f"  {condition['name']:<24} family={condition['family']:<13} level={level}{kind}")
    return 0


def _load_model(source: str, info: str | None, weights: str, num_classes: int | None):
    """A checkpoint file (safetensors + model.json) or an architecture spec from the model registry."""
    from weightscape.checkpoints import CheckpointError, load_checkpoint
    from weightscape.models import build_model, check_arch

    if source.endswith(".safetensors") or Path(source).is_file():
        return load_checkpoint(source, info)[0]
    try:
        check_arch(source)
    except ValueError:
        raise CheckpointError(f"{source}: neither an existing checkpoint file nor a known architecture "
                              f"(efficientnet_lite0, timm:<name>, torchvision:<name>)") from None
    return build_model(source, num_classes or 1000, weights=weights).module


def _spectra(args: argparse.Namespace) -> int:
    import pandas as pd

    from weightscape.checkpoints import CheckpointError
    from weightscape.io import atomic_path, write_csv
    from weightscape.runtime import pin_threads, progress

    pin_threads(args.threads)
    from weightscape.spectra.analyze import analyze
    from weightscape.spectra.esd import save_eigenvalues

    try:
        model = _load_model(args.model, args.info, args.weights, args.num_classes)
        base = _load_model(args.base, args.base_info, args.weights, args.num_classes) if args.base else None
        table, eigenvalues = analyze(model, base_model=base, convention=args.convention, mp_fit=args.mp_fit,
                                     randomize=args.randomize, farms=args.farms, min_tail=args.min_tail,
                                     image_size=args.image_size,
                                     return_eigenvalues=True,
                                     progress=lambda it, **kw: progress(it, sys.stderr, desc="layers", **kw))
    except (CheckpointError, ValueError, FileNotFoundError) as error:
        print(f"weightscape: {error}", file=sys.stderr)
        return 1
    if args.out.endswith(".parquet"):
        with atomic_path(args.out) as tmp:
            table.to_parquet(tmp, index=False)
    else:
        write_csv(args.out, table)
    if args.eigenvalues:
        save_eigenvalues(args.eigenvalues, eigenvalues)
    fitted = table[table["alpha"] > 0] if "alpha" in table else pd.DataFrame()
    print(f"{len(table)} layers analysed -> {args.out}" +
          (f"; mean alpha {fitted['alpha'].mean():.3f} over {len(fitted)} fitted layers" if len(fitted) else ""))
    return 0


def _compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from weightscape.manifest import load_manifest
    from weightscape.stats import compare

    try:
        layers = load_manifest(args.manifest)
        runs = pd.read_csv(args.runs) if args.runs else None
        tables = compare(layers, runs, out_dir=args.out, n_resamples=args.n_resamples, seed=args.seed)
    except (ValueError, FileNotFoundError) as error:
        print(f"weightscape: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    tests = tables["family_tests"]
    print(f"{len(layers)} layer rows from {args.manifest} -> {args.out}: " + ", ".join(
        f"{row.metric} F={row.F:.3g} p={row.p:.3g}" for row in tests.itertuples()))
    return 0


def _answer(args: argparse.Namespace) -> int:
    import pandas as pd
    import yaml

    from weightscape.answer import TABLES, answer, settings, write_answer
    from weightscape.io import write_csv
    from weightscape.lenses import lens_deltas
    from weightscape.manifest import load_manifest, manifest_runs
    from weightscape.stats import compare

    out = Path(args.out)
    try:
        stats_config = (yaml.safe_load(Path(args.config).read_text()) or {}).get("stats") if args.config else None
        cfg = settings(stats_config)
        layers = load_manifest(args.manifest)
        runs = manifest_runs(layers)
        if args.runs:
            outcomes = pd.read_csv(args.runs)
            keep = [c for c in outcomes.columns if c not in runs.columns or c in ("dataset", "model", "condition",
                                                                                  "seed")]
            runs = runs.merge(outcomes[keep], on=["dataset", "model", "condition", "seed"], how="left")
        diversity = pd.read_csv(args.diversity) if args.diversity else None
        tables = compare(layers, runs, out_dir=out / "compare")
        seeds = runs.groupby("condition")["seed"].nunique().min()
        if seeds < cfg["min_seeds"]:
            print(f"weightscape: the across-seed answer needs >= {cfg['min_seeds']} seeds per condition "
                  f"(stats.min_seeds); {args.manifest} has {seeds}: wrote the across-layer tables only, to "
                  f"{out / 'compare'}")
            return 0
        result = answer(lens_deltas(layers, w=tables["layer_deltas"]), runs, diversity=diversity, config=stats_config)
    except (ValueError, FileNotFoundError, yaml.YAMLError) as error:
        print(f"weightscape: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    write_answer(result, out / "answer")
    if args.keep_deltas:
        write_csv(out / "compare" / "layer_deltas.csv", tables["layer_deltas"])
    view = result["overview"][["condition", "family", "n_seeds", "verdict", "dropout", "weight_decay"]]
    print(view.to_string(index=False))
    print(f"-> {out / 'answer'} ({len(TABLES)} tables) and {out / 'compare'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="weightscape", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-config", help="validate a config and list its grid")
    check.add_argument("config", help="a weightscape YAML config")
    check.set_defaults(handler=_check)

    spectra = commands.add_parser("spectra", help="per-layer ESD metrics of one model (a faster WeightWatcher)",
                                  description="Analyse every weight matrix of a checkpoint or a registry model.")
    spectra.add_argument("model", help="a weights.safetensors with model.json beside it, or an arch spec "
                                       "(efficientnet_lite0, timm:<name>, torchvision:<name>)")
    spectra.add_argument("--out", required=True, help="the per-layer table: .csv or .parquet")
    spectra.add_argument("--eigenvalues", help="also store every layer's eigenvalues in this .npz")
    spectra.add_argument("--info", help="model.json describing the checkpoint (default: beside it)")
    spectra.add_argument("--weights", default="pretrained", help="for an arch spec: pretrained, random or a file")
    spectra.add_argument("--num-classes", type=int, help="for an arch spec: classifier outputs (default 1000)")
    spectra.add_argument("--base", help="analyse Delta W = W - W_base against this checkpoint or arch spec")
    spectra.add_argument("--base-info", help="model.json of --base (default: beside it)")
    spectra.add_argument("--convention", choices=["ww", "unfolded"], default="ww")
    spectra.add_argument("--mp-fit", action="store_true", help="Marchenko-Pastur fit columns")
    spectra.add_argument("--randomize", action="store_true", help="randomized ESD / correlation traps")
    spectra.add_argument("--farms", action="store_true", help="FARMS aspect-ratio-corrected alpha")
    spectra.add_argument("--min-tail", type=int, help="smallest power-law tail size considered")
    spectra.add_argument("--image-size", type=int,
                         help="leave out conv kernel taps that see only padding at this input size (zero gradient)")
    spectra.add_argument("--threads", type=int, default=1)
    spectra.set_defaults(handler=_spectra)

    comp = commands.add_parser("compare", help="family statistics of WeightWatcher-style layer tables",
                               description="Compare regularizer families with weightscape's statistics, from a "
                                           "manifest CSV (path, condition, family, stage, dataset, model) of "
                                           "WeightWatcher analyze() tables or weightscape layer tables.")
    comp.add_argument("--manifest", required=True)
    comp.add_argument("--out", required=True, help="folder for family_effects.csv, family_tests.csv, ...")
    comp.add_argument("--runs", help="optional runs.csv for accuracy / ECE / OOD statistics")
    comp.add_argument("--n-resamples", type=int, default=1000)
    comp.add_argument("--seed", type=int, default=0)
    comp.set_defaults(handler=_compare)

    ans = commands.add_parser("answer", help="the across-seed answer of published per-layer tables",
                              description="The across-seed verdicts (the pipeline's rule answer, same code) from a "
                                          "manifest CSV of WeightWatcher or weightscape per-layer tables: columns "
                                          "path, condition, family, stage, dataset, model, and optionally seed and "
                                          "level (dropout p / weight decay lambda of regularizer rows).")
    ans.add_argument("--manifest", required=True)
    ans.add_argument("--out", required=True, help="folder: answer/*.csv (across seeds) and compare/*.csv (across "
                                                  "layers)")
    ans.add_argument("--runs", help="optional runs.csv: accuracy / ECE / OOD outcomes of the overview table")
    ans.add_argument("--diversity", help="optional diversity.csv: Vendi scores for the paper claims")
    ans.add_argument("--config", help="optional weightscape YAML: its `stats` section (margins, metrics, alpha)")
    ans.add_argument("--keep-deltas", action="store_true", help="also write compare/layer_deltas.csv")
    ans.set_defaults(handler=_answer)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
