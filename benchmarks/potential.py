"""Speed and accuracy of equiscale's EquivariantPotential against NequIP 0.19 and MACE.

Speed (default): energy+forces inference and one training step (energy and force MSE, backward to
the parameters, no optimizer step) on 32 random molecules of 20 atoms (640 atoms, about 9,000
edges at a 5 A cutoff, elements H C N O), float32, same process, interleaved, median of repeats.
Same sizes everywhere: l_max 2, 32 channels, 2 interaction layers, 8 Bessel functions, radial
MLP of one hidden layer of 64. NequIP is run twice: ``parity=True`` (its default: every irrep with
both parities, 6 blocks per layer) and ``parity=False`` (0e+1o+2e, the irreps ours uses).

    python benchmarks/potential.py [--repeats 7] [--threads 2] [--no-mace]

Speed on real molecules (``--data FILE``, any file ASE reads, e.g. xtb-labelled ethanol): the same
inference and training step on the first ``--batch-size`` structures of the file, then molecular
dynamics of its first structure through each library's ASE calculator (velocity Verlet, 0.5 fs,
``--md-steps`` steps each, interleaved in blocks) and the latency of one force call (positions
changed, so nothing is cached). ``molecules`` writes two such files (ethanol, 9 atoms, and
hexan-1-ol, 21 atoms; rattled frames labelled with ASE's EMT, which is enough for timing).

    python benchmarks/potential.py molecules --out runs/bench/molecules
    python benchmarks/potential.py --data runs/bench/molecules/ethanol.xyz --threads 1 --no-mace

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
from _common import peak_rss_mb

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


def hexanol():
    """Hexan-1-ol, C6H13OH (21 atoms): a zig-zag chain with tetrahedral hydrogens."""
    from ase import Atoms

    angle, bond, ch = np.deg2rad(109.5), 1.53, 1.09
    heavy = [np.array([k * bond * np.sin(angle / 2), (k % 2) * bond * np.cos(angle / 2), 0.0]) for k in range(7)]
    heavy[6] = heavy[5] + (heavy[6] - heavy[5]) * 1.43 / bond  # C-O
    symbols, positions = ["C"] * 6 + ["O"], list(heavy)
    for k in range(6):
        outward = np.array([0.0, 1.0 if k % 2 else -1.0, 0.0])
        for side in (1.0, -1.0):
            direction = outward * np.cos(np.deg2rad(54.75)) + np.array([0.0, 0.0, side]) * np.sin(np.deg2rad(54.75))
            symbols.append("H"), positions.append(heavy[k] + ch * direction)
    symbols.append("H"), positions.append(heavy[0] + ch * np.array([-1.0, 0.0, 0.0]))  # the methyl's third H
    symbols.append("H"), positions.append(heavy[6] + 0.96 * np.array([0.6, 0.8, 0.0]))  # hydroxyl H
    return Atoms(symbols, positions=np.array(positions))


def write_molecules(args: argparse.Namespace) -> dict:
    """Ethanol (9 atoms) and hexan-1-ol (21 atoms), 64 rattled frames each, EMT labels."""
    from ase.build import molecule
    from ase.calculators.emt import EMT

    from equiscale.atomistic import AtomicStructure, write_structures

    out, written = Path(args.out), {}
    for name, base in (("ethanol", molecule("CH3CH2OH")), ("hexanol", hexanol())):
        frames = []
        for k in range(64):
            atoms = base.copy()
            atoms.rattle(0.05, seed=k)
            atoms.calc = EMT()
            frames.append(AtomicStructure(atoms.positions, atoms.numbers, energy=atoms.get_potential_energy(), forces=atoms.get_forces()))
        write_structures(out / f"{name}.xyz", frames)
        written[name] = str(out / f"{name}.xyz")
        print(f"{name}: {len(base)} atoms, {len(frames)} frames -> {written[name]}")
    return written


def _labelled(structures) -> list:
    """The structures with energy and forces (random where the file has none: only speed is measured)."""
    from equiscale.atomistic import AtomicStructure

    rng = np.random.default_rng(1)
    out = []
    for s in structures:
        energy = s.energy if s.energy is not None else float(rng.normal())
        forces = s.forces if s.forces is not None else rng.normal(size=(len(s), 3))
        out.append(AtomicStructure(s.positions, s.numbers, s.cell, s.pbc, energy=energy, forces=forces))
    return out


def nequip_calculator(sizes: dict, elements: list[int], avg_num_neighbors: float):
    """NequIP's ASE calculator around a fresh model of our sizes (float32, CPU)."""
    from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform
    from nequip.integrations.ase import NequIPCalculator

    names = [type_name(z) for z in elements]
    model = nequip_model(sizes, True, elements, avg_num_neighbors).eval()
    transforms = [ChemicalSpeciesToAtomTypeMapper(model_type_names=names, chemical_species_to_atom_type_map={n: n for n in names}),
                  NeighborListTransform(r_max=sizes["cutoff"])]
    return NequIPCalculator(model, "cpu", transforms=transforms)


