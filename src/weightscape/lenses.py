"""The two lenses of the across-seed answer, in one long per-layer table with a `lens` column.

    W      the fine-tuned weights against pretrained: metric(W_finetuned) - metric(W_pretrained) (stats.layer_deltas)
    delta  the update itself: metric(Delta W), Delta W = W_finetuned - W_pretrained (spectra stage "delta")

Fine-tuning moves each matrix by about a tenth of its norm, so W's spectra barely change, while the update's own
spectra carry the change whole. In both lenses the paired effect of a run is its value minus the same seed's
baseline value (`relative`), so the across-seed machinery of weightscape.answer reads either alike.

    lens_deltas(layers)             both lenses (the delta lens only where the layers table has delta rows)
    eligible(deltas, min_evals)     tail-fit metrics only on layers with >= min_evals eigenvalues; what was left out
    layer_groups(deltas)            where in the network: position (stem / early / middle / late / head) and kind
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from weightscape.names import BASELINE, DELTA, PRETRAINED
from weightscape.stats import GROUP, LAYER_STRUCTURE, _metrics, frozen_layers, layer_deltas

W, UPDATE = "W", "delta"
LENSES = (W, UPDATE)
#: how each lens is written in prose
LENS_NAMES = {W: "W", UPDATE: "Delta W"}
#: metrics computed from a power-law fit of the ESD's tail (meaningless on a handful of eigenvalues)
TAIL_METRICS = ("alpha", "alpha_weighted", "log_alpha_norm")
#: metrics of a matrix's size, which batch norm after a layer makes functionally inert; the rest are its shape
SCALE_METRICS = ("log_norm", "log_spectral_norm")
#: a layer whose doubled weight changes the training-mode output by less than this has an inert scale
INERT = 0.01


def inert_layers(deltas: pd.DataFrame) -> pd.DataFrame:
    """Per model: how many analysed layers have an inert scale (scale_effect < INERT), of how many measured, and
    which kinds are not inert. Empty without a scale_effect column."""
    if "scale_effect" not in deltas.columns:
        return pd.DataFrame()
    layers = deltas.drop_duplicates(["dataset", "model", "longname"]).dropna(subset=["scale_effect"])
    kinds = layer_groups(layers).set_index("longname")["kind"]
    rows = []
    for (dataset, model), part in layers.groupby(["dataset", "model"], sort=False):
        inert = part["scale_effect"] < INERT
        rows.append(dict(dataset=dataset, model=model, n_layers=len(part), n_inert=int(inert.sum()),
                         not_inert=", ".join(dict.fromkeys(kinds.reindex(part.loc[~inert, "longname"])))))
    return pd.DataFrame(rows)


def update_deltas(layers: pd.DataFrame) -> pd.DataFrame:
    """The delta lens as a stats.layer_deltas-shaped table: one row per (run, layer, metric) of the stage "delta"
    tables, finetuned = delta = metric(Delta W), pretrained = NaN, relative = metric(Delta W) minus the same
    dataset / model / seed's baseline metric(Delta W). Only status "success"; failed alpha fits (-1) are NaN.
    Layers whose update has no finite metric in any run (an update of exactly zero) are dropped and listed in
    attrs["frozen_layers"]. Empty when there are no delta rows."""
    df = layers[layers["stage"] == DELTA] if "stage" in layers.columns else layers.iloc[:0]
    if df.empty:
        return pd.DataFrame()
    if "status" in df.columns:
        df = df[df["status"].astype(str) == "success"]
    df = df.assign(longname=df["longname"].astype(str))
    if "alpha" in df.columns:
        df = df.assign(alpha=df["alpha"].where(df["alpha"] != -1))
    keys = GROUP + ["longname"]
    id_cols = keys + ["condition", "family", "layer_type"] + [c for c in LAYER_STRUCTURE if c in df.columns]
    metrics = _metrics(df)
    long = df.melt(id_vars=id_cols, value_vars=metrics, var_name="metric", value_name="finetuned")
    long["finetuned"] = long["finetuned"].astype(float).where(np.isfinite(long["finetuned"].astype(float)))
    long = long.assign(pretrained=np.nan, delta=long["finetuned"])
    base = long[long["family"] == BASELINE].drop_duplicates(keys + ["metric"]).set_index(keys + ["metric"])
    if base.empty:
        raise ValueError("layers table has no baseline (family=baseline) delta rows")
    long["relative"] = long["finetuned"].to_numpy() - base["finetuned"].reindex(
        long.set_index(keys + ["metric"]).index).to_numpy()
    alive = long.groupby(["dataset", "model", "longname"], sort=False)["finetuned"].apply(lambda v: v.notna().any())
    dead = alive[~alive].reset_index()[["dataset", "model", "longname"]]
    if len(dead):
        long = long[long.set_index(["dataset", "model", "longname"]).index.isin(alive[alive].index)]
    long = long.reset_index(drop=True)
    long.attrs["frozen_layers"] = dead.to_dict("records")
    return long


def lens_deltas(layers: pd.DataFrame, w: pd.DataFrame | None = None) -> pd.DataFrame:
    """Both lenses in one table with a `lens` column (W from `w` = stats.layer_deltas(layers) when given).
    attrs["frozen_layers"]: the layers each lens dropped (with their lens)."""
    w = layer_deltas(layers) if w is None else w
    update = update_deltas(layers)
    frozen = [dict(r, lens=W) for r in frozen_layers(w).to_dict("records")]
    frozen += [dict(r, lens=UPDATE) for r in update.attrs.get("frozen_layers", [])] if len(update) else []
    out = pd.concat([w.assign(lens=W)] + ([update.assign(lens=UPDATE)] if len(update) else []), ignore_index=True)
    if "scale_effect" in layers.columns:  # measured on the references: a property of each layer
        effect = layers[layers["stage"] == PRETRAINED].groupby(["dataset", "model", "longname"])["scale_effect"].max()
        out["scale_effect"] = effect.reindex(pd.MultiIndex.from_frame(out[["dataset", "model", "longname"]])
                                             ).to_numpy()
    out.attrs["frozen_layers"] = frozen
    return out


# ----------------------------------------------------------------------------------------------- eligibility
EXCLUDED_COLUMNS = ["lens", "dataset", "model", "longname", "metrics", "reason"]


def eligible(deltas: pd.DataFrame, min_evals: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(deltas with the tail-fit metrics set to NaN on layers with fewer than `min_evals` eigenvalues, the table
    of what was left out and why: those fits, the layers a lens dropped as frozen, and the kernel taps the
    spectra left out because they see only padding - columns EXCLUDED_COLUMNS)."""
    out = deltas if "lens" in deltas.columns else deltas.assign(lens=W)
    out = out.copy()
    rows = [dict(lens=r.get("lens", W), dataset=r["dataset"], model=r["model"], longname=r["longname"],
                 metrics="all", reason="frozen: its change is exactly 0 (or undefined) in every run")
            for r in deltas.attrs.get("frozen_layers", [])]
    if "num_evals" in out.columns:
        few = out["metric"].isin(TAIL_METRICS) & (out["num_evals"] < min_evals)
        out.loc[few, ["relative", "delta", "finetuned"]] = np.nan
        for (lens, dataset, model, longname), part in out[few].groupby(["lens", "dataset", "model", "longname"],
                                                                       sort=False):
            evals = int(part["num_evals"].min())
            rows.append(dict(lens=lens, dataset=dataset, model=model, longname=longname,
                             metrics=",".join(dict.fromkeys(part["metric"])),
                             reason=f"{evals} eigenvalues < stats.min_evals = {min_evals}: no power-law tail fit"))
    if "dead_taps" in out.columns:
        taps = out[out["dead_taps"] > 0].drop_duplicates(["dataset", "model", "longname"])
        for _, r in taps.iterrows():
            rows.append(dict(lens="all", dataset=r["dataset"], model=r["model"], longname=r["longname"],
                             metrics="all", reason=f"{int(r['dead_taps'])} of {int(r['rf'])} kernel taps see only "
                                                   f"padding at this input size (zero gradient): left out of its ESD"))
    out.attrs = dict(deltas.attrs)
    return out, pd.DataFrame(rows, columns=EXCLUDED_COLUMNS)


