"""Active learning against random sampling of the MD trajectory (issue 16 §3), EMT copper.

    python benchmarks/active_learning.py --threads 1 [--quick]

Active learning (``equiscale.atomistic.active_learning``) starts from a few rattled crystals and adds
the frames of committee MD at 800 K whose largest per-atom force spread passes the threshold. The
baseline samples frames at random from a reference (EMT) Langevin trajectory at the same
temperature, with as many frames as active learning labelled (n) and twice as many (2n), and trains
a committee of the same size and architecture from scratch. Every committee member gets the same
number of optimizer steps as an active-learning member took over all its rounds. All committees are
tested on the same frames of another reference trajectory at 800 K. The goal: active learning with
n frames reaches the test force error of random sampling with 2n.

Prints one table (force MAE/RMSE in meV/A, energy MAE in meV/atom) and the CPU seconds of each
part; ``--json FILE`` writes the numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average  # noqa: E402

from equiscale.atomistic.active_learning import _test_error, active_learning, reference_calculator  # noqa: E402
from equiscale.atomistic.emt import langevin_frames  # noqa: E402
from equiscale.atomistic.settings import LearnPotential  # noqa: E402
from equiscale.atomistic.structures import read_structures, write_structures  # noqa: E402
from equiscale.atomistic.training import train_potential  # noqa: E402
from equiscale.uncertainty.files import member_name, write_committee  # noqa: E402


def random_committee(settings: LearnPotential, frames: list, folder: Path, steps: int) -> None:
    """A committee trained from scratch on ``frames`` with ``steps`` optimizer steps per member."""
    folder.mkdir(parents=True)
    write_structures(folder / "train.xyz", frames)
    batches = math.ceil(len(frames) / settings.batch_size)
    epochs = max(1, round(steps / batches))
    members = [settings.train_settings(str(folder / "train.xyz"), str(folder / member_name(k)), settings.seed + k, epochs)
               for k in range(settings.ensemble)]
    for member in members:
        train_potential(member)
    write_committee(folder, {"kind": "potential", "ensemble": len(members), "members": [member_name(k) for k in
                    range(len(members))], "seeds": [m.seed for m in members], "settings": members[0].as_dict(),
                    "complete": True})


def al_steps(settings: LearnPotential, rounds: list[dict]) -> int:
    """Optimizer steps of one active-learning member over all rounds."""
    return sum(math.ceil(r["labelled"] / settings.batch_size) * (settings.epochs if r["round"] == 1 else settings.retrain_epochs)
               for r in rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = dict(rounds=2, md_steps=60, epochs=4, retrain_epochs=2, test_frames=3, channels=4, min_gap=5, max_new=2,
                 initial_frames=2)
    full = dict(rounds=4, md_steps=400, epochs=60, retrain_epochs=30, test_frames=20, channels=8, layers=2, min_gap=20,
                max_new=4, initial_frames=4)
    folder = Path(args.out or tempfile.mkdtemp(prefix="al-bench-"))
    settings = LearnPotential(out=str(folder / "al"), element="Cu", temperature=800.0, seed=args.seed,
                              threads=args.threads, **(quick if args.quick else full))
    print(f"EMT Cu, {4 * settings.size ** 3} atoms, {settings.temperature:g} K; committee of {settings.ensemble}, "
          f"lmax {settings.lmax}, {settings.channels} channels, {settings.layers} layer(s); load {load_average()}; "
          f"{args.threads} thread(s)", flush=True)
    start = time.process_time()
    rounds = active_learning(settings, log=lambda line: print("  " + line, flush=True))
    al_cpu = time.process_time() - start
    final = rounds[-1]
    n = final["labelled"]
    steps = al_steps(settings, rounds)
    test = read_structures(folder / "al" / "test.xyz")

    start = time.process_time()
    pool = langevin_frames(read_structures(folder / "al" / "round-1" / "train.xyz")[0], reference_calculator("emt"),
                           max(40, 4 * n), settings.temperature, seed=args.seed + 31, warmup=10)
    rng = np.random.default_rng(args.seed)
    rows = [{"method": f"active learning ({len(rounds)} rounds)", "frames": n, **{k: final[k] for k in
             ("force_mae", "force_rmse", "energy_mae_per_atom")}, "cpu_s": al_cpu}]
    for count in (n, 2 * n):
        t0 = time.process_time()
        chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=count, replace=False))]
        run = folder / f"random-{count}"
        random_committee(settings, chosen, run, steps)
        rows.append({"method": "random frames of the MD trajectory", "frames": count, **_test_error(run, test),
                     "cpu_s": time.process_time() - t0})
    print(f"\nevery member: {steps} optimizer steps; test: {len(test)} frames of reference MD at "
          f"{settings.temperature:g} K (another seed); reference trajectory {time.process_time() - start:.0f} CPU-s "
          f"for the baselines in all")
    print("| method | labelled frames | test force MAE (meV/A) | force RMSE (meV/A) | energy MAE (meV/atom) | CPU-s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {row['frames']} | {row['force_mae']:.1f} | {row['force_rmse']:.1f} | "
              f"{row['energy_mae_per_atom']:.2f} | {row['cpu_s']:.0f} |")
    goal = rows[0]["force_mae"] <= rows[2]["force_mae"]
    print(f"\ngoal (active learning with n frames <= random with 2n in force MAE): {'met' if goal else 'not met'}; "
          f"total {time.process_time():.0f} CPU-s")
    print("per round: " + "; ".join(f"{r['round']}: {r['labelled']} frames, MAE {r['force_mae']:.1f}, stable "
                                    f"{r['stable_fs']:g} fs{' (exploded)' if r['exploded'] else ''}, +{r['new']}"
                                    for r in rounds))
    if args.json:
        Path(args.json).write_text(json.dumps({"rounds": rounds, "rows": rows, "steps": steps}, indent=1))


if __name__ == "__main__":
    main()
