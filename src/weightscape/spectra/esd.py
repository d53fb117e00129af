"""Eigenvalues (ESDs) of weight matrices: fast, float64, WeightWatcher-exact; plus the eigenvalue archive.

Route: float64 ``eigvalsh`` of the *small* Gram matrix (W W^T when rows < cols, else W^T W). Only eigenvalues
are needed, and this is much faster than WeightWatcher's ``scipy.linalg.svd``, the more so the less square.
float64 matters: the Gram squares the condition number, so its eigenvalues carry an absolute error of about
eps * lambda_max -- harmless (< 1e-9 relative) unless a matrix is nearly singular. Matrices whose smallest Gram
eigenvalue is below ``COND_FALLBACK * lambda_max`` are therefore recomputed with the same SVD WeightWatcher
uses (``scipy.linalg.svd``, gesdd, on the same scaled, same-orientation matrix), which also makes the rank
decisions (``matrix_rank``, ``rank_loss``) identical on rank-deficient layers. Random and trained layers
almost never need it.

Equal-shape matrices go through one batched call: a conv layer's kh*kw slices, and small layers of the same
shape across the model (``ESDComputer`` groups them by shape, in chunks of at most ``max_batch_bytes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg

from ..io import atomic_path
from .layers import LayerMatrix

#: smallest Gram eigenvalue / largest below which a matrix's eigenvalues come from an SVD instead
COND_FALLBACK = 1e-9
#: input bytes per batched call when grouping matrices of equal shape across layers
MAX_BATCH_BYTES = 64 * 2**20


def gram_eigenvalues(stack: np.ndarray, *, scale: float = 1.0, transpose_tall: bool = False) -> np.ndarray:
    """Eigenvalues of each matrix's small Gram, times `scale`: (k, rows, cols) -> (k, min(rows, cols)) ascending,
    clipped at 0.

    `scale` multiplies each *matrix* by sqrt(scale) (WeightWatcher's conv2d_norm), so ill-conditioned matrices,
    recomputed by SVD, see exactly WeightWatcher's input; `transpose_tall` mirrors its orientation for that SVD
    (conv slices are transposed to N >= M rows, dense weights are taken as they are)."""
    stack = np.asarray(stack, dtype=np.float64)
    k, rows, cols = stack.shape
    if min(rows, cols) == 0:
        return np.zeros((k, 0))
    t = stack.transpose(0, 2, 1)
    gram = np.matmul(stack, t) if rows <= cols else np.matmul(t, stack)
    evals = np.linalg.eigvalsh(gram)                       # ascending, per matrix
    # Nearly singular: Gram round-off (~eps * lambda_max) would swamp the small eigenvalues -> exact SVD
    bad = np.flatnonzero(evals[:, 0] < COND_FALLBACK * evals[:, -1])
    evals *= scale
    if bad.size:
        root = np.sqrt(scale) if scale != 1.0 else None
        for i in bad:
            w = stack[i].T if (transpose_tall and rows < cols) else stack[i]
            w = w * root if root is not None else w
            sv = scipy.linalg.svd(w, compute_uv=False, check_finite=False)
            evals[i] = np.sort(sv * sv)
    return np.maximum(evals, 0.0, out=evals)


@dataclass
class ESD:
    """One layer's ESD and the per-matrix quantities WeightWatcher reports from its SVDs."""

    evals: np.ndarray   # pooled over the layer's matrices, scaled by the convention, sorted ascending
    sv_max: float       # largest singular value of the (scaled) matrices
    sv_min: float       # WeightWatcher's sv_min: the *largest* of the matrices' smallest singular values
    rank_loss: int      # sum over matrices of (#singular values - numerical rank), numpy's rank tolerance


def layer_esd(per_matrix: np.ndarray, N: int) -> ESD:
    """Pool a layer's per-matrix eigenvalues (k, m) into its :class:`ESD` (WeightWatcher's
    ``combined_eigenvalues``: rank tolerance max(sv) * N * eps per matrix, N the larger dimension)."""
    if per_matrix.size == 0:
        return ESD(np.zeros(0), 0.0, 0.0, 0)
    sv = np.sqrt(per_matrix)
    tol = sv[:, -1] * N * np.finfo(np.float64).eps
    rank = np.count_nonzero(sv > tol[:, None], axis=1)
    return ESD(evals=np.sort(per_matrix.ravel()), sv_max=float(sv[:, -1].max()), sv_min=float(sv[:, 0].max()),
               rank_loss=int((sv.shape[1] - rank).sum()))


class ESDComputer:
    """Compute the ESDs of many layers lazily, batching equal-shape matrices across layers.

    ``get(record)`` returns the record's :class:`ESD`, computing (once) the whole chunk of same-shape matrices
    it belongs to; asking in layer order therefore gives steady progress and bounded memory."""

    def __init__(self, records: list[LayerMatrix], max_batch_bytes: int = MAX_BATCH_BYTES):
        self._chunk_of: dict[int, list[LayerMatrix]] = {}
        self._done: dict[int, ESD] = {}
        groups: dict[tuple, list[list[LayerMatrix]]] = {}
        for r in records:
            k, rows, cols = r.stack_shape
            # one batched call needs one shape, one scale and one SVD orientation rule
            key = (rows, cols, r.scale, r.unfold == "conv_slices")
            chunks = groups.setdefault(key, [[]])
            size = sum(x.stack_shape[0] for x in chunks[-1]) * rows * cols * 8
            if chunks[-1] and size + k * rows * cols * 8 > max_batch_bytes:
                chunks.append([])   # a single layer larger than the budget still gets one chunk of its own
            chunks[-1].append(r)
            self._chunk_of[id(r)] = chunks[-1]

    def get(self, record: LayerMatrix) -> ESD:
        """The ESD of `record` (which must have been passed to the constructor)."""
        if id(record) not in self._done:
            chunk = self._chunk_of[id(record)]
            counts = [r.stack_shape[0] for r in chunk]
            head = chunk[0]
            stack = np.empty((sum(counts),) + head.stack_shape[1:])
            bounds = np.concatenate(([0], np.cumsum(counts)))
            for r, a, b in zip(chunk, bounds[:-1], bounds[1:]):
                r.matrices(out=stack[a:b])
            evals = gram_eigenvalues(stack, scale=head.scale, transpose_tall=head.unfold == "conv_slices")
            del stack
            for r, a, b in zip(chunk, bounds[:-1], bounds[1:]):
                self._done[id(r)] = layer_esd(evals[a:b], r.N)
        return self._done.pop(id(record))


def save_eigenvalues(path: str | Path, eigenvalues: dict[str, np.ndarray]) -> None:
    """Store ``{longname: eigenvalues}`` as a compressed .npz, atomically (weightscape.io.atomic_path), so a killed
    job never leaves a truncated archive and fits can be redone without the model."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a file object: numpy must not append ".npz"
        np.savez_compressed(handle, **{str(k): np.asarray(v, dtype=np.float64) for k, v in eigenvalues.items()})


def load_eigenvalues(path: str | Path) -> dict[str, np.ndarray]:
    """Read an archive written by :func:`save_eigenvalues` back into ``{longname: eigenvalues}``."""
    with np.load(Path(path), allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}
