"""Regenerate this example: real WeightWatcher 0.7.7 tables of a tiny MLP, before and after a few SGD steps, as
per-run analyses are usually published: every run analysed its own starting point (pretrained_<condition>.csv),
because every run re-initialised the classifier head (seeded by its condition's index) on the shared body.

pretrained body = seeded random init; fine-tuned = 30 SGD steps on random data with: nothing (baseline), dropout,
weight decay, or noisy inputs (the 'diversity' family). manifest.csv lists a pretrained row per condition (the
condition column names the run it belongs to). Run from the repo root:
    OMP_NUM_THREADS=1 .venv/bin/python tests/data/ww_manifest/make_example.py
"""

import copy
from pathlib import Path

import pandas as pd
import torch
import weightwatcher as ww

HERE = Path(__file__).resolve().parent
CONDITIONS = [  # condition, family, dropout, weight_decay, input noise
    ("baseline", "baseline", 0.0, 0.0, 0.0),
    ("dropout_0.2", "dropout", 0.2, 0.0, 0.0),
    ("dropout_0.5", "dropout", 0.5, 0.0, 0.0),
    ("weight_decay_0.01", "weight_decay", 0.0, 0.01, 0.0),
    ("weight_decay_0.1", "weight_decay", 0.0, 0.1, 0.0),
    ("noise_0.3", "diversity", 0.0, 0.0, 0.3),
    ("noise_1.0", "diversity", 0.0, 0.0, 1.0),
]


def mlp(p: float) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(48, 96), torch.nn.ReLU(), torch.nn.Dropout(p),
                               torch.nn.Linear(96, 80), torch.nn.ReLU(), torch.nn.Dropout(p),
                               torch.nn.Linear(80, 24))


def analyze(model) -> pd.DataFrame:
    table = ww.WeightWatcher(model=model).analyze()
    return table.round(6)


def main() -> None:
    torch.manual_seed(0)
    body = mlp(0.0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(256, 48, generator=gen)
    y = torch.randint(0, 24, (256,), generator=gen)
    rows = []
    for old in HERE.glob("pretrained*.csv"):
        old.unlink()
    for index, (condition, family, p, wd, noise) in enumerate(CONDITIONS):
        pretrained = copy.deepcopy(body)
        torch.manual_seed(100 + index)  # this run's own new head
        pretrained[-1].reset_parameters()
        analyze(pretrained).to_csv(HERE / f"pretrained_{condition}.csv", index=False)
        rows.append((f"pretrained_{condition}.csv", condition, family, "pretrained"))
        model = mlp(p)
        model.load_state_dict(copy.deepcopy(pretrained.state_dict()))
        opt = torch.optim.SGD(model.parameters(), lr=0.5, weight_decay=wd)
        g = torch.Generator().manual_seed(2)
        model.train()
        for _ in range(30):
            xb = x + noise * torch.randn(x.shape, generator=g)
            loss = torch.nn.functional.cross_entropy(model(xb), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        analyze(model).to_csv(HERE / f"{condition}.csv", index=False)
        rows.append((f"{condition}.csv", condition, family, "finetuned"))
    manifest = pd.DataFrame(rows, columns=["path", "condition", "family", "stage"])
    manifest["dataset"] = "random"
    manifest["model"] = "mlp3"
    manifest.to_csv(HERE / "manifest.csv", index=False)


if __name__ == "__main__":
    main()
