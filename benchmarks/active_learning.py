"""Active learning against random sampling of the MD trajectory (issue 16 §3), EMT copper.

    python benchmarks/active_learning.py --threads 1 [--quick]

Active learning (``equiscale.atomistic.active_learning``) starts from a few rattled crystals and adds
the frames of committee MD at 800 K whose largest per-atom force spread passes the threshold. The
baseline samples frames at random from a reference (EMT) Langevin trajectory at the same
temperature, with as many frames as active learning trained its last committee on (n) and twice as
many (2n). To compare the frames and not the training schedules, the n frames active learning
selected are also used to train a committee from scratch exactly like the random ones: same
committee size and architecture, the same number of optimizer steps per member (as many as one
active-learning member took over all its rounds). All committees are tested on the same frames of
another reference trajectory at 800 K, and on frames at 1600 K (off the sampled distribution). The goal: active learning with n frames reaches the test
force error of random sampling with 2n. Each seed repeats everything (data, selection, weights).

Prints one table per seed and the mean over seeds (force MAE/RMSE in meV/A, energy MAE in
meV/atom) with the CPU seconds of each part; ``--json FILE`` writes the numbers.
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


def one_seed(settings: LearnPotential, folder: Path, seed: int) -> tuple[list[dict], list[dict], int]:
    """Active learning, then the committees trained from scratch on its frames and on random frames."""
    start = time.process_time()
    rounds = active_learning(settings, log=lambda line: print("  " + line, flush=True))
    al_cpu = time.process_time() - start
    final = rounds[-1]
    n = final["labelled"]
    steps = al_steps(settings, rounds)
    test = read_structures(folder / "al" / "test.xyz")
    selected = read_structures(folder / "al" / f"round-{final['round']}" / "train.xyz")
    pool = langevin_frames(selected[0], reference_calculator("emt"), max(40, 4 * n), settings.temperature,
                           seed=seed + 31, warmup=10)
    hot = langevin_frames(selected[0], reference_calculator("emt"), len(test), 1600.0, seed=seed + 77, warmup=10)
    rng = np.random.default_rng(seed)
    last = folder / "al" / f"round-{final['round']}"
    rows = [{"method": f"active learning, its last committee ({len(rounds)} rounds, warm starts)", "frames": n,
             **{k: final[k] for k in ("force_mae", "force_rmse", "energy_mae_per_atom")}, "cpu_s": al_cpu,
             "hot_force_mae": _test_error(last, hot)["force_mae"]}]
    for name, frames in [("active-learning frames, committee from scratch", selected)] + [
            (f"random frames of the MD trajectory", [pool[i] for i in sorted(rng.choice(len(pool), size=count,
                                                                                        replace=False))])
            for count in (n, 2 * n)]:
        t0 = time.process_time()
        run = folder / f"scratch-{len(frames)}-{'al' if frames is selected else 'random'}"
        random_committee(settings, frames, run, steps)
        rows.append({"method": name, "frames": len(frames), **_test_error(run, test),
                     "hot_force_mae": _test_error(run, hot)["force_mae"], "cpu_s": time.process_time() - t0})
    return rounds, rows, steps


def table(rows: list[dict]) -> str:
    lines = ["| method | labelled frames | test force MAE (meV/A) | force RMSE (meV/A) | energy MAE (meV/atom) | "
             "1600 K force MAE (meV/A) | CPU-s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['frames']} | {r['force_mae']:.1f} | {r['force_rmse']:.1f} | "
              f"{r['energy_mae_per_atom']:.2f} | {r['hot_force_mae']:.1f} | {r['cpu_s']:.0f} |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quick = dict(rounds=2, md_steps=60, epochs=4, retrain_epochs=2, test_frames=3, channels=4, min_gap=5, max_new=2,
                 initial_frames=2)
    full = dict(rounds=4, md_steps=400, epochs=60, retrain_epochs=30, test_frames=20, channels=8, layers=2, min_gap=20,
                max_new=4, initial_frames=4)
    root = Path(args.out or tempfile.mkdtemp(prefix="al-bench-"))
    results = []
    for seed in args.seeds:
        folder = root / f"seed-{seed}"
        settings = LearnPotential(out=str(folder / "al"), element="Cu", temperature=800.0, seed=seed,
                                  threads=args.threads, **(quick if args.quick else full))
        print(f"seed {seed}: EMT Cu, {4 * settings.size ** 3} atoms, {settings.temperature:g} K; committee of "
              f"{settings.ensemble}, lmax {settings.lmax}, {settings.channels} channels, {settings.layers} layer(s); "
              f"load {load_average()}; {args.threads} thread(s)", flush=True)
        rounds, rows, steps = one_seed(settings, folder, seed)
        results.append({"seed": seed, "rounds": rounds, "rows": rows, "steps": steps})
        print(f"every committee member: {steps} optimizer steps")
        print(table(rows), flush=True)
    mean = [{**results[0]["rows"][i], "frames": "/".join(str(r["rows"][i]["frames"]) for r in results),
             **{k: float(np.mean([r["rows"][i][k] for r in results]))
             for k in ("force_mae", "force_rmse", "energy_mae_per_atom", "hot_force_mae", "cpu_s")}} for i in range(len(results[0]["rows"]))]
    print(f"\nmean over seeds {args.seeds}:")
    print(table(mean))
    al, random_2n = mean[1]["force_mae"], mean[3]["force_mae"]
    print(f"\ngoal (active-learning frames, n, reach the force MAE of 2n random frames): "
          f"{'met' if al <= random_2n else 'not met'} ({al:.1f} vs {random_2n:.1f} meV/A); total "
          f"{time.process_time():.0f} CPU-s")
    if args.json:
        Path(args.json).write_text(json.dumps({"seeds": results, "mean": mean}, indent=1))


if __name__ == "__main__":
    main()
