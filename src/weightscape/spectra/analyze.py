"""``analyze(model)``: the per-layer spectral table of a torch model, WeightWatcher 0.7.7 columns, fast.

Pipeline: discover the weight matrices (:mod:`.layers`), apply WeightWatcher's size filters, optionally subtract
a base model, compute every ESD by batched float64 Gram eigenvalues (:mod:`.esd`), fit the power law
(:mod:`.powerlaw`) and derive the metrics (:mod:`.metrics`). Optional extras (Marchenko-Pastur fit, randomized
ESD / correlation traps, FARMS) come from their own modules, imported only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from torch import nn

from .esd import ESDComputer
from .layers import (DEFAULT_MAX_EVALS, DEFAULT_MAX_N, DEFAULT_MIN_EVALS, LayerMatrix, apply_filters, check_finite,
                     discover_layers, select_layers, subtract_base)
from .metrics import COLUMNS, esd_metrics, fit_warning
from .powerlaw import fit_powerlaw

#: integer-valued structural columns (always known, int64)
INT_COLUMNS = ["layer_id", "N", "M", "rf", "num_evals", "dead_taps"]


def ww_matrices(record: LayerMatrix) -> list[np.ndarray]:
    """The layer's matrices as WeightWatcher holds them (float64, unscaled): conv slices transposed to N >= M,
    a dense weight as it is. This is what the randomize / FARMS extras shuffle or window."""
    stack = record.matrices()
    if record.unfold == "conv_slices" and stack.shape[1] < stack.shape[2]:
        stack = stack.transpose(0, 2, 1)
    return list(stack)


def _empty_row(r: LayerMatrix) -> dict:
    """A row with identity columns filled and every metric NaN (skipped / failed layers)."""
    row = {c: np.nan for c in COLUMNS}
    row.update(layer_id=r.layer_id, name=r.name, longname=r.longname, layer_type=r.layer_type,
               convention=r.convention, N=r.N, M=r.M, Q=r.Q, rf=r.rf, num_evals=r.num_evals, status=r.status,
               warning=r.warning, has_esd=False, dead_taps=len(r.dead))
    return row


def _extras(r: LayerMatrix, evals: np.ndarray, *, mp_fit: bool, randomize: bool, farms: bool,
            rng: np.random.Generator) -> dict:
    """MP / randomize / FARMS columns for one analysed layer (lazy imports: optional modules)."""
    out: dict = {}
    if mp_fit:
        from .mp import fit_mp

        out.update(fit_mp(evals, r.Q, M=r.M))
    if randomize or farms:
        mats = ww_matrices(r)
        if randomize:
            from .randomize import correlation_traps, randomized_esd

            rand = randomized_esd(mats, rng, r.scale)
            single = randomized_esd(mats, rng, r.scale, replicas=1)  # WW: a second shuffle for the distances
            out.update(correlation_traps(evals, rand, r.Q, M=r.M, rand_evals_single=single))
        if farms:
            from .farms import farms_alpha

            out.update(farms_alpha(mats, scale=r.scale))
    return out


def analyze(model: nn.Module, *, convention: str = "ww", min_evals: int | None = DEFAULT_MIN_EVALS,
            max_evals: int | None = DEFAULT_MAX_EVALS, max_N: int | None = DEFAULT_MAX_N, mp_fit: bool = False,
            randomize: bool = False, farms: bool = False, min_tail: int | None = None,
            base_model: nn.Module | None = None, layers: Iterable[str | int] | None = None,
            split_qkv: bool = True, on_nonfinite: str = "raise", seed: int = 0, return_eigenvalues: bool = False,
            progress: Callable | bool | None = None, image_size: int | None = None, probe_scale: bool = False):
    """Per-layer spectral table of `model`: one row per weight matrix, WeightWatcher 0.7.7 columns.

    convention: "ww" (WeightWatcher's default: raw W^T W eigenvalues, conv slices pooled and halved) or
        "unfolded" (a conv as one out x in*kh*kw matrix, unscaled); see :mod:`weightscape.spectra.layers`.
    min_evals / max_evals / max_N: WeightWatcher's size filters (None or 0 disables one); filtered layers are
        rows with status "skipped" and the reason in `warning`.
    mp_fit / randomize / farms: add the Marchenko-Pastur, randomized-ESD (correlation traps) and FARMS columns.
    min_tail: smallest power-law tail size a candidate xmin may have (None: WeightWatcher's search).
    base_model: analyse Delta W = W - W_base, layers matched by longname (missing layer or shape mismatch ->
        ValueError naming the layer).
    layers: keep only these longnames / layer ids (negative ids exclude), WeightWatcher-style.
    split_qkv: split fused attention projections into q / k / v rows (False: WeightWatcher's layer set).
    on_nonfinite: "raise" -> ``ValueError("layer <longname>: non-finite weights")``; "skip" -> status "failed".
    seed: seeds the shuffles of `randomize`.
    return_eigenvalues: also return ``{longname: sorted eigenvalues}`` of every analysed layer.
    progress: None/False (silent), True (a tqdm bar), or a wrapper ``progress(iterable, total=...) -> iterable``.
    image_size: the model's input size; conv kernel taps that see only padding there (zero gradient,
        :mod:`.taps`) are left out of the ESD before the size filters, their number in `dead_taps` and the
        reason in `warning` (None: every tap, as WeightWatcher).
    probe_scale: with image_size, also the `scale_effect` column: how much doubling the layer's weight changes the
        training-mode output (:func:`.probes.scale_effect`; below 1 % batch norm makes its norms inert).

    Returns the DataFrame (and the eigenvalue dict when `return_eigenvalues`). Row status: "success" (ESD and
    fit), "failed" (fit failed: alpha = -1 as in WeightWatcher, other metrics still computed; or non-finite
    weights: metrics NaN), "skipped" (filtered: metrics NaN).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"analyze() needs a torch.nn.Module, got {type(model).__name__}")
    records = select_layers(discover_layers(model, convention=convention, split_qkv=split_qkv), layers)
    if image_size:
        from .probes import dead_taps

        dead = dead_taps(model, image_size)
        for r in records:
            r.leave_out_taps(dead.get(r.longname, ()))
    apply_filters(records, min_evals=min_evals, max_evals=max_evals, max_N=max_N)
    if base_model is not None:
        base = discover_layers(base_model, convention=convention, split_qkv=split_qkv)
        subtract_base(records, base)
    check_finite(records, on_nonfinite)

    active = [r for r in records if r.status == "pending"]
    computer = ESDComputer(active)
    rng = np.random.default_rng(seed)
    eigenvalues: dict[str, np.ndarray] = {}
    rows = []
    iterator: Iterable[LayerMatrix] = records
    if progress is True:
        from tqdm.auto import tqdm

        iterator = tqdm(records, desc="layers", total=len(records))
    elif callable(progress):
        iterator = progress(records, total=len(records))
    for r in iterator:
        row = _empty_row(r)
        if r.status == "pending":
            esd = computer.get(r)
            fit = fit_powerlaw(esd.evals, min_tail=min_tail)
            row.update(fit.as_dict())
            row.update(esd_metrics(esd.evals, r.N, fit.alpha))
            row.update(sv_max=esd.sv_max, sv_min=esd.sv_min, rank_loss=esd.rank_loss, num_evals=len(esd.evals),
                       warning="; ".join(w for w in (r.warning, fit_warning(fit.alpha, fit.status)) if w))
            row.update(_extras(r, esd.evals, mp_fit=mp_fit, randomize=randomize, farms=farms, rng=rng))
            eigenvalues[r.longname] = esd.evals
        rows.append(row)
    table = _to_frame(rows)
    if image_size and probe_scale:
        from .probes import scale_effect

        effect = scale_effect(model, image_size, [r.longname for r in records])
        table["scale_effect"] = table["longname"].map(effect).astype(float)
    return (table, eigenvalues) if return_eigenvalues else table


def _to_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows -> DataFrame with a stable schema: COLUMNS first (then extras), structural ints int64, metrics
    float64 (NaN on skipped rows, so the schema does not depend on which layers were skipped), has_esd bool."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=COLUMNS)
    extra = [c for c in frame.columns if c not in COLUMNS]
    frame = frame[COLUMNS + extra]
    for c in frame.columns:
        if c in INT_COLUMNS:
            frame[c] = frame[c].astype("int64")
        elif c == "has_esd":
            frame[c] = frame[c].astype(bool)
        elif c not in ("name", "longname", "layer_type", "convention", "status", "warning"):
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    return frame
