"""Adapter: rules spectra_reference / spectra_run / spectra_delta -> weightscape.spectra.outputs.write_spectra."""
from weightscape.execution import job

with job(snakemake, __file__) as run:
    from weightscape.checkpoints import load_checkpoint
    from weightscape.spectra.outputs import write_spectra

    i, o = snakemake.input, snakemake.output
    model, info = load_checkpoint(i.weights, i.info)
    base = load_checkpoint(i.base, i.info)[0] if "base" in i.keys() else None
    write_spectra(model, snakemake.params.spectra, o.csv, o.parquet, o.eigenvalues, base_model=base,
                  image_size=info["image_size"], probe_scale=getattr(snakemake.params, "probe_scale", False),
                  progress=run.progress("layers"))
