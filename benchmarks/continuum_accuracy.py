"""Issue 15 §5: fluid surrogates on the built-in decaying turbulence at equal CPU time.

Trains every model of ``--models`` on ``--fractions`` of the training trajectories, each for the same
``--budget`` of CPU seconds of this process (``--clock process``, ``--threads 1``), through
:func:`equiscale.continuum.training.train_fluid` with the command's defaults (plus ``--train-args``),
then evaluates each ``best.pt`` on the test file: one-step error, rollout errors at 1/10/25/50 steps,
the horizons at which the error passes 0.5 and passes persistence, and the G-FNO on a 128x128 test
file (same trajectories' statistics, finer grid) against its 64x64 error.

Models: ours by ``equiscale train fluid --model`` name, plus ``fno-peer``, ``neuraloperator``'s FNO
(``neuralop.models.FNO``, 4 layers, 24 x 24 modes, hidden channels chosen to match the G-FNO's
parameter count) inside the same increment wrapper ``w + delta_scale * net(w / field_scale)`` as ours.
The data are generated once (``equiscale data fluid``: 80 training trajectories, 20 test ones at 64x64
and 20 at 128x128, 50 steps of 0.2, viscosity 5e-3) and reused; finished runs are reused too, so an
interrupted benchmark continues. Runs go one at a time.

    python benchmarks/continuum_accuracy.py --out /tmp/fbench/bench --budget 90 \\
        --models gfno,gunet,fno-peer,unet,gcnn --fractions 1,0.1 --models-reduced gfno,gunet,fno-peer,unet
    python benchmarks/continuum_accuracy.py --quick          # 16x16, seconds: checks the script runs
    python benchmarks/continuum_accuracy.py --out DIR --combine RUN1 RUN2 ...   # one table and figures from
                                                             # several runs' results.json (same test data)
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from _common import load_average
from equiscale.continuum.data import generate_fluid, load_fluid
from equiscale.continuum.evaluate import rollout_errors
from equiscale.continuum.models import build_model
from equiscale.continuum.settings import TrainFluid
from equiscale.continuum.spectra import horizon
from equiscale.continuum.training import _statistics, load_run, split_trajectories, train_fluid
from equiscale.train import count_parameters, inference_weights, load_checkpoint

PEER = "fno-peer"


class PeerFNO(nn.Module):
    """``neuraloperator``'s FNO in our increment wrapper: ``(B, R, R) -> (B, R, R)``."""

    def __init__(self, hidden: int, modes: int, field_scale: float, delta_scale: float) -> None:
        super().__init__()
        from neuralop.models import FNO

        self.net = FNO(n_modes=(modes, modes), hidden_channels=hidden, in_channels=1, out_channels=1, n_layers=4)
        self.register_buffer("field_scale", torch.tensor(float(field_scale)))
        self.register_buffer("delta_scale", torch.tensor(float(delta_scale)))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w + self.delta_scale * self.net((w / self.field_scale)[:, None])[:, 0]


def peer_hidden(target: int, modes: int) -> int:
    """The hidden channels whose parameter count is closest to ``target``."""
    counts = {h: count_parameters(PeerFNO(h, modes, 1, 1)) for h in range(4, 65)}
    return min(counts, key=lambda h: abs(counts[h] - target))


def data_files(folder: Path, quick: bool) -> dict[str, Path]:
    """Generate (once) the training, test and fine test files."""
    resolution, steps, train, test = (16, 12, 10, 4) if quick else (64, 50, 80, 20)
    files = {"train": folder / "train.npz", "test": folder / "test.npz", "test_fine": folder / "test128.npz"}
    plans = {"train": (train, resolution, 0), "test": (test, resolution, 1), "test_fine": (test, 2 * resolution, 1)}
    for key, (count, size, seed) in plans.items():
        if not files[key].exists():
            generate_fluid(files[key], trajectories=count, steps=steps, resolution=size, seed=seed, progress=False)
    return files


