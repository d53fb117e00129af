"""Layer discovery: which weight matrices of a ``torch.nn.Module`` are analysed, and how each forms its ESD.

One :class:`LayerMatrix` per analysed matrix. Discovery follows WeightWatcher 0.7.7 (``PyTorchLayer``,
``WWLayer.set_weight_matrices``, ``WWLayerIterator.layer_supported``) so the same layers get the same ids,
names and shapes, and adds the attention projections WeightWatcher cannot see:

* Layer types (WeightWatcher's, matched like it does: ``isinstance`` *or* the substring in
  ``str(type(module)).lower()``, so e.g. ``NonDynamicallyQuantizableLinear`` and HF's ``Conv1D`` count):
  ``"dense"`` (Linear), ``"conv1d"``, ``"conv2d"``, ``"embedding"``. Norms and unknown types are not rows.
* ``"attention_q"`` / ``"attention_k"`` / ``"attention_v"``: ``nn.MultiheadAttention``'s ``in_proj_weight``
  (3E x E, a bare parameter WeightWatcher never sees) split into its three E x E blocks, longnames
  ``<module>.q``, ``<module>.k``, ``<module>.v`` (or its separate ``q/k/v_proj_weight`` when kdim/vdim differ);
  its ``out_proj`` is an ordinary Linear row. timm's fused ``Attention.qkv`` Linear (out = 3 * attn_dim, which
  WeightWatcher fits as one 3d x d "dense" matrix) is replaced by the same three blocks, longnames
  ``<module>.qkv.q`` / ``.qkv.k`` / ``.qkv.v``. ``split_qkv=False`` gives WeightWatcher's layer set instead.
* ``layer_id`` is WeightWatcher's: the module's index in ``model.named_modules()`` (root = 0); split q/k/v rows
  share their module's id. ``name`` is the last component of ``longname`` (WeightWatcher's rule).

Conventions (the ``convention`` column):

* ``"ww"`` (WeightWatcher's default ``analyze()``): eigenvalues of W^T W of the raw weight, no 1/N. Dense /
  embedding: one N x M matrix (N >= M, Q = N / M, rf = 1). Conv2d (out, in, kh, kw): the kh*kw slices
  ``W[:, :, i, j]`` pooled into one ESD (rf = kh*kw, num_evals = M*rf, N/M = larger/smaller channel count);
  default ``conv2d_norm=True`` scales each slice by sqrt(1/2), i.e. conv eigenvalues are **halved**
  (``scale = 0.5``). WeightWatcher mishandles 3-D Conv1d weights (it takes min/max over all three dims and, with
  scipy >= 1.15's batched SVD, fits the top-M singular values of `out` unrelated in x k matrices); here a Conv1d
  is treated as the 1-D case of its Conv2d rule: k slices ``W[:, :, i]`` pooled, halved. A Conv1d with a 2-D
  weight (HF ``Conv1D``) is a dense matrix, as in WeightWatcher.
* ``"unfolded"``: a conv is one out x (in*kh*kw) matrix (the im2col operator), no 1/2 factor; rf keeps the
  kernel size, num_evals = M. Dense layers are identical in both conventions.

Filters (WeightWatcher's order): num_evals < min_evals, num_evals > max_evals, N > max_N. A filtered layer is
still a row, with ``status="skipped"`` and the reason in ``warning``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

CONVENTIONS = ("ww", "unfolded")
#: WeightWatcher's conv2d_norm: every slice is multiplied by sqrt(1/2), so its eigenvalues by 1/2.
WW_CONV_SCALE = 0.5
DEFAULT_MIN_EVALS = 8        # WeightWatcher 0.7.7 DEFAULT_MIN_EVALS (its docstring's "10" is stale)
DEFAULT_MAX_EVALS = 15000
DEFAULT_MAX_N = 50000


@dataclass
class LayerMatrix:
    """One analysed weight matrix (or pooled stack of conv slices) and its WeightWatcher-style metadata.

    ``tensor`` is the detached weight (a view; for split attention the q/k/v block; with a base model the
    float64 difference W - W_base). ``matrices()`` turns it into the float64 stack the ESD is computed from;
    the ESD is ``scale`` times the pooled eigenvalues of the stack's Gram matrices.
    """

    layer_id: int
    name: str
    longname: str
    layer_type: str
    convention: str
    tensor: torch.Tensor = field(repr=False)
    unfold: str            # "matrix" (2-D as is), "conv_slices" (kernel positions pooled), "conv_unfolded"
    N: int
    M: int
    rf: int
    num_evals: int
    scale: float = 1.0
    status: str = "pending"
    warning: str = ""
    dead: tuple = ()  # flat kernel positions left out (taps that see only padding: spectra.probes)

    @property
    def Q(self) -> float:
        """Aspect ratio N / M (WeightWatcher: -1 when M is 0)."""
        return self.N / self.M if self.M > 0 else -1.0

    @property
    def stack_shape(self) -> tuple[int, int, int]:
        """(number of matrices, rows, cols) of :meth:`matrices`, without materialising it."""
        t = self.tensor
        if self.unfold == "conv_slices":
            k = int(np.prod(t.shape[2:])) - len(self.dead)
            return k, t.shape[0], t.shape[1]
        if self.unfold == "conv_unfolded":
            return 1, t.shape[0], t.shape[1] * (int(np.prod(t.shape[2:])) - len(self.dead))
        return 1, t.shape[0], t.shape[1]

    def leave_out_taps(self, dead) -> None:
        """Leave the conv kernel positions `dead` out of the ESD (and of num_evals, N, M) and say so."""
        if self.unfold not in ("conv_slices", "conv_unfolded") or not dead:
            return
        self.dead = tuple(sorted(dead))
        k, rows, cols = self.stack_shape
        self.N, self.M = max(rows, cols), min(rows, cols)
        self.num_evals = self.M * k if self.unfold == "conv_slices" else self.M
        self.warning = (f"{len(self.dead)} of {self.rf} kernel taps see only padding at this input size (zero "
                        f"gradient): left out")

    def matrices(self, out: np.ndarray | None = None) -> np.ndarray:
        """The float64 stack (k, rows, cols) whose Gram eigenvalues (times ``scale``) pool into the ESD;
        written into `out` (shape ``stack_shape``) when given, so batches are filled without a second copy."""
        t = self.tensor.detach().cpu()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.float()  # bf16 / fp16 -> fp32 is exact; numpy has no bf16
        w = t.numpy()
        live = None
        if self.dead:
            live = np.setdiff1d(np.arange(int(np.prod(w.shape[2:]))), self.dead)
        if self.unfold == "conv_slices":
            # kernel positions outermost, row-major like WeightWatcher's `for i: for j: W[:, :, i, j]`
            w = w.reshape(w.shape[0], w.shape[1], -1).transpose(2, 0, 1)
            w = w if live is None else w[live]
        elif self.unfold == "conv_unfolded":
            w = w.reshape(w.shape[0], w.shape[1], -1)
            w = (w if live is None else w[:, :, live]).reshape(1, w.shape[0], -1)
        else:
            w = w.reshape(1, *w.shape)
        if out is None:
            return np.array(w, dtype=np.float64, order="C")  # one pass: gather + widen
        np.copyto(out, w)
        return out

    @property
    def weight(self) -> np.ndarray:
        """The weight (or q/k/v block, or Delta W) as a float64 numpy copy in its original shape."""
        return self.tensor.detach().to(device="cpu", dtype=torch.float64).numpy().copy()


def ww_layer_type(module: nn.Module) -> str | None:
    """WeightWatcher's type of a module (``PyTorchLayer.layer_type``), or None for norms / unknown types.

    The substring test runs on the full class path, as WeightWatcher's does (e.g. every class defined in
    ``torch.nn.modules.linear`` is "dense"); modules without a usable weight are dropped later."""
    typestr = str(type(module)).lower()
    if isinstance(module, nn.Linear) or "linear" in typestr:
        return "dense"
    if isinstance(module, nn.Conv1d) or "conv1d" in typestr:
        return "conv1d"
    if isinstance(module, nn.Conv2d) or "conv2d" in typestr:
        return "conv2d"
    if isinstance(module, nn.Embedding) or "embedding" in typestr:
        return "embedding"
    return None


def _is_timm_fused_qkv(parent: nn.Module | None, child_name: str, module: nn.Module) -> bool:
    """timm-style ``Attention.qkv``: a Linear named qkv directly inside an *Attention* module, out = 3 * d."""
    return (parent is not None and child_name == "qkv" and "attention" in type(parent).__name__.lower()
            and isinstance(module, nn.Linear) and module.out_features % 3 == 0)


def _mha_blocks(mha: nn.MultiheadAttention) -> list[tuple[str, torch.Tensor]]:
    """The q, k, v projection matrices of an ``nn.MultiheadAttention`` (rows of in_proj_weight in q, k, v order,
    the order ``F.multi_head_attention_forward`` uses)."""
    if mha.in_proj_weight is not None:
        return list(zip("qkv", mha.in_proj_weight.detach().chunk(3, dim=0)))
    blocks = [(n, getattr(mha, f"{n}_proj_weight", None)) for n in "qkv"]
    return [(n, w.detach()) for n, w in blocks if isinstance(w, torch.Tensor)]


def _make(layer_id, longname, layer_type, tensor, convention) -> LayerMatrix:
    """Build the record for one weight: shapes, unfolding rule and eigenvalue scale per convention."""
    name = longname.split(".")[-1]
    shape = tuple(tensor.shape)
    conv = layer_type in ("conv1d", "conv2d") and len(shape) == (3 if layer_type == "conv1d" else 4)
    if conv and convention == "ww":
        rf = int(np.prod(shape[2:]))
        N, M = max(shape[0], shape[1]), min(shape[0], shape[1])
        return LayerMatrix(layer_id, name, longname, layer_type, convention, tensor, "conv_slices",
                           N, M, rf, M * rf, WW_CONV_SCALE)
    if conv:
        rf = int(np.prod(shape[2:]))
        rows, cols = shape[0], int(np.prod(shape[1:]))
        N, M = max(rows, cols), min(rows, cols)
        return LayerMatrix(layer_id, name, longname, layer_type, convention, tensor, "conv_unfolded",
                           N, M, rf, M, 1.0)
    record = LayerMatrix(layer_id, name, longname, layer_type, convention, tensor, "matrix",
                         max(shape) if shape else 0, min(shape) if shape else 0, 1, min(shape) if shape else 0)
    if len(shape) != 2:
        record.status, record.warning = "skipped", f"unsupported weight shape {list(shape)} for {layer_type}"
    return record


def discover_layers(model: nn.Module, *, convention: str = "ww", split_qkv: bool = True) -> list[LayerMatrix]:
    """Every candidate weight matrix of `model`, in ``named_modules()`` order, before size filters.

    Shared modules appear once (``named_modules`` de-duplicates them, as in WeightWatcher)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    records: list[LayerMatrix] = []
    parents: dict[int, tuple[nn.Module, str]] = {}
    for layer_id, (longname, module) in enumerate(model.named_modules()):
        for child_name, child in module.named_children():
            parents.setdefault(id(child), (module, child_name))
        if not longname:  # WeightWatcher names an unnamed root by its class
            longname = type(module).__name__
        if split_qkv and isinstance(module, nn.MultiheadAttention):
            for part, block in _mha_blocks(module):
                records.append(_make(layer_id, f"{longname}.{part}", f"attention_{part}", block, convention))
            continue
        layer_type = ww_layer_type(module)
        weight = getattr(module, "weight", None)
        if layer_type is None or not isinstance(weight, torch.Tensor):
            continue
        if isinstance(weight, nn.parameter.UninitializedParameter):
            record = _make(layer_id, longname, layer_type, torch.empty(0, 0), convention)
            record.status, record.warning = "skipped", "uninitialized (lazy) weight"
            records.append(record)
            continue
        parent, child_name = parents.get(id(module), (None, ""))
        if split_qkv and _is_timm_fused_qkv(parent, child_name, module):
            for part, block in zip("qkv", weight.detach().chunk(3, dim=0)):
                records.append(_make(layer_id, f"{longname}.{part}", f"attention_{part}", block, convention))
            continue
        records.append(_make(layer_id, longname, layer_type, weight.detach(), convention))
    return records


