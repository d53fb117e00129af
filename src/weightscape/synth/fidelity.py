"""How faithful a synthetic set is: class consistency under a classifier trained on real data, a Frechet distance
in the pretrained backbone's feature space, and Vendi scores next to the real set's."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.linalg
import torch

from weightscape.checkpoints import load_checkpoint
from weightscape.data.canonical import load_split
from weightscape.diversity import class_balanced_sample, embed, pixel_vendi, vendi_score
from weightscape.inputs import InputSpec, to_model_inputs
from weightscape.io import read_json, write_json
from weightscape.tables import checked_identity
from weightscape.train import accuracy_by_class, predict

log = logging.getLogger(__name__)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows = samples): the FID formula
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    Written here because the libraries that ship it (torchmetrics, pytorch-fid) tie it to an Inception network that
    must be downloaded; scipy.linalg.sqrtm does the matrix square root.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu = a.mean(0) - b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(root):  # numerical noise of a (nearly) singular product
        root = root.real
    return float(mu @ mu + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))


def class_consistency(predicted: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Share of synthetic images the judge puts in their conditioning class: overall and per class."""
    return {"overall": float((predicted == labels).mean()),
            "per_class": accuracy_by_class(predicted, labels, classes)}


def measure_fidelity(*, synthetic_npz: str | Path, real_train_npz: str | Path, real_test_npz: str | Path,
                     classes: list[str], judge_weights: str | Path, judge_info: str | Path, judge_metrics: str | Path,
                     backbone_weights: str | Path, backbone_info: str | Path, diversity: dict,
                     device: torch.device, out_json: str | Path, identity: dict | None = None) -> dict:
    """Fidelity of one synthetic set; written to `out_json` and returned.

    - class consistency: the judge (a classifier fine-tuned on real training images, see runs.train_judge) labels
      every synthetic image; its accuracy on the real test split (from `judge_metrics`) and its training size are
      recorded next to it;
    - FD_<backbone>: Frechet distance between the real test split and the synthetic set in the pretrained
      backbone's features (the input of its classifier), plus the same distance between the real training and
      test splits: the value a perfect generator would get at these sample sizes;
    - pixel and embedding Vendi scores of class-balanced samples of `diversity["sample_size"]` synthetic and real
      images (drawn with `diversity["seed"]`, the config section of the diversity stage).
    """
    sample_size, seed = diversity["sample_size"], diversity["seed"]
    synthetic, synthetic_labels = load_split(synthetic_npz)
    real_train, real_train_labels = load_split(real_train_npz)
    real_test, real_test_labels = load_split(real_test_npz)

    judge, judge_meta = load_checkpoint(judge_weights, judge_info)
    judge_spec = InputSpec.from_info(judge_meta)
    batch = 256
    predicted = predict(judge, to_model_inputs(synthetic, judge_spec), batch, device).argmax(1).numpy()
    consistency = class_consistency(predicted, synthetic_labels, classes)
    judge_test = read_json(judge_metrics)["test"]  # measured once, by rule train_judge

    backbone, backbone_meta = load_checkpoint(backbone_weights, backbone_info)
    spec = InputSpec.from_info(backbone_meta)
    head = backbone_meta["classifier"]

    def features(images: np.ndarray) -> np.ndarray:
        return embed(backbone.to(device), head, to_model_inputs(images, spec))

    test_features = features(real_test)
    synthetic_features = features(synthetic)
    train_features = features(real_train)

    def vendi(images: np.ndarray, labels: np.ndarray, feats: np.ndarray) -> dict:
        index = class_balanced_sample(labels, min(sample_size, len(labels)), seed)
        pixels = torch.from_numpy(images[index]).permute(0, 3, 1, 2).float() / 255
        return {"vendi_n": int(len(index)), "vendi_pixel": pixel_vendi(pixels),
                "vendi_embedding": vendi_score(feats[index])}

    backbone_name = backbone_meta["arch"].replace(":", "_")
    result = {**(identity or {}), "n_synthetic": int(len(synthetic_labels)), "n_real_test": int(len(real_test_labels)),
              "class_consistency": consistency["overall"], "class_consistency_per_class": consistency["per_class"],
              "judge": str(judge_weights), "judge_real_test_accuracy": judge_test["accuracy"],
              **{f"judge_{key}": value for key, value in judge_meta.get("judge", {}).items()},
              "backbone": backbone_meta["arch"],
              f"fd_{backbone_name}": frechet_distance(test_features, synthetic_features),
              f"fd_{backbone_name}_real_train_vs_test": frechet_distance(test_features, train_features),
              "synthetic": vendi(synthetic, synthetic_labels, synthetic_features),
              "real": vendi(real_train, real_train_labels, train_features)}
    write_json(out_json, result)
    log.info("class consistency %.3f (judge's real test accuracy %.3f), FD %.2f (real train vs test %.2f), "
             "Vendi embedding synthetic %.2f / real %.2f", result["class_consistency"],
             result["judge_real_test_accuracy"], result[f"fd_{backbone_name}"],
             result[f"fd_{backbone_name}_real_train_vs_test"], result["synthetic"]["vendi_embedding"],
             result["real"]["vendi_embedding"])
    return result


def fidelity_table(json_files: list[str | Path]) -> pd.DataFrame:
    """One row per synthetic set: identity, class consistency, FDs, Vendi scores (per-class shares as columns)."""
    rows = []
    for path in json_files:
        data = read_json(path)
        row = {k: v for k, v in data.items() if not isinstance(v, dict)}
        for key, value in checked_identity(path, data).items():
            row.setdefault(key, value)
        for part in ("synthetic", "real"):
            row.update({f"{key}_{part}": value for key, value in data[part].items()})
        row.update({f"consistency_{name}": share for name, share in data["class_consistency_per_class"].items()})
        rows.append(row)
    return pd.DataFrame(rows)
