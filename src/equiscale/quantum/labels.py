"""PySCF labels of molecular frames, in our irreps AO basis: one frame, and many (in parallel, on Dask).

One frame (:func:`label_frame`): a restricted Kohn-Sham SCF (``xc="hf"``: restricted Hartree-Fock)
gives the total energy (Hartree), the converged Fock/KS matrix ``F``, the overlap ``S`` and the
density matrix (all ``(n, n)``, carried into our basis by :func:`~equiscale.quantum.basis.pyscf_to_irreps`),
the orbital energies ``(n,)`` (Hartree), the dipole moment ``(3,)`` in atomic units (e a0) with the
nuclear part, about the coordinate origin (``mf.dip_moment(unit="AU")``), and the static
polarizability ``(3, 3)`` in atomic units by central finite differences of the dipole in a uniform
electric field: ``alpha[:, j] = (mu(+E e_j) - mu(-E e_j)) / (2 E)`` with ``E = field`` (default
1e-3 a.u.), the field entering the core Hamiltonian as ``h1e + E r_j`` (the electrons' potential
energy in the field; the field SCFs start from the zero-field density). The central difference's
truncation error is O(E^2) (the second hyperpolarizability), about 1e-5 relative for small
molecules at the default; the SCF tolerances add about 1e-5 a.u. (measured: alpha(Rx) = R alpha R^T
to 3e-5 a.u. for water).

Many frames (:func:`label_dataset`): one task per frame (:func:`label_one`, what the Dask workers
run), gathered into shards of consecutive frames (:mod:`equiscale.quantum.data`); SCF failures are
recorded (frame index and reason) and skipped, never stored.
"""
from __future__ import annotations

import os
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from equiscale.quantum.geometry import Frame

__all__ = ["SCFNotConverged", "make_molecule", "check_functional", "make_mf", "label_frame", "label_one",
           "assemble_shard", "frame_tasks", "label_shard", "plan_tasks", "basis_shells", "run_tasks", "label_dataset",
           "FIELDS", "KS_FIELDS"]

FIELDS = ("numbers", "positions", "energy", "fock", "overlap", "density", "orbital_energies", "dipole",
          "polarizability", "frame_index")
"""The arrays of a shard (``polarizability`` only when it was computed)."""

KS_FIELDS = ("energy", "fock", "overlap", "density", "orbital_energies", "dipole", "polarizability")
"""The per-frame labels :func:`label_frame` returns."""


class SCFNotConverged(RuntimeError):
    """The SCF of a frame did not converge (the frame is recorded as failed and skipped)."""


