"""Published per-run WeightWatcher analyses as a layers table for weightscape.stats (`weightscape compare
--manifest`): one CSV per analysed model, listed in a manifest.

Two ways a pretrained table is published, both accepted, also mixed:
* one per dataset / model / seed (condition column "pretrained"): every run of that seed started from it;
* one per run (condition column = the run's condition): every run analysed its own starting point, e.g. because
  it re-initialised its classifier head; Delta is then taken against that run's own table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from weightscape.names import BASELINE, DELTA, FAMILIES, FINETUNED, PRETRAINED, SPECTRAL_METRICS

MANIFEST_STAGES = (PRETRAINED, FINETUNED, DELTA)
MANIFEST_COLUMNS = ("path", "condition", "family", "stage", "dataset", "model")
#: column of a pretrained row's table: the condition it is the starting point of ("" = every run of its seed)
PRETRAINED_FOR = "pretrained_for"


def _read_table(file: Path, where: str) -> pd.DataFrame:
    """One WeightWatcher analyze() table (CSV); failed fits (alpha = -1) become NaN."""
    if not file.is_file():
        raise ValueError(f"{where}: missing file {file} (column path)")
    table = pd.read_csv(file, dtype={"longname": str, "name": str})
    table = table.drop(columns=[c for c in table.columns if c.startswith("Unnamed:")])
    if "longname" not in table.columns:
        raise ValueError(f"{file}: no longname column (not a WeightWatcher analyze() table)")
    if not [m for m in SPECTRAL_METRICS if m in table.columns]:
        raise ValueError(f"{file}: none of the metric columns {', '.join(SPECTRAL_METRICS)}")
    if "status" not in table.columns:
        table["status"] = "success"
    if "alpha" in table.columns:
        table["alpha"] = table["alpha"].where(table["alpha"] != -1)
    return table


def _level(r: pd.Series, where: str) -> float:
    """The row's `level` (dropout p / weight decay lambda; empty = none) as a float."""
    text = str(r.get("level", "")).strip()
    try:
        return float(text) if text else float("nan")
    except ValueError:
        raise ValueError(f"{where}: level {text!r} in column level is not a number") from None


def _checked_row(r: pd.Series, where: str) -> int:
    """Validate one manifest row; return its seed."""
    for col in MANIFEST_COLUMNS:
        if not str(r[col]).strip():
            raise ValueError(f"{where}: empty value in column {col}")
    if r["stage"] not in MANIFEST_STAGES:
        raise ValueError(f"{where}: unknown stage {r['stage']!r} in column stage; allowed: "
                         f"{', '.join(MANIFEST_STAGES)}")
    allowed = FAMILIES + ((PRETRAINED,) if r["stage"] == PRETRAINED else ())
    if r["family"] not in allowed:
        raise ValueError(f"{where}: unknown family {r['family']!r} in column family; allowed: {', '.join(allowed)}")
    try:
        return int(r["seed"] or 0)
    except ValueError:
        raise ValueError(f"{where}: seed {r['seed']!r} in column seed is not an integer") from None


def load_manifest(path: str | Path) -> pd.DataFrame:
    """Layers table from a manifest CSV of WeightWatcher `analyze()` tables saved as CSV.

    Manifest columns: path (relative to the manifest's folder), condition, family (baseline, dropout,
    weight_decay, diversity, synthetic, combined; "pretrained" allowed on pretrained rows), stage (pretrained,
    finetuned, or delta: a table of the run's update Delta W = W_finetuned - W_pretrained, as `weightscape spectra
    --base` writes it, the answer's second lens), dataset, model, optional seed (default 0) and level (the dropout
    p / weight decay lambda of a regularizer row, which the across-seed answer's dose-response needs). A pretrained
    row's condition is "pretrained" (the starting point of every run of its dataset / model / seed) or a run's
    condition (that run's own). Every
    fine-tuned table needs a pretrained table (its own, else its seed's) with the same longname set. Pretrained
    rows become condition = family = "pretrained", with `pretrained_for` naming their run ("" when shared).
    Any problem raises ValueError with one line naming the file/row/column.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"manifest not found: {path}")
    man = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in man.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; required: {', '.join(MANIFEST_COLUMNS)}")
    if "seed" not in man.columns:
        man["seed"] = "0"
    tables, pretrained = [], {}
    for i, r in man.iterrows():
        where = f"{path} row {i + 2}"
        seed = _checked_row(r, where)
        file = path.parent / r["path"]
        table = _read_table(file, where)
        key = (r["dataset"], r["model"], seed)
        if r["stage"] == PRETRAINED:
            own = "" if r["condition"] == PRETRAINED else r["condition"]
            if key + (own,) in pretrained:
                whose = f"condition {own!r}" if own else "dataset/model/seed"
                raise ValueError(f"{where}: second pretrained table for {whose} {key} in {file}")
            pretrained[key + (own,)] = (file, set(table["longname"]))
            table = table.assign(condition=PRETRAINED, family=PRETRAINED, **{PRETRAINED_FOR: own})
        else:
            table = table.assign(condition=r["condition"], family=r["family"])
        tables.append((where, file, key, table.assign(dataset=r["dataset"], model=r["model"], seed=seed,
                                                      stage=r["stage"], level=_level(r, where))))
    for where, file, key, table in tables:
        if table["stage"].iat[0] != FINETUNED:
            continue
        condition = table["condition"].iat[0]
        start = pretrained.get(key + (condition,)) or pretrained.get(key + ("",))
        if start is None:
            raise ValueError(f"{where}: no pretrained table for {file.name}: neither one for condition "
                             f"{condition!r} nor one for dataset/model/seed {key}")
        names = set(table["longname"])
        if names != start[1]:
            diff = sorted(names ^ start[1])[:5]
            raise ValueError(f"layer mismatch: longnames {diff} differ from {start[0].name} in {file}")
    keys = {t[2] for t in tables}
    base = {t[2] for t in tables if t[3]["family"].iat[0] == BASELINE and t[3]["stage"].iat[0] == FINETUNED}
    if keys - base:
        raise ValueError(f"{path}: no baseline (family=baseline) row for dataset/model/seed "
                         f"{sorted(keys - base)[0]}; each needs one")
    first = ["dataset", "model", "condition", "seed", "family", "stage"]
    layers = pd.concat([t[3] for t in tables], ignore_index=True)
    if PRETRAINED_FOR in layers.columns:
        layers[PRETRAINED_FOR] = layers[PRETRAINED_FOR].fillna("")
    return layers[first + [c for c in layers.columns if c not in first]]


def manifest_runs(layers: pd.DataFrame) -> pd.DataFrame:
    """The runs of a `load_manifest` layers table, one row per fine-tuned table: dataset, model, condition, family,
    seed, level - what the across-seed answer reads from runs.csv."""
    fin = layers[layers["stage"] == FINETUNED]
    cols = ["dataset", "model", "condition", "family", "seed", "level"]
    return fin.drop_duplicates(["dataset", "model", "condition", "seed"])[cols].reset_index(drop=True)