def _joined(*warnings: str) -> str:
    return "; ".join(w for w in warnings if w)


def apply_filters(records: list[LayerMatrix], *, min_evals: int | None = DEFAULT_MIN_EVALS,
                  max_evals: int | None = DEFAULT_MAX_EVALS, max_N: int | None = DEFAULT_MAX_N) -> None:
    """Mark records WeightWatcher would not analyse as skipped, with the reason (in its order of checks)."""
    for r in records:
        if r.status != "pending":
            continue
        if min_evals and r.num_evals < min_evals:
            too_few = f"too few eigenvalues ({r.num_evals} < min_evals={min_evals})"
            r.status, r.warning = "skipped", _joined(r.warning, too_few)
        elif max_evals and r.num_evals > max_evals:
            r.status, r.warning = "skipped", f"too many eigenvalues ({r.num_evals} > max_evals={max_evals})"
        elif max_N and r.N > max_N:
            r.status, r.warning = "skipped", f"too large (N={r.N} > max_N={max_N})"


def select_layers(records: list[LayerMatrix], layers) -> list[LayerMatrix]:
    """Keep the records picked by `layers` (WeightWatcher-style filter): longnames (a module's longname also
    picks its q/k/v rows) or layer ids; negative ids exclude instead. None keeps everything."""
    if layers is None:
        return records
    layers = [layers] if isinstance(layers, (str, int)) else list(layers)
    names = {x for x in layers if isinstance(x, str)}
    keep_ids = {int(x) for x in layers if not isinstance(x, str) and int(x) >= 0}
    drop_ids = {-int(x) for x in layers if not isinstance(x, str) and int(x) < 0}

    def picked(r: LayerMatrix) -> bool:
        by_name = r.longname in names or (r.layer_type.startswith("attention_")
                                          and r.longname.rsplit(".", 1)[0] in names)
        return by_name or r.layer_id in keep_ids or (not names and not keep_ids)

    return [r for r in records if picked(r) and r.layer_id not in drop_ids]