def make_molecule(numbers: Sequence[int], positions: np.ndarray, basis: str, charge: int = 0, spin: int = 0):
    """A built ``pyscf.gto.Mole`` (real spherical AOs, positions in Angstrom).

    Raises:
        ValueError: one line for non-finite positions, an unknown atomic number, an element the
            basis does not have, or an electron count that does not fit ``spin`` (odd, for spin 0).
    """
    from pyscf import gto
    from pyscf.data.elements import ELEMENTS

    positions = np.asarray(positions, dtype=float)
    numbers = [int(z) for z in numbers]
    if positions.shape != (len(numbers), 3):
        raise ValueError(f"positions must have shape ({len(numbers)}, 3), got {positions.shape}")
    if not np.isfinite(positions).all():
        raise ValueError("positions hold NaN or infinite values")
    bad = [z for z in numbers if not 0 < z < len(ELEMENTS)]
    if bad:
        raise ValueError(f"unknown atomic number {bad[0]}")
    electrons = sum(numbers) - charge
    if (electrons - spin) % 2:
        raise ValueError(f"the molecule has {electrons} electrons, which does not fit spin {spin}: restricted "
                         "(closed-shell) SCF needs an even number")
    atoms = [(ELEMENTS[z], tuple(p)) for z, p in zip(numbers, positions)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PySCF's hint to install basis-set-exchange
            return gto.M(atom=atoms, basis=basis, unit="Angstrom", charge=charge, spin=spin, cart=False, verbose=0)
    except Exception as error:  # BasisNotFoundError, KeyError, RuntimeError (electrons vs spin), ...
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "not found" in message.lower() or isinstance(error, KeyError):
            symbols = sorted({ELEMENTS[z] for z in numbers})
            raise ValueError(f"basis {basis!r} does not cover every element of {', '.join(symbols)} "
                             f"(PySCF: {message})") from None
        raise ValueError(f"PySCF cannot build the molecule in basis {basis!r}: {message}") from None


def check_functional(xc: str) -> None:
    """ValueError in one line when PySCF (libxc) does not know the functional ``xc`` (``"hf"`` is known)."""
    from pyscf.dft import libxc

    try:
        libxc.parse_xc(xc)
    except (KeyError, ValueError) as error:
        raise ValueError(f"unknown functional {xc!r} for PySCF/libxc ({str(error).strip()}); e.g. b3lyp, pbe, "
                         "pbe0, wb97x, or hf for Hartree-Fock") from None


def make_mf(mol, xc: str, conv_tol: float = 1e-11, max_cycle: int = 100, conv_tol_grad: float | None = None):
    """The restricted SCF object: ``scf.RHF`` for ``xc="hf"``, else ``dft.RKS`` with that functional.

    ``conv_tol`` bounds the energy change (Hartree) and ``conv_tol_grad`` the orbital gradient
    (default ``sqrt(conv_tol)``, PySCF's choice; the labels pass a tighter one, since the error of
    ``F`` and of the dipole follows the gradient, not the energy).
    """
    from pyscf import dft, scf

    if mol.spin != 0:
        raise ValueError(f"restricted SCF needs a closed shell; this molecule has {mol.nelectron} electrons")
    mf = scf.RHF(mol) if xc.lower() == "hf" else dft.RKS(mol, xc=xc)
    mf.conv_tol = conv_tol
    mf.conv_tol_grad = conv_tol_grad
    mf.max_cycle = max_cycle
    mf.verbose = 0
    return mf


def _field_dipoles(mf, dm0: np.ndarray, field: float) -> np.ndarray:
    """``(3, 3)``: column j is ``(mu(+E e_j) - mu(-E e_j)) / (2E)``."""
    mol = mf.mol
    hcore = mf.get_hcore()
    with mol.with_common_orig((0.0, 0.0, 0.0)):
        r = mol.intor_symmetric("int1e_r", comp=3)
    alpha = np.zeros((3, 3))
    for j in range(3):
        dipoles = []
        for sign in (1.0, -1.0):
            mf_e = mf.copy()  # shallow: shares the built DFT grids
            h1 = hcore + sign * field * r[j]
            mf_e.get_hcore = lambda *args, h1=h1: h1
            mf_e.kernel(dm0=dm0)
            if not mf_e.converged:
                raise SCFNotConverged(f"the SCF in a field along {'xyz'[j]} did not converge in {mf.max_cycle} cycles")
            dipoles.append(mf_e.dip_moment(unit="AU", verbose=0))
        alpha[:, j] = (dipoles[0] - dipoles[1]) / (2 * field)
    return alpha


def label_frame(numbers: Sequence[int], positions: np.ndarray, basis: str, xc: str = "b3lyp", *,
                conv_tol: float = 1e-11, conv_tol_grad: float = 1e-7, max_cycle: int = 100, field: float = 1e-3,
                polarizability: bool = True, blocks: Mapping[int, np.ndarray] | None = None
                ) -> dict[str, np.ndarray | float]:
    """The DFT labels of one frame, matrices in our irreps basis.

    Args:
        numbers: atomic numbers ``(A,)``.
        positions: ``(A, 3)`` in Angstrom.
        basis: a PySCF basis name (``"def2-svp"``, ``"sto-3g"``, ...).
        xc: the functional (``"hf"``: Hartree-Fock).
        conv_tol: the SCF energy tolerance (Hartree); ``conv_tol_grad`` the orbital-gradient
            tolerance (bounds the error of ``F``, ``density`` and ``dipole``); ``max_cycle`` the
            iteration limit.
        field: the finite-difference field strength (a.u.) of the polarizability.
        polarizability: compute it (six more SCFs per frame) or leave it out.
        blocks: precomputed ``{l: shell_transform(l)}`` (see :func:`~equiscale.quantum.basis.ao_transform`).

    Returns:
        ``energy`` (float, Hartree), ``fock``/``overlap``/``density`` ``(n, n)``,
        ``orbital_energies`` ``(n,)`` (Hartree), ``dipole`` ``(3,)`` and ``polarizability``
        ``(3, 3)`` in atomic units.

    Raises:
        SCFNotConverged: the SCF (or a field SCF) did not converge.
        ValueError: bad input (see :func:`make_molecule`).
    """
    from equiscale.quantum.basis import ao_transform

    mol = make_molecule(numbers, positions, basis)
    P = ao_transform(mol, blocks)
    mf = make_mf(mol, xc, conv_tol, max_cycle, conv_tol_grad)
    mf.kernel()
    if not mf.converged:
        raise SCFNotConverged(f"the SCF did not converge in {max_cycle} cycles")
    dm = mf.make_rdm1()
    labels: dict[str, Any] = {
        "energy": float(mf.e_tot),
        "fock": P @ mf.get_fock(dm=dm) @ P.T,
        "overlap": P @ mf.get_ovlp() @ P.T,
        "density": P @ dm @ P.T,
        "orbital_energies": np.asarray(mf.mo_energy, dtype=float),
        "dipole": np.asarray(mf.dip_moment(unit="AU", verbose=0), dtype=float),
    }
    if polarizability:
        labels["polarizability"] = _field_dipoles(mf, dm, field)
    return labels


def label_one(task: Mapping[str, Any]) -> dict[str, Any]:
    """Label one frame; what the Dask workers run (one OpenMP/BLAS thread: a process per core is the parallelism).

    Args:
        task: ``shard``, ``frame_index``, ``numbers`` ``(A,)``, ``positions`` ``(A, 3)``, and the
            options ``basis``, ``xc``, ``conv_tol``, ``conv_tol_grad``, ``max_cycle``, ``field``,
            ``polarizability`` and ``blocks`` of :func:`label_frame`.

    Returns:
        ``shard``, ``frame_index``, ``positions``, and ``labels`` (of :func:`label_frame`), or
        ``labels=None`` and ``error`` (the reason) when the SCF did not converge.
    """
    os.environ["OMP_NUM_THREADS"] = "1"
    from pyscf import lib

    lib.num_threads(1)
    options = {k: task[k] for k in ("conv_tol", "conv_tol_grad", "max_cycle", "field", "polarizability")}
    result = {"shard": int(task["shard"]), "frame_index": int(task["frame_index"]),
              "positions": np.asarray(task["positions"], dtype=float), "labels": None, "error": None}
    try:
        result["labels"] = label_frame(task["numbers"], task["positions"], task["basis"], task["xc"],
                                       blocks=task.get("blocks"), **options)
    except SCFNotConverged as error:
        result["error"] = str(error)
    return result


def assemble_shard(numbers: Sequence[int], results: Sequence[Mapping[str, Any]],
                   polarizability: bool) -> tuple[dict[str, np.ndarray], list[list]]:
    """A shard's arrays (:data:`FIELDS`, frames in index order) from :func:`label_one` results, and
    its failures ``[[frame_index, reason], ...]``."""
    results = sorted(results, key=lambda r: r["frame_index"])
    rows = [r for r in results if r["labels"] is not None]
    failed = [[r["frame_index"], r["error"]] for r in results if r["labels"] is None]
    numbers = np.asarray(numbers, dtype=np.int64)
    n = rows[0]["labels"]["fock"].shape[0] if rows else 0
    arrays: dict[str, np.ndarray] = {
        "numbers": numbers,
        "positions": np.array([r["positions"] for r in rows], dtype=float).reshape(len(rows), len(numbers), 3),
        "frame_index": np.array([r["frame_index"] for r in rows], dtype=np.int64),
    }
    shapes = {"energy": (), "fock": (n, n), "overlap": (n, n), "density": (n, n), "orbital_energies": (n,),
              "dipole": (3,), "polarizability": (3, 3)}
    for key in KS_FIELDS:
        if key != "polarizability" or polarizability:
            arrays[key] = np.array([r["labels"][key] for r in rows], dtype=float).reshape((len(rows), *shapes[key]))
    return arrays, failed


def frame_tasks(frames: Sequence[Frame], plan: Sequence[Sequence[int]], shards: Sequence[int],
                options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The :func:`label_one` tasks of the frames of ``shards`` (indices into ``plan``)."""
    return [{"shard": i, "frame_index": k, "numbers": frames[k].numbers, "positions": frames[k].positions, **options}
            for i in shards for k in plan[i]]


def label_shard(task: Mapping[str, Any]) -> dict[str, Any]:
    """Label the frames of one shard in this process.

    Args:
        task: ``shard``, ``numbers`` ``(A,)``, ``positions`` ``(K, A, 3)``, ``frame_index`` ``(K,)`` and
            the options of :func:`label_one`.

    Returns:
        ``shard``, ``arrays`` (over the frames that converged, see :data:`FIELDS`) and ``failed``
        (``[frame_index, reason]`` of the others).
    """
    results = [label_one({**task, "frame_index": k, "positions": p})
               for k, p in zip(task["frame_index"], task["positions"])]
    arrays, failed = assemble_shard(task["numbers"], results, task["polarizability"])
    return {"shard": int(task["shard"]), "arrays": arrays, "failed": failed}


# --- many frames: tasks, resume, Dask ------------------------------------------------------------------------
def plan_tasks(frames: Sequence[Frame], shard_size: int) -> list[list[int]]:
    """The frame indices of each shard: runs of at most ``shard_size`` consecutive frames of one
    molecule (a new shard starts where the atomic numbers change)."""
    plan: list[list[int]] = []
    for k, frame in enumerate(frames):
        if (not plan or len(plan[-1]) >= shard_size
                or not np.array_equal(frames[plan[-1][0]].numbers, frame.numbers)):
            plan.append([])
        plan[-1].append(k)
    return plan


def basis_shells(frames: Sequence[Frame], basis: str) -> dict[int, list[int]]:
    """The shells of every element in ``frames`` (one PySCF build per distinct molecule), checking
    on the way what would fail later in a worker: positions, elements, electron counts."""
    from equiscale.quantum.basis import shells_of

    shells: dict[int, list[int]] = {}
    seen: set[tuple[int, ...]] = set()
    for k, frame in enumerate(frames):
        if not np.isfinite(frame.positions).all():
            raise ValueError(f"frame {k} has NaN or infinite positions")
        key = tuple(int(z) for z in frame.numbers)
        if key in seen:
            continue
        seen.add(key)
        try:
            mol = make_molecule(frame.numbers, frame.positions, basis)
        except ValueError as error:
            raise ValueError(f"frame {k}: {error}") from None
        for z, ls in shells_of(mol).items():
            if shells.setdefault(z, ls) != ls:
                raise ValueError(f"element Z={z} has different shells in different molecules of basis {basis!r}")
    return shells


def run_tasks(tasks: list[dict[str, Any]], workers: int, scheduler: str | None,
              on_result: Callable[[dict[str, Any]], None]) -> None:
    """Run :func:`label_one` on every task, calling ``on_result`` with each result as it arrives.

    In this process when ``workers == 1`` and there is no scheduler; else on Dask: the scheduler at
    ``scheduler``, or a ``LocalCluster`` of ``workers`` single-threaded worker processes.
    """
    if not tasks:
        return
    if scheduler is None and workers == 1:
        for task in tasks:
            on_result(label_one(task))
        return
    import logging

    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        cluster = LocalCluster(n_workers=min(workers, len(tasks)), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    try:
        client = Client(cluster if cluster is not None else scheduler)  # timeout: distributed.comm.timeouts.connect
    except OSError as error:
        if cluster is not None:
            cluster.close()
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    try:
        for future in as_completed(client.map(label_one, tasks, pure=False)):
            on_result(future.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def label_dataset(out: str | os.PathLike, frames: Sequence[Frame], info: Mapping[str, Any], *, basis: str, xc: str,
                  shard_size: int = 10, workers: int = 1, scheduler: str | None = None, conv_tol: float = 1e-11,
                  conv_tol_grad: float = 1e-7, max_cycle: int = 100, field: float = 1e-3,
                  polarizability: bool = True, progress: bool = True, say=print) -> dict[str, Any]:
    """Label ``frames`` into the dataset directory ``out``, computing only the shards it lacks.

    Every frame is one task (fine-grained progress and load balance); a shard is written, whole and
    atomically, as soon as all of its frames are back.

    Args:
        out: the dataset directory (created; see :mod:`equiscale.quantum.data`).
        frames: every frame of the run, in order.
        info: manifest entries: ``molecule``, ``seed``, ``displacements``, ... and ``settings``
            (what a resumed run must match; a directory written with other settings is refused).
        basis, xc, conv_tol, conv_tol_grad, max_cycle, field, polarizability: see :func:`label_frame`.
        shard_size: frames per shard.
        workers, scheduler: see :func:`run_tasks`.
        progress: a progress bar (frames/s); ``say`` prints the notes.

    Returns:
        ``frames`` (stored), ``failed``, ``computed`` (frames labelled now), ``seconds``, ``path``.
    """
    from equiscale.quantum.basis import shell_transform
    from equiscale.quantum.data import ShardWriter

    check_functional(xc)
    shells = basis_shells(frames, basis)
    plan = plan_tasks(frames, shard_size)
    writer = ShardWriter(out, info, shells, plan, say=say)
    blocks = {l: np.array(shell_transform(l)) for l in sorted({l for ls in shells.values() for l in ls})}
    options = {"basis": basis, "xc": xc, "conv_tol": conv_tol, "conv_tol_grad": conv_tol_grad,
               "max_cycle": max_cycle, "field": field, "polarizability": polarizability, "blocks": blocks}
    tasks = frame_tasks(frames, plan, writer.missing, options)
    bar = None
    if progress and tasks:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), unit="frame", desc=f"{xc}/{basis}", smoothing=0.1)
    pending: dict[int, list[dict[str, Any]]] = {i: [] for i in writer.missing}
    failed = 0
    start = time.perf_counter()

    def on_result(result: dict[str, Any]) -> None:
        nonlocal failed
        index = result["shard"]
        pending[index].append(result)
        failed += result["labels"] is None
        if len(pending[index]) == len(plan[index]):
            arrays, failures = assemble_shard(frames[plan[index][0]].numbers, pending.pop(index), polarizability)
            writer.write(index, arrays, failures)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=failed, refresh=False)

    try:
        run_tasks(tasks, workers, scheduler, on_result)
    finally:
        if bar is not None:
            bar.close()
    return {**writer.counts(), "computed": len(tasks), "seconds": time.perf_counter() - start, "path": str(out)}