# ----------------------------------------------------------------------------------------------- where
POSITIONS = ("stem", "early", "middle", "late", "head")


def layer_kind(layer_type: str, M: float, rf: float) -> str:
    """conv (k x k, several channels in), depthwise conv (one input channel per filter), pointwise conv (1 x 1),
    linear, attention q/k/v, embedding."""
    if str(layer_type).startswith("attention_"):
        return "attention q/k/v"
    if layer_type in ("conv1d", "conv2d"):
        return "depthwise conv" if M == 1 else "pointwise conv" if rf == 1 else "conv"
    return {"dense": "linear", "embedding": "embedding"}.get(layer_type, str(layer_type))


def layer_groups(deltas: pd.DataFrame) -> pd.DataFrame:
    """One row per analysed layer (dataset, model, longname): position (stem = the first layer, head = the last,
    early / middle / late = thirds of the layers between, in the model's module order) and kind (`layer_kind`),
    from the layers' structure columns alone."""
    cols = ["dataset", "model", "longname"]
    layers = deltas.drop_duplicates(cols)
    order = layers["layer_id"] if "layer_id" in layers.columns else pd.Series(range(len(layers)), index=layers.index)
    rows = []
    for _, part in layers.assign(_order=order).groupby(["dataset", "model"], sort=False):
        part = part.sort_values("_order", kind="stable")
        n = len(part)
        for k, (_, r) in enumerate(part.iterrows()):
            third = min(3 * (k - 1) // max(n - 2, 1), 2) if 0 < k < n - 1 else 0
            position = "stem" if k == 0 else "head" if k == n - 1 else POSITIONS[1 + third]
            rows.append(dict(dataset=r["dataset"], model=r["model"], longname=r["longname"], position=position,
                             kind=layer_kind(r.get("layer_type", ""), r.get("M", np.nan), r.get("rf", np.nan))))
    return pd.DataFrame(rows, columns=cols + ["position", "kind"])
