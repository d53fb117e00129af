"""Spectral engine: per-layer empirical spectral densities (ESDs) of a model's weights and their heavy-tailed
metrics, with WeightWatcher 0.7.7's conventions and column names, computed much faster.

Public API::

    analyze(model, *, convention="ww", ...) -> pandas.DataFrame   # (, {longname: eigenvalues})
    fit_powerlaw(evals, *, min_tail=None) -> PowerLawFit
    discover_layers(model, *, convention="ww", split_qkv=True) -> list[LayerMatrix]
    save_eigenvalues(path, {longname: evals}) / load_eigenvalues(path)

Modules: ``layers`` (which matrices, conventions), ``esd`` (eigenvalues), ``powerlaw`` (the fit),
``metrics`` (columns), ``analyze`` (the table); optional extras ``mp``, ``randomize``, ``farms``.
Nothing here knows about training or runs.
"""

from .analyze import analyze
from .esd import load_eigenvalues, save_eigenvalues
from .layers import CONVENTIONS, LayerMatrix, discover_layers
from .metrics import COLUMNS
from .powerlaw import PowerLawFit, fit_powerlaw

__all__ = ["COLUMNS", "CONVENTIONS", "LayerMatrix", "PowerLawFit", "analyze", "discover_layers", "fit_powerlaw",
           "load_eigenvalues", "save_eigenvalues"]
