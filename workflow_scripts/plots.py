"""Adapter: rule plots -> weightscape.plots (one PNG + caption per figure)."""
from weightscape.execution import job

with job(snakemake, __file__):
    import numpy as np
    import pandas as pd

    from weightscape import answer_plots, layout, plots
    from weightscape.answer import read_table

    out = snakemake.output
    runs, effects = pd.read_csv(snakemake.input.runs), pd.read_csv(snakemake.input.effects)
    deltas = pd.read_parquet(snakemake.input.deltas)
    archives = snakemake.params.archives
    layers = snakemake.params.plots["esd_layers"]
    if not layers:  # first, middle and last analysed layer of the reference
        with np.load(archives["pretrained"]) as archive:
            names = list(archive.files)
        layers = list(dict.fromkeys([names[0], names[len(names) // 2], names[-1]]))
    plots.esd_overlay(archives, layers, out.esd_overlay)
    plots.family_bars(effects, out.family_bars)
    plots.layer_lines(deltas, snakemake.params.plots["layer_metric"], out.layer_lines)
    plots.quadrant(deltas, out.quadrant)
    plots.outcome_bars(runs, out.outcome_bars)
    plots.accuracy_vs_vendi(runs, pd.read_csv(snakemake.input.diversity), out.accuracy_vs_vendi)
    answer_plots.dose_response(read_table(snakemake.input.curves), read_table(snakemake.input.placement),
                               read_table(snakemake.input.answer_effects), out.dose_response)
    answer_plots.where_heatmap(read_table(snakemake.input.groups), out.where)
    answer_plots.predictors_plot(read_table(snakemake.input.predictors), out.predictors)
    if "curvature" in out.keys():
        plots.curvature(runs, out.curvature)
    if "curvature_trajectory" in out.keys():
        families = snakemake.params.families
        curves = pd.concat([pd.read_csv(path).assign(**layout.identity(path)) for path in snakemake.input.trajectory])
        plots.curvature_trajectory(curves.assign(family=curves["condition"].map(families)), out.curvature_trajectory)
