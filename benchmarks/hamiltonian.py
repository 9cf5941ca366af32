"""The quantum scale's goals (issue 12, section 4), end to end through the public commands.

Three measurements, each through ``equiscale data dft`` / ``train hamiltonian`` / ``evaluate
hamiltonian`` run as subprocesses (one thread each, at most ``--jobs`` at a time), the training
budget in CPU seconds of the training process (``--max-time B --clock process``):

* ``water``: B3LYP/def2-SVP water (300 training-file frames, 50 held-out test frames, a separate
  seed); the equivariant model on ``--water-frames`` training frames (10% of the file validates).
  Prints the validation H MAE against training CPU time (from the run's ``history.json``: the best
  so far, i.e. what ``best.pt`` held at that time), then the test metrics of ``best.pt``: H MAE
  (goal 10.8 micro-Hartree, QHNet on MD17 water), orbital energies, and PySCF's SCF from the
  predicted H against ``minao`` on ``--scf-frames`` test frames (goal <= 0.6x the iterations, the
  same converged energy within 1e-8 Hartree).
* ``ethanol``: B3LYP/def2-SVP ethanol (72 orbitals), 45 training-file frames and 10 test frames
  (``--no-polarizability``: the finite-field polarizability would cost six more SCFs per frame);
  the equivariant model and the augmented non-equivariant baseline (its width chosen by
  ``train hamiltonian`` to match the equivariant parameter count) for the same CPU budget on 10
  and 40 training frames (4 of the 45 validate).
* ``speed``: n-hexane (C6H14, 20 atoms, def2-SVP) in this process, one thread: the median time of
  predicting H with the ethanol equivariant model (same elements) against one PySCF B3LYP SCF from
  ``minao`` (PySCF's default tolerance 1e-9 Hartree).

A run whose ``metrics.json`` exists is reused, a dataset that exists is not relabelled, and a run
whose history already spent its budget is only evaluated; so an interrupted benchmark resumes.

    python benchmarks/hamiltonian.py                          # everything (about 45 CPU minutes)
    python benchmarks/hamiltonian.py --parts ethanol speed --ethanol-budget 300
    python benchmarks/hamiltonian.py --quick                  # STO-3G, 5-second budgets: about a minute
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_average  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from equiscale.cli import main; sys.exit(main())"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


IN_PROCESS = False
"""True with ``--jobs 1``: the commands run through ``equiscale.cli.main`` in this process, one after
the other (no interpreter start-up per command; the training budget is still its own process-time
delta, since nothing else runs meanwhile)."""


def run(args: list[str], log: Path) -> None:
    """One ``equiscale`` command (its output into ``log``); raises on failure."""
    print("$ equiscale " + " ".join(args), flush=True)
    with open(log, "a") as out:
        out.write("$ equiscale " + " ".join(args) + "\n")
        out.flush()
        if IN_PROCESS:
            import contextlib

            from equiscale.cli import main as cli_main

            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = cli_main(args)
        else:
            code = subprocess.call(CLI + args, stdout=out, stderr=subprocess.STDOUT, env=ENV)
    if code:
        raise RuntimeError(f"equiscale {' '.join(args)} failed with exit code {code} (see {log})")


def label(work: Path, molecule: str, frames: int, seed: int, name: str, opts) -> Path:
    out = work / f"{name}.dft"
    if (out / "manifest.json").exists():
        from equiscale.quantum import DFTDataset

        if len(DFTDataset(out)) >= frames:
            return out
    run(["data", "dft", "--molecule", molecule, "--frames", str(frames), "--basis", opts.basis, "--xc", opts.xc,
         "--seed", str(seed), "--no-polarizability", "--workers", "1", "--quiet", "--out", str(out)],
        work / f"{name}.log")
    return out


def history(directory: Path) -> list[dict]:
    path = directory / "history.json"
    return json.loads(path.read_text()) if path.exists() else []


TRAIN_ARGS: list[str] = []
"""Extra ``train hamiltonian`` options of every run (``--train-args``, e.g. ``--guess sap --occupied-weight 1``)."""


def train_and_evaluate(work: Path, name: str, data: Path, test: Path, model: str, frames: int, budget: float,
                       scf_frames: int) -> dict:
    """Train ``model`` on ``frames`` frames for ``budget`` CPU seconds, evaluate best.pt; the metrics."""
    out = work / name
    metrics_file = out / "metrics.json"
    if metrics_file.exists():
        return json.loads(metrics_file.read_text())
    log = work / f"{name}.log"
    load_before = load_average()
    start = time.time()
    spent = history(out)[-1]["time"] if history(out) else 0.0
    if spent < 0.95 * budget:
        args = ["train", "hamiltonian", "--data", str(data), "--out", str(out), "--model", model,
                "--train-frames", str(frames), "--valid-fraction", "0.1", "--max-time", str(budget),
                "--clock", "process", "--threads", "1", "--seed", "0", "--quiet", *TRAIN_ARGS]
        run(args + (["--resume"] if (out / "last.pt").exists() else []), log)
    train_wall = time.time() - start
    load_after = load_average()
    json_file = out / "evaluate.json"
    run(["evaluate", "hamiltonian", str(out / "best.pt"), "--data", str(test), "--scf-frames", str(scf_frames),
         "--threads", "1", "--json", str(json_file), "--no-figures"], log)
    from equiscale.quantum import load_hamiltonian
    from equiscale.quantum.training import count_parameters

    net, _ = load_hamiltonian(out / "best.pt")
    hist = history(out)
    metrics = {"name": name, "model": model, "train_frames": frames, "budget": budget,
               "parameters": count_parameters(net), "epochs": len(hist), "cpu_s": hist[-1]["time"],
               "train_wall_s": round(train_wall, 1), "load": f"{load_before}-{load_after}",
               "curve": [(h["time"], h.get("val_h_mae_uha")) for h in hist],
               **json.loads(json_file.read_text())}
    metrics_file.write_text(json.dumps(metrics, indent=1))
    return metrics


def curve_table(metrics: dict, marks: list[float]) -> str:
    """Best validation H MAE so far at each CPU-time mark."""
    rows = ["| training CPU s | epochs | best validation H MAE (µHa) |", "|---:|---:|---:|"]
    best, epoch, shown = float("inf"), 0, 0
    points = metrics["curve"]
    for mark in marks:
        while epoch < len(points) and points[epoch][0] <= mark:
            if points[epoch][1] is not None:
                best = min(best, points[epoch][1])
            epoch += 1
        if epoch > shown:
            shown = epoch
            rows.append(f"| {min(mark, points[epoch - 1][0]):.1f} | {epoch} | {best:.1f} |")
        if epoch == len(points):
            break
    return "\n".join(rows)


def metrics_table(rows: list[dict]) -> str:
    head = ("| model | train frames | parameters | CPU s | epochs | H MAE (µHa) | occ. orbital energy MAE (µHa) | "
            "occ. orbital cosine | gap MAE (µHa) | SCF iterations pred / minao (ratio) | max abs(E_pred - E_minao) (Ha) "
            "| SCF s pred / minao | load avg |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for m in rows:
        lines.append(
            f"| {m['model']} | {m['train_frames']} | {m['parameters']:,} | {m['cpu_s']:.0f} | {m['epochs']} | "
            f"{m['h_mae_uha']:.1f} | {m['orbital_energy_mae_uha']:.1f} | {m['orbital_cosine']:.4f} | "
            f"{m['gap_mae_uha']:.1f} | {m.get('scf_iterations_predicted', float('nan')):.1f} / "
            f"{m.get('scf_iterations_minao', float('nan')):.1f} ({m.get('scf_iteration_ratio', float('nan')):.2f}) | "
            f"{m.get('scf_energy_difference', float('nan')):.1e} | {m.get('scf_seconds_predicted', float('nan')):.2f} / "
            f"{m.get('scf_seconds_minao', float('nan')):.2f} | {m['load']} |")
    return "\n".join(lines)


def scf_floor(test: Path, frames: int, conv_tol: float = 1e-10) -> dict:
    """SCF iterations from the label's own converged F (a perfect prediction) and from minao, on the
    first ``frames`` test frames with evaluate's tolerance: the floor of the iteration ratio."""
    from equiscale.quantum import DFTDataset, scf_from_fock, scf_from_minao
    from equiscale.quantum.labels import make_molecule
    from equiscale.quantum.training import load_frames

    dataset = DFTDataset(test)
    items, _ = load_frames(test, range(min(frames, len(dataset))))
    exact, minao = [], []
    for frame in items:
        mol = make_molecule(frame["numbers"], frame["positions"], dataset.basis)
        exact.append(scf_from_fock(mol, frame["fock"], xc=dataset.xc, conv_tol=conv_tol))
        minao.append(scf_from_minao(mol, xc=dataset.xc, conv_tol=conv_tol))
    e, m = np.mean([r.iterations for r in exact]), np.mean([r.iterations for r in minao])
    return {"frames": len(items), "exact": e, "minao": m, "ratio": e / m,
            "energy_difference": max(abs(a.energy - b.energy) for a, b in zip(exact, minao))}


