"""The quantum scale: DFT labels from PySCF (Dask for many frames) in our irreps AO basis, equivariant
Hamiltonian models, and SCF from predicted Hamiltonians.

Matrices are in Hartree (PySCF's atomic units), positions in Angstrom, dipoles and polarizabilities in
atomic units; AO matrices are stored and predicted in our irreps basis, and
:func:`pyscf_to_irreps` is the one place that knows PySCF's AO order. Every name below is imported
on first use, so that importing the package (and the command line's application declaration)
imports no torch and no PySCF.
"""
from equiscale._lazy import lazy_attributes

__all__ = [
    "shells_of",
    "atom_irreps",
    "molecule_irreps",
    "orbital_count",
    "pyscf_to_irreps",
    "label_frame",
    "label_dataset",
    "SCFNotConverged",
    "DFTDataset",
    "displaced_frames",
    "read_frames",
    "scf_from_fock",
    "scf_from_minao",
    "SCFRun",
    "DataDFT",
    "HamiltonianModel",
    "BaselineHamiltonian",
    "train_hamiltonian",
    "load_hamiltonian",
]

_LAZY = {
    "shells_of": "equiscale.quantum.basis",
    "atom_irreps": "equiscale.quantum.basis",
    "molecule_irreps": "equiscale.quantum.basis",
    "orbital_count": "equiscale.quantum.basis",
    "pyscf_to_irreps": "equiscale.quantum.basis",
    "label_frame": "equiscale.quantum.labels",
    "label_dataset": "equiscale.quantum.labels",
    "SCFNotConverged": "equiscale.quantum.labels",
    "DFTDataset": "equiscale.quantum.data",
    "displaced_frames": "equiscale.quantum.geometry",
    "read_frames": "equiscale.quantum.geometry",
    "scf_from_fock": "equiscale.quantum.scf",
    "scf_from_minao": "equiscale.quantum.scf",
    "SCFRun": "equiscale.quantum.scf",
    "DataDFT": "equiscale.quantum.settings",
    "HamiltonianModel": "equiscale.quantum.model",
    "BaselineHamiltonian": "equiscale.quantum.baseline",
    "train_hamiltonian": "equiscale.quantum.training",
    "load_hamiltonian": "equiscale.quantum.training",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
