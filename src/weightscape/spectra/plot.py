"""Plot one layer's ESD: log-log density histogram, fitted power-law tail, MP bulk edge."""

from __future__ import annotations

import numpy as np


def plot_esd(evals: np.ndarray, *, alpha: float | None = None, xmin: float | None = None,
             bulk_max: float | None = None, ax=None, title: str | None = None, bins: int = 100):
    """Log-log histogram (density) of the eigenvalues, with

    * the fitted power law ``rho(lambda) ~ lambda**(-alpha)`` over ``[xmin, max]`` when `alpha` and `xmin` are
      given, scaled so that its integral over that range equals the histogram mass of the tail (the fraction of
      eigenvalues >= xmin), i.e. it overlays the tail's histogram bars;
    * a dashed vertical line at xmin and a solid one at the MP bulk edge `bulk_max` when given.

    Non-positive / non-finite eigenvalues are dropped (they have no place on a log axis). Bins are log-spaced;
    the density is per unit lambda (``np.histogram(..., density=True)`` on the log-spaced edges). Returns the
    matplotlib Axes (of a new pyplot figure when `ax` is None; close it with ``plt.close(ax.figure)``).
    """
    if ax is None:
        import matplotlib.pyplot as plt   # the default backend: Agg on a headless machine

        _, ax = plt.subplots(figsize=(6, 4.5))

    ev = np.asarray(evals, dtype=np.float64).ravel()
    ev = ev[np.isfinite(ev) & (ev > 0)]
    if len(ev) == 0:
        ax.set_title(title or "ESD (no positive eigenvalues)")
        return ax
    lo, hi = ev.min(), ev.max()
    if hi <= lo:
        lo, hi = lo / 1.1, hi * 1.1
    edges = np.logspace(np.log10(lo), np.log10(hi), int(bins) + 1)
    ax.hist(ev, bins=edges, density=True, color="tab:blue", alpha=0.6, label=f"ESD ({len(ev)} eigenvalues)")

    if alpha is not None and xmin is not None and np.isfinite(alpha) and xmin > 0 and alpha != 1:
        tail_frac = np.count_nonzero(ev >= xmin) / len(ev)
        x = np.logspace(np.log10(xmin), np.log10(max(hi, xmin * 1.0001)), 200)
        # integral of C x^-alpha over [xmin, xmax] = tail_frac
        a1 = 1.0 - alpha
        integral = (x[-1] ** a1 - xmin ** a1) / a1
        if integral > 0 and tail_frac > 0:
            C = tail_frac / integral
            ax.plot(x, C * x ** (-alpha), color="tab:red", lw=2, label=rf"power law $\alpha$={alpha:.2f}")
        ax.axvline(xmin, color="tab:red", ls="--", lw=1, label=rf"$\lambda_{{min}}$={xmin:.3g}")
    if bulk_max is not None and np.isfinite(bulk_max) and bulk_max > 0:
        ax.axvline(bulk_max, color="tab:orange", lw=1.5, label=rf"MP bulk edge $\lambda^+$={bulk_max:.3g}")

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(r"eigenvalue $\lambda$")
    ax.set_ylabel(r"density $\rho(\lambda)$")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    return ax