def subtract_base(records: list[LayerMatrix], base_records: list[LayerMatrix]) -> None:
    """Replace each record's tensor by Delta W = W - W_base (float64), matching layers by longname."""
    base = {r.longname: r for r in base_records}
    for r in records:
        b = base.get(r.longname)
        if b is None:
            raise ValueError(f"layer {r.longname}: not found in base_model")
        if tuple(b.tensor.shape) != tuple(r.tensor.shape):
            raise ValueError(f"layer {r.longname}: shape {list(r.tensor.shape)} does not match base_model's "
                             f"{list(b.tensor.shape)}")
        if r.status == "pending":  # skipped rows are never decomposed
            r.tensor = (r.tensor.detach().to("cpu", torch.float64) - b.tensor.detach().to("cpu", torch.float64))


def _all_finite(t: torch.Tensor) -> bool:
    """True when every entry is finite (numpy's isfinite: faster than torch's on a CPU thread)."""
    t = t.detach().cpu()
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return bool(np.isfinite(t.numpy()).all())


def check_finite(records: list[LayerMatrix], on_nonfinite: str = "raise") -> None:
    """Non-finite weights in an analysed layer: raise ``ValueError("layer <longname>: non-finite weights")``
    (``on_nonfinite="raise"``) or mark the row failed and go on (``"skip"``)."""
    if on_nonfinite not in ("raise", "skip"):
        raise ValueError(f"on_nonfinite must be 'raise' or 'skip', got {on_nonfinite!r}")
    for r in records:
        if r.status == "pending" and not _all_finite(r.tensor):
            if on_nonfinite == "raise":
                raise ValueError(f"layer {r.longname}: non-finite weights")
            r.status, r.warning = "failed", "non-finite weights"
