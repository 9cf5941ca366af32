"""Speed and accuracy of equiscale's EquivariantPotential against NequIP 0.19 and MACE.

Speed (default): energy+forces inference and one training step (energy and force MSE, backward to
the parameters, no optimizer step) on 32 random molecules of 20 atoms (640 atoms, about 9,000
edges at a 5 A cutoff, elements H C N O), float32, same process, interleaved, median of repeats.
Same sizes everywhere: l_max 2, 32 channels, 2 interaction layers, 8 Bessel functions, radial
MLP of one hidden layer of 64. NequIP is run twice: ``parity=True`` (its default: every irrep with
both parities, 6 blocks per layer) and ``parity=False`` (0e+1o+2e, the irreps ours uses).

    python benchmarks/potential.py [--repeats 7] [--threads 2] [--no-mace]

Accuracy: EMT copper (3x3x3 supercell, 108 atoms, 800 K), 400 training and 100 test frames; ours
and NequIP are trained for the same training-step time, in two processes running side by side
(one thread each, so both see the same machine load), then their force MAE on the test frames
is printed. The EMT frames are cached in ``--data`` (generated when missing).

    python benchmarks/potential.py accuracy --seconds 600 [--data runs/bench/cu800.xyz]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from equiscale.atomistic import AtomicDataset, collate, dataset_statistics, read_structures
from equiscale.atomistic.model import EquivariantPotential

SIZES = dict(lmax=2, channels=32, layers=2, cutoff=5.0, num_bessel=8, radial_hidden=64)


def molecules(count: int = 32, atoms: int = 20, side: float = 6.0, seed: int = 0) -> list:
    """Random 'molecules': ``atoms`` H/C/N/O atoms uniformly in a cube, at least 0.9 A apart."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        positions = rng.random((atoms, 3)) * side
        distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1) + 10 * np.eye(atoms)
        if distances.min() > 0.9:
            out.append(Atoms(numbers=rng.choice([1, 6, 7, 8], atoms), positions=positions))
    return out


def ours(structures, stats: dict) -> EquivariantPotential:
    torch.manual_seed(0)
    model = EquivariantPotential(stats["elements"], lmax=SIZES["lmax"], channels=SIZES["channels"], layers=SIZES["layers"],
                                 cutoff=SIZES["cutoff"], num_radial_basis=SIZES["num_bessel"], radial_hidden=SIZES["radial_hidden"],
                                 avg_num_neighbors=stats["avg_num_neighbors"], reference_energies=stats["reference_energies"],
                                 energy_scale=stats["force_rms"])
    return model.float()


# --- peers -------------------------------------------------------------------------------------
def type_name(z: int) -> str:
    """NequIP's type name of element ``z``: its chemical symbol."""
    from ase.data import chemical_symbols

    return chemical_symbols[int(z)]


def nequip_model(sizes: dict, parity: bool, elements: list[int], avg_num_neighbors: float, shifts=0.0, scale=1.0):
    """NequIPGNNModel with our sizes (NequIP sets torch's default dtype to float64 on first use)."""
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state

    set_global_state()
    return NequIPGNNModel(seed=0, model_dtype="float32", r_max=sizes["cutoff"], type_names=[type_name(z) for z in elements],
                          num_layers=sizes["layers"], l_max=sizes["lmax"], parity=parity, num_features=sizes["channels"],
                          num_bessels=sizes["num_bessel"], radial_mlp_width=sizes["radial_hidden"], avg_num_neighbors=avg_num_neighbors,
                          per_type_energy_shifts=shifts, per_type_energy_scales=scale)


def nequip_data(atoms_list, elements: list[int], cutoff: float) -> list:
    from nequip.data import AtomicDataDict
    from nequip.data._nl import compute_neighborlist_
    from nequip.data.ase import from_ase

    index = {z: k for k, z in enumerate(elements)}
    out = []
    for atoms in atoms_list:
        data = from_ase(atoms)
        data[AtomicDataDict.ATOM_TYPE_KEY] = torch.tensor([index[int(z)] for z in atoms.numbers])
        out.append(compute_neighborlist_(data, cutoff))
    return out