def train_one(name: str, fraction: float, seed: int, args: argparse.Namespace, files: dict[str, Path],
              peer_width: int | None) -> tuple[nn.Module, dict]:
    """Train one run (or reuse a finished one) and return its best model and a record."""
    run = Path(args.out) / "runs" / f"{name}_f{fraction:g}_s{seed}"
    extra = json.loads(args.train_args) if args.train_args else {}
    config = TrainFluid(model="fno" if name == PEER else name, max_time=args.budget, clock="process", seed=seed,
                        fraction=fraction, threads=args.threads, quiet=True, **extra)
    if args.quick:
        config = config.replace(width=config.width or 2, modes=3, val_rollout=5)
    peer = None
    if name == PEER:
        data = load_fluid(files["train"])
        w = torch.from_numpy(data.vorticity)
        ids, _ = split_trajectories(data.trajectories, config.validation_trajectories, fraction)
        stats = _statistics(data, w[ids], files["train"])
        peer = PeerFNO(peer_width, 2 * config.modes, stats["field_scale"], stats["delta_scale"])
    if not (run / "best.pt").exists() or not (run / "done").exists():
        if run.exists():
            import shutil

            shutil.rmtree(run)
        start = time.process_time()
        train_fluid(files["train"], run, config, progress=False, epoch_lines=False, model=peer)
        (run / "done").write_text(f"{time.process_time() - start:.1f}")
    if peer is not None:
        weights = inference_weights(load_checkpoint(run / "best.pt", kind="fluid"))
        weights.pop("_metadata", None)  # neuralop's models keep their settings in the state dict
        peer.load_state_dict(weights)
        history = json.loads((run / "history.json").read_text())
        record = {"parameters": count_parameters(peer), "steps": history[-1]["step"],
                  "train_time": history[-1]["time"], "epochs": history[-1]["epoch"]}
        return peer.eval(), record
    model, record = load_run(run)
    return model, record


def evaluate(model: nn.Module, vorticity: torch.Tensor, steps: int, persistence: np.ndarray) -> dict:
    """Errors of the rollouts from frame 0 of every trajectory (step 1 is the one-step error from frame 0)."""
    curve, _ = rollout_errors(model, vorticity, steps)
    return {"curve": curve.tolist(),
            **{f"rollout_{k}": float(curve[k - 1]) for k in (1, 10, 25, steps) if k <= steps},
            "horizon_0.5": horizon(curve, 0.5), "horizon_persistence": horizon(curve, persistence)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/equiscale-continuum-bench")
    parser.add_argument("--budget", type=float, default=100.0, help="CPU seconds per model")
    parser.add_argument("--models", default="gfno,gunet,fno-peer,unet,gcnn")
    parser.add_argument("--fractions", default="1,0.1")
    parser.add_argument("--models-reduced", default=None, help="models trained on the fractions below 1 (default: "
                        "--models)")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rollout", type=int, default=50)
    parser.add_argument("--train-args", default="", help="JSON of extra TrainFluid settings, e.g. '{\"lr\": 5e-4}'")
    parser.add_argument("--quick", action="store_true", help="16x16, 2 s per model: the script runs")
    parser.add_argument("--combine", nargs="+", default=None, metavar="DIR", help="train nothing: write the table "
                        "and figures of the rows in each DIR/results.json (runs on the same test files) to --out")
    args = parser.parse_args()
    if args.combine:
        combine([Path(d) for d in args.combine], Path(args.out))
        return
    if args.quick:
        args.budget, args.rollout = min(args.budget, 2.0), 10
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = data_files(out, args.quick)
    test = torch.from_numpy(load_fluid(files["test"]).vorticity)
    fine = torch.from_numpy(load_fluid(files["test_fine"]).vorticity)
    persistence, _ = rollout_errors(lambda w: w, test, args.rollout)
    persistence_fine, _ = rollout_errors(lambda w: w, fine, args.rollout)
    models = args.models.split(",")
    modes = 3 if args.quick else TrainFluid().modes
    peer_width = None
    if PEER in models:
        gfno = build_model("gfno", width=2 if args.quick else None, modes=modes)
        peer_width = peer_hidden(count_parameters(gfno), 2 * modes)
    results = []
    for fraction in [float(f) for f in args.fractions.split(",")]:
        for name in models if fraction >= 1 or not args.models_reduced else args.models_reduced.split(","):
            for seed in [int(s) for s in args.seeds.split(",")]:
                model, record = train_one(name, fraction, seed, args, files, peer_width)
                model = model.float()
                row = {"model": name, "fraction": fraction, "seed": seed, "parameters": record["parameters"],
                       "steps": record["steps"], "train_time": record["train_time"],
                       **evaluate(model, test, args.rollout, persistence)}
                if name in ("gfno", "fno", PEER) and fraction >= 1:
                    row["fine"] = evaluate(model, fine, args.rollout, persistence_fine)
                results.append(row)
                print(f"{name:8s} fraction {fraction:g} seed {seed}: {row['parameters']} parameters, {row['steps']} steps "
                      f"in {row['train_time']:.0f} CPU-s; errors 1/10/25/{args.rollout}: "
                      + " / ".join(f"{row[f'rollout_{k}']:.3f}" for k in sorted({1, 10, 25, args.rollout}) if k <= args.rollout)
                      + f"; passes 0.5 at {row['horizon_0.5']}, persistence at {row['horizon_persistence']}"
                      + (f"; 128x128 error 1/10: {row['fine']['rollout_1']:.3f} / {row['fine']['rollout_10']:.3f}"
                         if "fine" in row else "") + f"  (load {load_average()})", flush=True)
                (out / "results.json").write_text(json.dumps({"rows": results, "persistence": persistence.tolist(),
                                                              "persistence_fine": persistence_fine.tolist(),
                                                              "budget": args.budget, "peer_hidden": peer_width},
                                                             indent=1))
    print(table(results, persistence, args.rollout))
    figures(results, persistence, out, args.rollout)


def combine(folders: list[Path], out: Path) -> None:
    """Print one table and draw the figures of the rows of several benchmark runs, in the given order."""
    runs = [json.loads((folder / "results.json").read_text()) for folder in folders]
    persistence = np.asarray(runs[0]["persistence"])
    if any(not np.allclose(run["persistence"], persistence) for run in runs):
        raise SystemExit("--combine: the runs were evaluated on different test files (their persistence errors differ)")
    rows = [row for run in runs for row in run["rows"]]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({**runs[0], "rows": rows}, indent=1))
    print(table(rows, persistence, len(persistence)))
    figures(rows, persistence, out, len(persistence))


