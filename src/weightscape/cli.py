"""`weightscape` command line: tools for use outside the pipeline (later stages add spectra, compare, ...)."""

from __future__ import annotations

import argparse
import sys


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
        print(f"  {condition['name']:<24} family={condition['family']:<13} level={condition['level']:g}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="weightscape", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-config", help="validate a config and list its grid")
    check.add_argument("config", help="a weightscape YAML config")
    check.set_defaults(handler=_check)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