def _nequip_loss(model, data, energy, forces):
    out = model(dict(data))
    return (out["total_energy"].reshape(-1) - energy).pow(2).mean() + (out["forces"] - forces).pow(2).mean()


def nequip_functions(atoms, sizes: dict, parity: bool, batch: dict):
    from nequip.data import AtomicDataDict

    elements = sorted({int(z) for a in atoms for z in a.numbers})
    model = nequip_model(sizes, parity, elements, batch["edge_index"].shape[1] / batch["positions"].shape[0])
    data = AtomicDataDict.batched_from_list(nequip_data(atoms, elements, sizes["cutoff"]))
    energy, forces = batch["energy"].double(), batch["forces"].double()

    def infer():
        model.eval()
        out = model(dict(data))
        return out["total_energy"].detach(), out["forces"].detach()

    def train():
        model.train()
        model.zero_grad(set_to_none=True)
        _nequip_loss(model, data, energy.to(torch.float32), forces.to(torch.float32)).backward()

    return infer, train


def mace_functions(atoms, sizes: dict, batch: dict):
    """MACE (RealAgnosticResidualInteractionBlock, correlation 3) with our sizes."""
    from e3nn import o3 as e3nn_o3
    from mace import modules

    torch.set_default_dtype(torch.float32)  # undo NequIP's global float64: MACE keeps some tensors in the default dtype
    elements = sorted({int(z) for z in batch["numbers"].tolist()})
    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    hidden = e3nn_o3.Irreps(" + ".join(f"{sizes['channels']}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(sizes["lmax"] + 1)))
    torch.manual_seed(0)
    model = modules.MACE(r_max=sizes["cutoff"], num_bessel=sizes["num_bessel"], num_polynomial_cutoff=6, max_ell=sizes["lmax"],
                         interaction_cls=block, interaction_cls_first=block, num_interactions=sizes["layers"], num_elements=len(elements),
                         hidden_irreps=hidden, MLP_irreps=e3nn_o3.Irreps("16x0e"), atomic_energies=np.zeros(len(elements)),
                         avg_num_neighbors=batch["edge_index"].shape[1] / batch["positions"].shape[0], atomic_numbers=elements,
                         correlation=3, gate=torch.nn.functional.silu, radial_MLP=[sizes["radial_hidden"]]).float()
    species = torch.tensor([elements.index(int(z)) for z in batch["numbers"]])
    counts = batch["num_atoms"]
    edges = batch["edge_index"].shape[1]
    data = {"positions": batch["positions"].clone(), "node_attrs": torch.nn.functional.one_hot(species, len(elements)).float(),
            "edge_index": batch["edge_index"], "shifts": torch.zeros(edges, 3), "unit_shifts": torch.zeros(edges, 3),
            "cell": torch.zeros(3 * len(counts), 3), "batch": batch["batch"],
            "ptr": torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])}

    def infer():
        out = model(dict(data), training=False, compute_force=True)
        return out["energy"].detach(), out["forces"].detach()

    def train():
        model.zero_grad(set_to_none=True)
        out = model(dict(data), training=True, compute_force=True)
        ((out["energy"] - batch["energy"]).pow(2).mean() + (out["forces"] - batch["forces"]).pow(2).mean()).backward()

    return infer, train


