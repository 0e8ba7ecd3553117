"""Loss log of a training run: a CSV (one row per logged step) and a PNG of the curves."""
from __future__ import annotations

import csv
from pathlib import Path

LOSS_NAMES = ("diffusion", "critic", "inverse_dynamics")
COLUMNS = ("step", *LOSS_NAMES, "wall_s")


class LossLog:
    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        rows = self.read(self.path) if resume_step is not None and self.path.exists() else []
        # On resume keep only rows up to the checkpoint: later ones are redone.
        rows = [r for r in rows if resume_step is not None and r["step"] <= resume_step]
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, step: int, losses: dict[str, float], wall_s: float) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, COLUMNS).writerow({"step": step, **{k: f"{losses[k]:.6g}" for k in LOSS_NAMES},
                                                 "wall_s": f"{wall_s:.2f}"})

    @staticmethod
    def read(path: Path) -> list[dict]:
        with Path(path).open() as f:
            return [{"step": int(r["step"]), **{k: float(r[k]) for k in (*LOSS_NAMES, "wall_s")}} for r in csv.DictReader(f)]


def plot_losses(csv_path: Path, png_path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = LossLog.read(csv_path)
    if not rows:
        return
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, name in zip(axes, LOSS_NAMES):
        values = [r[name] for r in rows]
        ax.plot(steps, values)
        if min(values) > 0:
            ax.set_yscale("log")
        else:  # a network frozen in this run (train --train-only critic) logs 0
            ax.text(0.5, 0.5, "not trained in this run", transform=ax.transAxes, ha="center")
        ax.set_xlabel("step")
        ax.set_title({"diffusion": "denoiser (x0 MSE)", "critic": "critic (quantile Huber)",
                      "inverse_dynamics": "inverse dynamics (MSE)"}[name])
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