def floor_line(f: dict) -> str:
    return (f"SCF floor (started from the label's own converged F, {f['frames']} test frames): {f['exact']:.1f} / "
            f"{f['minao']:.1f} iterations = {f['ratio']:.2f}x minao, max |dE| {f['energy_difference']:.1e} Ha")


def hexane() -> tuple[np.ndarray, np.ndarray]:
    """All-trans n-hexane: C-C 1.53 A, C-H 1.09 A, tetrahedral angles (numbers, positions in Angstrom)."""
    half = np.deg2rad(109.47 / 2)
    carbons = np.array([[1.53 * np.sin(half) * i, 1.53 * np.cos(half) * (i % 2), 0.0] for i in range(6)])
    hydrogens = []
    z = np.array([0.0, 0.0, 1.0])
    for i, c in enumerate(carbons):
        neighbours = [carbons[j] for j in (i - 1, i + 1) if 0 <= j < 6]
        if len(neighbours) == 2:
            u = -sum((n - c) / np.linalg.norm(n - c) for n in neighbours)
            u /= np.linalg.norm(u)
            for sign in (1, -1):
                hydrogens.append(c + 1.09 * (np.cos(half) * u + sign * np.sin(half) * z))
        else:
            d = (neighbours[0] - c) / np.linalg.norm(neighbours[0] - c)
            p = np.cross(z, d)
            other = carbons[2] if i == 0 else carbons[3]  # the carbon the in-plane H is trans to
            if np.dot(p, other - neighbours[0]) > 0:
                p = -p
            for phi in (0.0, 2 * np.pi / 3, 4 * np.pi / 3):
                direction = -d / 3 + np.sqrt(8 / 9) * (np.cos(phi) * p + np.sin(phi) * z)
                hydrogens.append(c + 1.09 * direction)
    positions = np.concatenate([carbons, np.array(hydrogens)])
    numbers = np.array([6] * 6 + [1] * len(hydrogens))
    return numbers, positions - positions.mean(0)