def ours_like(model: EquivariantPotential) -> EquivariantPotential:
    """A second model of the same architecture (float32)."""
    return EquivariantPotential(**model.config).float()


def molecular_dynamics(structure, model, stats: dict, steps: int, blocks: int = 5, compile_too: bool = False) -> dict:
    """MD steps per second and one force call's latency through each library's ASE calculator."""
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from equiscale.atomistic.calculator import Calculator

    def compiled():
        twin = ours_like(model)
        twin.load_state_dict(model.state_dict())
        return Calculator(twin.compile_inference())

    calculators = {"equiscale": lambda: Calculator(model),
                   "nequip (parity)": lambda: nequip_calculator(SIZES, list(stats["elements"]), stats["avg_num_neighbors"])}
    if compile_too:
        calculators["equiscale compiled"] = compiled
    runs = {}
    for name, make in calculators.items():
        atoms = structure.to_atoms()
        atoms.calc = make()
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
        runs[name] = (atoms, VelocityVerlet(atoms, 0.5 * units.fs))
    torch.set_default_dtype(torch.float32)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    calls: dict[str, list[float]] = {name: [] for name in runs}
    for name, (atoms, dynamics) in runs.items():
        dynamics.run(5)  # warm-up
    for _ in range(blocks):
        for name, (atoms, dynamics) in runs.items():
            start = time.perf_counter()
            dynamics.run(steps // blocks)
            rates[name].append((steps // blocks) / (time.perf_counter() - start))
            for _ in range(20):
                atoms.positions = atoms.positions + 1e-4
                start = time.perf_counter()
                atoms.get_forces()
                calls[name].append(time.perf_counter() - start)
    return {name: {"md_steps_per_s": statistics.median(rates[name]), "force_call_ms": _median_ms(calls[name])} for name in runs}


def speed(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    from equiscale.atomistic import AtomicStructure

    if args.data:
        structures = _labelled(read_structures(args.data)[: args.batch_size])
        atoms = [s.to_atoms() for s in structures]
        title = f"{len(structures)} x {Path(args.data).name} ({sum(len(s) for s in structures)} atoms)"
    else:
        atoms = molecules()
        rng = np.random.default_rng(1)
        structures = [AtomicStructure(a.positions, a.numbers, energy=float(rng.normal()), forces=rng.normal(size=(20, 3))) for a in atoms]
        title = "32 molecules x 20 atoms"
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
    if args.compile:
        twin = ours_like(model)
        twin.load_state_dict(model.state_dict())
        twin.compile_inference()

        def compiled_infer():
            twin.eval()
            out = twin(batch, create_graph=False)
            return out["energy"].detach(), out["forces"].detach()

        contenders["equiscale compiled"] = (compiled_infer, our_train)  # training keeps the eager path
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
    print(f"{title}, {edges} edges, float32, {args.threads} threads, median of {args.repeats}")
    print(f"{'model':20s} {'inference ms':>13s} {'train step ms':>14s} {'x inference':>12s} {'x train':>8s}")
    base = result["equiscale"]
    for name, r in result.items():
        print(f"{name:20s} {r['inference']:13.2f} {r['train']:14.2f} {r['inference'] / base['inference']:12.2f} {r['train'] / base['train']:8.2f}")
    report = {"edges": edges, "milliseconds": result}
    if args.memory:
        report["peak_mb"] = memory(args)
    if args.data and args.md_steps:
        md = molecular_dynamics(structures[0], model, stats, args.md_steps, compile_too=args.compile)
        print(f"MD through the ASE calculator, {len(structures[0])} atoms, {args.md_steps} steps each (velocity Verlet, 0.5 fs)")
        print(f"{'calculator':20s} {'MD steps/s':>11s} {'force call ms':>14s} {'x MD':>6s}")
        for name, r in md.items():
            print(f"{name:20s} {r['md_steps_per_s']:11.1f} {r['force_call_ms']:14.3f} {r['md_steps_per_s'] / md['nequip (parity)']['md_steps_per_s']:6.2f}")
        report["md"] = md
    return report


def memory(args: argparse.Namespace) -> dict:
    """Peak-RSS growth of one training step of each model, each in a fresh process."""
    peaks = {}
    print("training-step memory: growth of peak RSS over model and inputs, one fresh process per model")
    for who in ("equiscale", "nequip (parity)"):
        command = [sys.executable, str(Path(__file__).resolve()), "speed", "--peak", who, "--threads", str(args.threads)]
        if args.data:
            command += ["--data", args.data, "--batch-size", str(args.batch_size)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        peaks[who] = float(out.stdout.strip().splitlines()[-1])
        print(f"  {who:20s} {peaks[who]:7.1f} MB")
    return peaks


def peak(args: argparse.Namespace) -> None:
    """Print the peak-RSS growth (MB) of one training step of ``args.peak`` (after one warm-up
    step on a single structure, so that code and libraries are loaded outside the measurement)."""
    from equiscale.atomistic import AtomicStructure

    torch.set_num_threads(args.threads)
    if args.data:
        structures = _labelled(read_structures(args.data)[: args.batch_size])
    else:
        rng = np.random.default_rng(1)
        structures = [AtomicStructure(a.positions, a.numbers, energy=float(rng.normal()), forces=rng.normal(size=(20, 3)))
                      for a in molecules()]
    dataset = AtomicDataset(structures, SIZES["cutoff"])
    stats = dataset_statistics(dataset)
    batch = collate(dataset.graphs, torch.float32)
    atoms = [s.to_atoms() for s in structures]
    if args.peak == "equiscale":
        model = ours(structures, stats)
        first = collate(dataset.graphs[:1], torch.float32)

        def step(b):
            model.train()
            model.zero_grad(set_to_none=True)
            out = model(b)
            ((out["energy"] - b["energy"]).pow(2).mean() + (out["forces"] - b["forces"]).pow(2).mean()).backward()

        step(first)
        before = peak_rss_mb()
        step(batch)
    else:
        _, warm = nequip_functions(atoms[:1], SIZES, parity=True, batch=collate(dataset.graphs[:1], torch.float32))
        warm()
        _, train = nequip_functions(atoms, SIZES, parity=True, batch=batch)
        before = peak_rss_mb()
        train()
    print(f"{peak_rss_mb() - before:.1f}")


def accuracy(args: argparse.Namespace) -> dict:
    data = Path(args.data or "runs/bench/cu800.xyz")
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
    return _result(out, force_mae=metrics["force_mae"], energy_mae=metrics["energy_mae_per_atom"], steps=summary["steps"],
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
    parser.add_argument("mode", nargs="?", default="speed", choices=["speed", "accuracy", "molecules", "train-equiscale", "train-nequip"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-mace", action="store_true")
    parser.add_argument("--seconds", type=float, default=600.0, help="accuracy: training time of each model")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--data", help="speed: time on these structures (default: random molecules); "
                                           "accuracy: the EMT frames (default runs/bench/cu800.xyz)")
    parser.add_argument("--md-steps", type=int, default=200, help="speed with --data: MD steps per calculator")
    parser.add_argument("--compile", action="store_true", help="speed: also time equiscale with compile_inference() "
                                                                "(energy+forces through torch.compile; training stays eager)")
    parser.add_argument("--memory", action="store_true", help="speed: also the peak memory of one training step, "
                                                               "each model in a fresh process")
    parser.add_argument("--peak", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="accuracy: runs/bench/accuracy; molecules: runs/bench/molecules")
    parser.add_argument("--test", help="train-* modes: the test structures")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if args.out is None:
        args.out = {"molecules": "runs/bench/molecules"}.get(args.mode, "runs/bench/accuracy")
    if args.peak:
        return peak(args)
    modes = {"speed": speed, "accuracy": accuracy, "molecules": write_molecules, "train-equiscale": train_equiscale,
             "train-nequip": train_nequip}
    result = modes[args.mode](args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
