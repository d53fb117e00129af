"""The vocabulary of the results tables, in one place: family and stage names, the identity columns of a run,
the spectral metrics that are compared, the outcomes of a run and which of them are better when lower.

`stats`, `plots`, `report`, `tables` and the config's condition expansion import these names; nothing else
defines them. Standard library only, so every module can import it.
"""

from __future__ import annotations

# --- families (conditions.FAMILY_KNOB lists what each family's level sets) -----------------------------------------
BASELINE = "baseline"
DROPOUT, WEIGHT_DECAY = "dropout", "weight_decay"
DIVERSITY, SYNTHETIC = "diversity", "synthetic"
#: a declared condition that trains with a data condition's data and a regularizer condition's regularizer
COMBINED = "combined"
#: every family a condition may belong to, in the order figures and tables list them
FAMILIES = (BASELINE, DROPOUT, WEIGHT_DECAY, DIVERSITY, SYNTHETIC, COMBINED)
#: the regularizer families a data condition is compared with
REGULARIZERS = (DROPOUT, WEIGHT_DECAY)
#: the data families whose effect is the question
DATA_FAMILIES = (DIVERSITY, SYNTHETIC)
#: the families of the across-family tests, in column-name order (pairs "<a>_vs_<b>" follow it)
COMPARED_FAMILIES = (DIVERSITY, SYNTHETIC, DROPOUT, WEIGHT_DECAY)

# --- analysed models ----------------------------------------------------------------------------------------------
#: `stage` of a spectra table: the reference, a fine-tuned run, or Delta W = W_finetuned - W_pretrained
PRETRAINED, FINETUNED, DELTA = "pretrained", "finetuned", "delta"
#: `longname` of the over-all-layers rows of family_effects
ALL_LAYERS = "__all__"

# --- identities ---------------------------------------------------------------------------------------------------
#: the identity of one pretrained reference
REFERENCE_KEY = ("dataset", "model", "seed")

# --- what is compared ---------------------------------------------------------------------------------------------
#: spectral metrics of the family comparison (columns of the spectra tables), in report order
SPECTRAL_METRICS = ("alpha", "entropy", "log_norm", "log_spectral_norm", "stable_rank", "alpha_weighted",
                    "mp_softrank")
#: run outcomes of runs.csv that are compared across families, with their label in prose
OUTCOMES = {"id_accuracy": "in-distribution accuracy", "id_ece": "expected calibration error (ECE)",
            "ood_accuracy": "out-of-distribution accuracy",
            "hessian_trace": "Hessian trace (loss curvature)", "hessian_top_eig": "top Hessian eigenvalue"}
#: the loss-curvature outcomes (present when curvature.enabled), each with its reference's `<name>_pretrained`
CURVATURE_OUTCOMES = ("hessian_trace", "hessian_top_eig")
#: the columns a curvature.json adds to runs.csv, in this order: the trace, its standard error, the top eigenvalue
CURVATURE_COLUMNS = (CURVATURE_OUTCOMES[0], f"{CURVATURE_OUTCOMES[0]}_se", *CURVATURE_OUTCOMES[1:])
#: columns of runs.csv where a smaller value is the better one (curvature: a flatter minimum, the usual reading of
#: "regularized")
LOWER_IS_BETTER = frozenset({"id_ece", "id_nll", "val_ece", "val_nll", "ood_ece", "final_train_loss",
                             "hessian_trace", "hessian_top_eig"})
#: Vendi score columns of diversity.csv (the weighted score multiplies the embedding score by rho)
VENDI_SCORES = ("vendi_pixel", "vendi_embedding", "vendi_weighted")


def nice(name: object) -> str:
    """A family / metric name as written in prose and on axes: underscores become spaces."""
    return str(name).replace("_", " ")