def speed(checkpoint: Path, basis: str, xc: str, repeats: int, scf_runs: int) -> dict:
    """Median prediction time of H for hexane vs PySCF SCF wall time, one thread, this process."""
    import torch
    from pyscf import lib

    from equiscale.quantum import load_hamiltonian, scf_from_fock, scf_from_minao
    from equiscale.quantum.labels import make_molecule

    torch.set_num_threads(1)
    lib.num_threads(1)
    numbers, positions = hexane()
    model, _ = load_hamiltonian(checkpoint)
    dtype = next(model.parameters()).dtype
    mol = make_molecule(numbers, positions, basis)

    def predict() -> np.ndarray:
        """H from the model, including the cheap guess it adds (PySCF one-electron integrals) if it has one."""
        batch = {"numbers": torch.as_tensor(numbers), "positions": torch.as_tensor(positions, dtype=dtype)}
        if getattr(model, "guess", "none") != "none":
            from equiscale.quantum.guess import frame_guess

            batch["guess"] = torch.as_tensor(frame_guess(numbers, positions, basis, model.guess), dtype=dtype)[None]
        with torch.no_grad():
            out = model(batch)
        return out["hamiltonian"][0].double().numpy()

    h = predict()
    assert h.shape == (mol.nao, mol.nao), (h.shape, mol.nao)
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        predict()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    scf, scf_cpu = [], []
    for _ in range(scf_runs):
        start_cpu = time.process_time()
        scf.append(scf_from_minao(mol, xc=xc))
        scf_cpu.append(time.process_time() - start_cpu)
    from_h = scf_from_fock(mol, h, xc=xc)
    predict_s = statistics.median(times)
    scf_s = statistics.median(r.seconds for r in scf)
    # on a loaded machine wall time depends on the share the scheduler gives; the CPU-time ratio does not
    return {"atoms": len(numbers), "orbitals": int(mol.nao), "predict_s": predict_s, "scf_s": scf_s,
            "predict_cpu_s": statistics.median(cpu), "scf_cpu_s": statistics.median(scf_cpu),
            "cpu_ratio": statistics.median(scf_cpu) / statistics.median(cpu), "guess": getattr(model, "guess", "none"),
            "scf_iterations": scf[0].iterations, "ratio": scf_s / predict_s,
            "scf_from_prediction_iterations": from_h.iterations, "scf_from_prediction_s": from_h.seconds,
            "energy_difference": abs(from_h.energy - scf[0].energy), "load": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=None, help="folder of datasets and runs (default runs/bench/hamiltonian[-quick])")
    parser.add_argument("--parts", nargs="+", default=["water", "ethanol", "speed"], choices=["water", "ethanol", "speed"])
    parser.add_argument("--water-budget", type=float, default=900.0, help="CPU seconds of the water run")
    parser.add_argument("--water-frames", type=int, default=270)
    parser.add_argument("--ethanol-budget", type=float, default=300.0, help="CPU seconds of each ethanol run")
    parser.add_argument("--ethanol-frames", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--scf-frames", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2,
                        help="processes at a time (one thread each); 1: every command in this process")
    parser.add_argument("--train-args", default="",
                        help="extra options of every `train hamiltonian` run, e.g. '--guess sap --occupied-weight 1'")
    parser.add_argument("--tag", default="", help="suffix of the run names (runs with other --train-args apart)")
    parser.add_argument("--quick", action="store_true",
                        help="STO-3G, few frames, 5-second budgets, one size of ethanol, in this process")
    opts = parser.parse_args()
    opts.basis, opts.xc = "def2-svp", "b3lyp"
    sizes = {"water": (300, 50), "ethanol": (45, 10)}
    if opts.quick:
        opts.basis = "sto-3g"
        sizes = {"water": (12, 3), "ethanol": (10, 2)}
        opts.water_budget, opts.water_frames, opts.ethanol_budget = 5.0, 10, 5.0
        opts.ethanol_frames, opts.scf_frames, opts.jobs = [8], 1, 1
    global IN_PROCESS
    IN_PROCESS = opts.jobs == 1
    import shlex

    TRAIN_ARGS[:] = shlex.split(opts.train_args)
    if IN_PROCESS:
        import torch

        torch.set_num_threads(1)
    work = Path(opts.work or ("runs/bench/hamiltonian-quick" if opts.quick else "runs/bench/hamiltonian"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {work}: basis {opts.basis}, {opts.xc}; load average {load_average()}", flush=True)

    molecules = [m for m in ("water", "ethanol") if m in opts.parts or (m == "ethanol" and "speed" in opts.parts)]
    with ThreadPoolExecutor(opts.jobs) as pool:
        data = {}
        for m in molecules:
            data[m] = (pool.submit(label, work, m, sizes[m][0], 0, f"{m}-train", opts),
                       pool.submit(label, work, m, sizes[m][1], 1000, f"{m}-test", opts))
        data = {m: (a.result(), b.result()) for m, (a, b) in data.items()}
        jobs = {}
        if "water" in opts.parts:
            jobs["water"] = pool.submit(train_and_evaluate, work, f"water-equivariant-{opts.water_frames}{opts.tag}",
                                        *data["water"], "equivariant", opts.water_frames, opts.water_budget,
                                        opts.scf_frames)
        if "ethanol" in opts.parts or "speed" in opts.parts:
            frames = opts.ethanol_frames if "ethanol" in opts.parts else opts.ethanol_frames[-1:]
            models = ["equivariant", "baseline"] if "ethanol" in opts.parts else ["equivariant"]
            for n in frames:
                for model in models:
                    jobs[f"ethanol-{model}-{n}"] = pool.submit(
                        train_and_evaluate, work, f"ethanol-{model}-{n}{opts.tag}", *data["ethanol"], model, n,
                        opts.ethanol_budget, min(opts.scf_frames, 5))
        results = {k: f.result() for k, f in jobs.items()}

    if "water" in opts.parts:
        m = results["water"]
        marks = [opts.water_budget / 2**k for k in (5, 4, 3, 2, 1, 0)] + [float("inf")]
        print(f"\n### Water {opts.xc}/{opts.basis}: learning curve (equivariant, {opts.water_frames} frames)\n")
        print(curve_table(m, marks))
        print(f"\n### Water: test metrics of best.pt ({m['frames']:.0f} test frames, SCF on {m.get('scf_frames', 0):.0f})\n")
        print(metrics_table([m]))
        print("\n" + floor_line(scf_floor(data["water"][1], opts.scf_frames)))
    if "ethanol" in opts.parts:
        rows = [results[f"ethanol-{model}-{n}"] for n in opts.ethanol_frames for model in ("equivariant", "baseline")]
        print(f"\n### Ethanol {opts.xc}/{opts.basis}: equivariant vs augmented baseline, the same CPU budget "
              f"within each pair (CPU s column)\n")
        print(metrics_table(rows))
        common = min(r["cpu_s"] for r in rows)
        at = {r["name"]: min((v for t, v in r["curve"] if t <= common and v is not None), default=float("nan"))
              for r in rows}
        print(f"\nbest validation H MAE within the first {common:.0f} CPU s of each run (µHa): "
              + ", ".join(f"{k} {v:.0f}" for k, v in at.items()))
        for n in opts.ethanol_frames:
            e, b = results[f"ethanol-equivariant-{n}"], results[f"ethanol-baseline-{n}"]
            print(f"\n{n} frames: baseline / equivariant H MAE = {b['h_mae_uha'] / e['h_mae_uha']:.1f}x", end="")
        print("\n\n" + floor_line(scf_floor(data["ethanol"][1], min(opts.scf_frames, 5))))
    if "speed" in opts.parts:
        s = speed(work / f"ethanol-equivariant-{opts.ethanol_frames[-1]}{opts.tag}" / "best.pt", opts.basis, opts.xc,
                  repeats=5 if opts.quick else 20, scf_runs=1)
        print(f"\n### Speed: n-hexane ({s['atoms']} atoms, {s['orbitals']} orbitals, {opts.basis}), one thread\n")
        print("| guess | predict H (median wall / CPU) | one PySCF SCF from minao (wall / CPU) | ratio wall / CPU | "
              "SCF iterations | load avg |")
        print("|---|---:|---:|---:|---:|---:|")
        print(f"| {s['guess']} | {s['predict_s'] * 1e3:.1f} / {s['predict_cpu_s'] * 1e3:.1f} ms | {s['scf_s']:.2f} / "
              f"{s['scf_cpu_s']:.2f} s | {s['ratio']:.0f}x / {s['cpu_ratio']:.0f}x | {s['scf_iterations']} | {s['load']} |")
        (work / "speed.json").write_text(json.dumps(s, indent=1))
        print(f"\n(SCF from the ethanol-trained model's hexane H: {s['scf_from_prediction_iterations']} iterations, "
              f"{s['scf_from_prediction_s']:.2f} s, |dE| {s['energy_difference']:.1e} Ha)")


if __name__ == "__main__":
    main()