def table(rows: list[dict], persistence: np.ndarray, steps: int) -> str:
    marks = [k for k in sorted({1, 10, 25, steps}) if k <= steps]
    lines = ["| model | fraction | seed | parameters | train steps | " + " | ".join(f"error at {k}" for k in marks)
             + " | error > 0.5 at | error > persistence at | 128x128: error at 1 / 10 (ratio to 64x64) |",
             "|" + "---|" * (len(marks) + 8)]
    for r in rows:
        fine = "-"
        if "fine" in r:
            fine = " / ".join(f"{r['fine'][f'rollout_{k}']:.3f} ({r['fine'][f'rollout_{k}'] / r[f'rollout_{k}']:.2f}x)"
                              for k in (1, 10))
        horizons = [f"> {steps}" if r[h] is None else str(r[h]) for h in ("horizon_0.5", "horizon_persistence")]
        lines.append(f"| {r['model']} | {r['fraction']:g} | {r['seed']} | {r['parameters']} | {r['steps']} | "
                     + " | ".join(f"{r[f'rollout_{k}']:.3f}" for k in marks) + f" | {' | '.join(horizons)} | {fine} |")
    lines.append("| persistence | - | - | 0 | - | " + " | ".join(f"{persistence[k - 1]:.3f}" for k in marks)
                 + f" | {horizon(persistence, 0.5) or f'> {steps}'} | - | - |")
    return "\n".join(lines)


def figures(rows: list[dict], persistence: np.ndarray, out: Path, steps: int) -> None:
    try:
        from equiscale.continuum import plots
    except ImportError:
        return
    groups: dict[tuple[str, float], list[np.ndarray]] = {}
    for r in rows:  # one curve per model and fraction: the mean over its seeds
        groups.setdefault((r["model"], r["fraction"]), []).append(np.asarray(r["curve"]))
    label = {key: f"{key[0]}, {key[1]:g} of the data" + (f" (mean of {len(c)} seeds)" if len(c) > 1 else "")
             for key, c in groups.items()}
    curves = {label[key]: np.mean(c, axis=0) for key, c in groups.items()}
    styles = {label[key]: (key[0], f"{1 / key[1]:06.2f}") for key in groups}  # all the data drawn solid
    curves["persistence (no change)"] = persistence
    plots.plot_error_curves(curves, out / "continuum_rollout_error.png", title="rollout error, equal CPU time",
                            styles=styles)
    if len({r["fraction"] for r in rows}) > 1:
        plots.plot_data_efficiency(rows, out / "continuum_data_efficiency.png", metric=f"rollout_{min(25, steps)}",
                                   reference=float(persistence[min(25, steps) - 1]))


if __name__ == "__main__":
    main()
