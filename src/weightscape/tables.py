"""Aggregate tables of the results tree (pandas only, no torch): one row per run, one row per run x layer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from weightscape.io import atomic_path, read_json, write_csv


def runs_table(metrics_files: list[str | Path], keys: list[dict]) -> pd.DataFrame:
    """One row per run: its identity (`keys`, e.g. dataset/model) + flattened metrics."""
    rows = []
    for path, key in zip(metrics_files, keys):
        m = read_json(path)
        row = {**key, "condition": m["condition"], "family": m["family"], "level": m["level"], "seed": m["seed"],
               "n_train": m["n_train"], "epochs": m["epochs"], "final_train_loss": m["final_train_loss"]}
        row.update({f"id_{k}": v for k, v in m["id"].items()})
        row.update({f"val_{k}": v for k, v in m["val"].items()})
        row.update({f"ood_{k}": v for k, v in m["ood"]["mean"].items()})
        for corruption, severities in m["ood"]["by_corruption"].items():
            row[f"ood_accuracy_{corruption}"] = float(np.mean([c["accuracy"] for c in severities.values()]))
        rows.append(row)
    return pd.DataFrame(rows)


def write_runs_table(metrics_files, keys, out_csv) -> pd.DataFrame:
    table = runs_table(metrics_files, keys)
    write_csv(out_csv, table)
    return table


def layers_table(layer_files: list[str | Path], keys: list[dict]) -> pd.DataFrame:
    """All per-layer spectra tables stacked, each row prefixed by its run identity (`keys`: dataset, model,
    condition, seed, stage = pretrained | finetuned)."""
    frames = []
    for path, key in zip(layer_files, keys):
        frame = pd.read_parquet(path)
        for column, value in reversed(list(key.items())):
            frame.insert(0, column, value)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_layers_table(layer_files, keys, out_parquet) -> pd.DataFrame:
    table = layers_table(layer_files, keys)
    with atomic_path(out_parquet) as tmp:
        table.to_parquet(tmp, index=False)
    return table