def _median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def speed(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    from equiscale.atomistic import AtomicStructure

    atoms = molecules()
    rng = np.random.default_rng(1)
    structures = [AtomicStructure(a.positions, a.numbers, energy=float(rng.normal()), forces=rng.normal(size=(20, 3))) for a in atoms]
    dataset = AtomicDataset(structures, SIZES["cutoff"])
    stats = dataset_statistics(dataset)
    batch = collate(dataset.graphs, torch.float32)
    edges = batch["edge_index"].shape[1]
    model = ours(structures, stats)

    def our_infer():
        model.eval()
        out = model(batch, create_graph=False)
        return out["energy"].detach(), out["forces"].detach()

    def our_train():
        model.train()
        model.zero_grad(set_to_none=True)
        out = model(batch)
        loss = (out["energy"] - batch["energy"]).pow(2).mean() + (out["forces"] - batch["forces"]).pow(2).mean()
        loss.backward()

    contenders = {"equiscale": (our_infer, our_train)}
    contenders["nequip (parity)"] = nequip_functions(atoms, SIZES, parity=True, batch=batch)
    contenders["nequip (no parity)"] = nequip_functions(atoms, SIZES, parity=False, batch=batch)
    if not args.no_mace:
        contenders["mace"] = mace_functions(atoms, SIZES, batch=batch)
    torch.set_default_dtype(torch.float32)  # NequIP's global state switched it; ours does not care

    times: dict[str, dict[str, list[float]]] = {name: {"inference": [], "train": []} for name in contenders}
    for name, (infer, train) in contenders.items():  # warm-up
        infer(), train()
    for repeat in range(args.repeats):
        for name, (infer, train) in contenders.items():
            for kind, fn in (("inference", infer), ("train", train)):
                start = time.perf_counter()
                fn()
                times[name][kind].append(time.perf_counter() - start)
        print(f"repeat {repeat + 1}/{args.repeats}", file=sys.stderr, flush=True)
    result = {name: {kind: _median_ms(v) for kind, v in t.items()} for name, t in times.items()}
    print(f"32 molecules x 20 atoms, {edges} edges, float32, {args.threads} threads, median of {args.repeats}")
    print(f"{'model':20s} {'inference ms':>13s} {'train step ms':>14s} {'x inference':>12s} {'x train':>8s}")
    base = result["equiscale"]
    for name, r in result.items():
        print(f"{name:20s} {r['inference']:13.1f} {r['train']:14.1f} {r['inference'] / base['inference']:12.2f} {r['train'] / base['train']:8.2f}")
    return {"edges": edges, "milliseconds": result}


def accuracy(args: argparse.Namespace) -> dict:
    data = Path(args.data)
    if not data.is_file():
        from equiscale.atomistic import write_emt_dataset

        write_emt_dataset(data, "Cu", size=3, frames=500, temperature=800.0, seed=0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from equiscale.atomistic import write_structures

    frames = read_structures(data)
    order = np.random.default_rng(0).permutation(len(frames))
    train, test = out / "train.xyz", out / "test.xyz"
    write_structures(train, [frames[i] for i in order[:400]])
    write_structures(test, [frames[i] for i in order[400:500]])
    processes = []
    for who in ("equiscale", "nequip"):
        command = [sys.executable, str(Path(__file__).resolve()), f"train-{who}", "--data", str(train), "--test", str(test),
                   "--out", str(out / who), "--seconds", str(args.seconds), "--batch-size", str(args.batch_size)]
        (out / who).mkdir(exist_ok=True)
        log = open(out / who / "log.txt", "a")
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}))
        print(f"training {who} for {args.seconds:.0f} s: log in {out / who / 'log.txt'}", flush=True)
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"{process.args} failed")
    results = {who: json.loads((out / who / "result.json").read_text()) for who in ("equiscale", "nequip")}
    for who, r in results.items():
        print(f"{who:10s} force MAE {r['force_mae']:7.1f} meV/A  energy MAE {r['energy_mae']:6.2f} meV/atom  "
              f"{r['steps']} steps in {r['seconds']:.0f} s of training")
    return results


# --- accuracy workers (one process each, one thread) -------------------------------------------
def _result(out: Path, **values) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "result.json.tmp"
    tmp.write_text(json.dumps(values, indent=1))
    os.replace(tmp, out / "result.json")
    return values


def train_equiscale(args: argparse.Namespace) -> dict:
    from equiscale.atomistic.evaluate import evaluate_potential
    from equiscale.atomistic.training import TrainSettings, train_potential

    torch.set_num_threads(1)
    out = Path(args.out)
    settings = TrainSettings(data=args.data, out=str(out / "run"), valid_fraction=0.0, epochs=10**6, max_time=args.seconds,
                             batch_size=args.batch_size, stress_weight=0.0, patience=None, lmax=SIZES["lmax"],
                             channels=SIZES["channels"], layers=SIZES["layers"], cutoff=SIZES["cutoff"],
                             num_radial_basis=SIZES["num_bessel"], radial_hidden=SIZES["radial_hidden"])
    summary = train_potential(settings, resume=(out / "run" / "last.pt").is_file())
    metrics = evaluate_potential(out / "run" / "last.pt", args.test, batch_size=4)
    return _result(out, force_mae=metrics["force_mae"], energy_mae=metrics["energy_mae"], steps=summary["steps"],
                   seconds=summary["train_time"], epochs=summary["epochs"])


