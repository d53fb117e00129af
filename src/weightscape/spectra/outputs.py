"""Write one model's spectra to disk: the per-layer table (CSV + Parquet) and the eigenvalue archive."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from weightscape.io import atomic_path, write_csv

# config `spectra` keys that are analyze() options (the rest steer the pipeline)
ANALYZE_OPTIONS = ("convention", "mp_fit", "randomize", "farms", "min_tail", "min_evals", "max_evals", "max_N")


def write_spectra(model: nn.Module, options: dict, out_csv: str | Path, out_parquet: str | Path,
                  out_eigenvalues: str | Path, *, base_model: nn.Module | None = None, image_size: int | None = None,
                  probe_scale: bool = False, progress=None):
    """Analyse every layer of `model` (Delta W against `base_model` when given) and write the three outputs
    atomically; return the table. With options["dead_taps"] the kernel taps that see only padding at
    `image_size` (the model's input size, from its model.json) are left out, and `probe_scale` adds the
    scale_effect column (the reference's job: the architecture's property, the same for every run)."""
    from weightscape.spectra.analyze import analyze
    from weightscape.spectra.esd import save_eigenvalues

    kwargs = {key: options[key] for key in ANALYZE_OPTIONS if key in options}
    if options.get("dead_taps") and image_size:
        kwargs.update(image_size=image_size, probe_scale=probe_scale)
    table, eigenvalues = analyze(model, base_model=base_model, return_eigenvalues=True, progress=progress, **kwargs)
    write_csv(out_csv, table)
    with atomic_path(out_parquet) as tmp:
        table.to_parquet(tmp, index=False)
    save_eigenvalues(out_eigenvalues, eigenvalues)
    return table
