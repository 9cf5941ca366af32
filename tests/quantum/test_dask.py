"""The Dask path of `data dft`: labelling on a distributed.LocalCluster gives the in-process labels."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyscf")
distributed = pytest.importorskip("distributed")

from equiscale.quantum.commands import data_dft  # noqa: E402
from equiscale.quantum.data import DFTDataset  # noqa: E402
from equiscale.quantum.settings import DataDFT  # noqa: E402

FAST = dict(basis="sto-3g", xc="hf", frames=3, shard_size=2, polarizability=False, quiet=True)


def test_a_dask_cluster_labels_what_this_process_labels(tmp_path, capsys):
    options = dict(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    with distributed.LocalCluster(**options) as cluster:
        status = data_dft(DataDFT(out=str(tmp_path / "dask.dft"), dask_scheduler=cluster.scheduler_address, **FAST))
    assert status == 0 and "3 labelled now" in capsys.readouterr().out
    assert data_dft(DataDFT(out=str(tmp_path / "local.dft"), workers=1, **FAST)) == 0
    remote, local = DFTDataset(tmp_path / "dask.dft"), DFTDataset(tmp_path / "local.dft")
    assert len(remote) == len(local) == 3
    for i in range(3):
        for key in ("fock", "overlap", "density", "energy", "dipole"):
            np.testing.assert_allclose(remote[i][key], local[i][key], atol=1e-7, err_msg=key)


@pytest.mark.serial
@pytest.mark.slow
def test_local_worker_processes(tmp_path):
    """The default path: a LocalCluster of worker processes started by the command (about 10-15 s here:
    starting the cluster, and each worker importing torch and PySCF)."""
    assert data_dft(DataDFT(out=str(tmp_path / "procs.dft"), workers=2, **FAST)) == 0
    assert len(DFTDataset(tmp_path / "procs.dft")) == 3


def test_an_unreachable_scheduler_gives_one_line(tmp_path):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(ValueError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        data_dft(DataDFT(out=str(tmp_path / "x.dft"), dask_scheduler="tcp://127.0.0.1:9", **FAST))
