"""Aggregate tables of the results tree (pandas only, no torch): one row per run, one row per analysed model x layer.

Every row's identity (dataset, model, condition, seed, ...) is read from its own file's path by
:func:`weightscape.layout.identity`, never paired with the file by list order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from weightscape import layout
from weightscape.io import atomic_path, read_json, write_csv
from weightscape.names import CURVATURE_COLUMNS, PRETRAINED


def checked_identity(path: str | Path, data: dict) -> dict:
    """`layout.identity(path)`, checked against the identity keys the file itself records (a moved or renamed file
    would otherwise be summarised under the wrong name)."""
    identity = layout.identity(path)
    clash = {key for key in identity if key in data and data[key] != identity[key]}
    if clash:
        raise ValueError(f"{path}: {sorted(clash)} recorded in the file disagree with its place {identity}")
    return identity


def runs_table(metrics_files: list[str | Path], curvature_files: list[str | Path] = ()) -> pd.DataFrame:
    """One row per run: its identity + flattened metrics (in the order of `metrics_files`), and, given the runs'
    and references' curvature.json files, the run's Hessian trace / top eigenvalue and its reference's
    (`<column>_pretrained`)."""
    curvature = {}
    for path in curvature_files:
        identity = layout.identity(path)
        curvature[tuple(identity[k] for k in ("dataset", "model", "condition", "seed"))] = read_json(path)
    rows = []
    for path in metrics_files:
        m = read_json(path)
        identity = checked_identity(path, m)
        row = {"dataset": identity["dataset"], "model": identity["model"], "condition": m["condition"],
               "family": m["family"], "level": m["level"], "seed": m["seed"], "n_train": m["n_train"],
               "epochs": m["epochs"], "final_train_loss": m["final_train_loss"],
               "final_train_accuracy": m.get("final_train_accuracy", np.nan)}
        row.update({f"id_{k}": v for k, v in m["id"].items()})
        row.update({f"val_{k}": v for k, v in m["val"].items()})
        row.update({f"ood_{k}": v for k, v in m["ood"]["mean"].items()})
        for corruption, severities in m["ood"]["by_corruption"].items():
            row[f"ood_accuracy_{corruption}"] = float(np.mean([c["accuracy"] for c in severities.values()]))
        if curvature:
            key = (identity["dataset"], identity["model"], m["condition"], m["seed"])
            own, reference = curvature[key], curvature[(*key[:2], PRETRAINED, key[3])]
            row.update({column: own[column] for column in CURVATURE_COLUMNS})
            row.update({f"{column}_pretrained": reference[column] for column in CURVATURE_COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows)


def write_runs_table(metrics_files, out_csv, curvature_files=()) -> pd.DataFrame:
    table = runs_table(metrics_files, curvature_files)
    write_csv(out_csv, table)
    return table


def layers_table(layer_files: list[str | Path], families: dict[str, str]) -> pd.DataFrame:
    """All per-layer spectra tables stacked, each row prefixed by its identity (dataset, model, condition, seed,
    family, stage = pretrained | finetuned | delta); `families` maps each condition to its family."""
    frames = []
    for path in layer_files:
        identity = layout.identity(path)
        if identity["stage"] == PRETRAINED:
            key = {"dataset": identity["dataset"], "model": identity["model"], "seed": identity["seed"],
                   "condition": PRETRAINED, "family": PRETRAINED, "stage": PRETRAINED}
        else:
            condition = identity["condition"]
            if condition not in families:
                raise ValueError(f"{path}: condition {condition!r} has no family; known: {', '.join(families)}")
            key = {"dataset": identity["dataset"], "model": identity["model"], "condition": condition,
                   "seed": identity["seed"], "family": families[condition], "stage": identity["stage"]}
        frame = pd.read_parquet(path)
        for column, value in reversed(list(key.items())):
            frame.insert(0, column, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_layers_table(layer_files, families, out_parquet) -> pd.DataFrame:
    table = layers_table(layer_files, families)
    with atomic_path(out_parquet) as tmp:
        table.to_parquet(tmp, index=False)
    return table