def train_nequip(args: argparse.Namespace) -> dict:
    """NequIP (parity=True, its default) trained like ours: Adam 5e-3, EMA 0.99, plateau schedule,
    energy-per-atom and force MSE, the same statistics, batches and time budget."""
    from nequip.data import AtomicDataDict
    from torch_ema import ExponentialMovingAverage

    torch.set_num_threads(1)
    train = read_structures(args.data)
    test = read_structures(args.test)
    stats = dataset_statistics(AtomicDataset(train, SIZES["cutoff"]))
    elements = list(stats["elements"])
    shifts = {type_name(z): stats["reference_energies"][z] for z in elements}
    scales = {type_name(z): stats["force_rms"] for z in elements}
    model = nequip_model(SIZES, True, elements, stats["avg_num_neighbors"], shifts, scales)
    train_data = nequip_data([s.to_atoms() for s in train], elements, SIZES["cutoff"])
    test_data = nequip_data([s.to_atoms() for s in test], elements, SIZES["cutoff"])
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=5)
    ema = ExponentialMovingAverage(model.parameters(), decay=0.99)
    generator = np.random.default_rng(0)
    elapsed, steps, epochs = 0.0, 0, 0

    def batch_of(data_list, structures, indices):
        data = AtomicDataDict.batched_from_list([data_list[i] for i in indices])
        energy = torch.tensor([structures[i].energy / len(structures[i]) for i in indices], dtype=torch.float32)
        forces = torch.as_tensor(np.concatenate([structures[i].forces for i in indices]), dtype=torch.float32)
        return data, energy, forces

    while elapsed < args.seconds:
        order, losses = generator.permutation(len(train)), []
        for start in range(0, len(order), args.batch_size):
            data, energy, forces = batch_of(train_data, train, order[start:start + args.batch_size])
            began = time.perf_counter()
            model.train()
            out = model(dict(data))
            per_atom = out["total_energy"].reshape(-1) / data["num_atoms"]
            loss = (per_atom - energy).pow(2).mean() + (out["forces"] - forces).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ema.update()
            elapsed += time.perf_counter() - began
            steps += 1
            losses.append(float(loss.detach()))
            if elapsed >= args.seconds:
                break
        epochs += 1
        scheduler.step(float(np.mean(losses)))
        print(f"nequip epoch {epochs} step {steps} {elapsed:.0f}s loss {np.mean(losses):.3e}", flush=True)
    errors_f, errors_e = [], []
    model.eval()
    with ema.average_parameters():
        for start in range(0, len(test), 4):
            indices = list(range(start, min(start + 4, len(test))))
            data, energy, forces = batch_of(test_data, test, indices)
            out = model(dict(data))
            errors_f.append((out["forces"].detach().double() - forces.double()).abs().reshape(-1))
            errors_e.append((out["total_energy"].detach().reshape(-1).double() / data["num_atoms"] - energy.double()).abs())
    return _result(Path(args.out), force_mae=1000 * float(torch.cat(errors_f).mean()), energy_mae=1000 * float(torch.cat(errors_e).mean()),
                   steps=steps, seconds=elapsed, epochs=epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="speed", choices=["speed", "accuracy", "train-equiscale", "train-nequip"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-mace", action="store_true")
    parser.add_argument("--seconds", type=float, default=600.0, help="accuracy: training time of each model")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--data", default="runs/bench/cu800.xyz")
    parser.add_argument("--out", default="runs/bench/accuracy")
    parser.add_argument("--test", help="train-* modes: the test structures")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    modes = {"speed": speed, "accuracy": accuracy, "train-equiscale": train_equiscale, "train-nequip": train_nequip}
    result = modes[args.mode](args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
