"""The compiled-kernel mechanism: build/load once, the EQUISCALE_KERNELS switch, the fallback warning."""
import warnings

import pytest
import torch

from equiscale import _kernels
from equiscale._kernels import _build


def _have_toolchain() -> bool:
    import os
    import shutil

    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")
    return shutil.which(compiler) is not None and cpp_extension.is_ninja_available()


@pytest.mark.skipif(not _have_toolchain(), reason="no C++ compiler or ninja: the fallback tests cover this")
def test_loads_here():
    """With a compiler and ninja (standard on Linux) the kernels must build and load."""
    assert _kernels.load(), _kernels._STATE.reason
    assert _kernels.available()
    assert hasattr(torch.ops.equiscale, "spherical_harmonics")


def test_use_kernels_needs_cpu_tensors():
    if not _kernels.load():
        pytest.skip("kernels unavailable")
    assert _kernels.use_kernels(torch.zeros(2), torch.zeros(3, dtype=torch.float64))
    assert not _kernels.use_kernels(torch.zeros(2), torch.zeros(2, device="meta"))


@pytest.mark.parametrize("value", ["off", "OFF", "0"])
def test_env_switch_forces_fallback_without_warning(monkeypatch, value):
    monkeypatch.setenv("EQUISCALE_KERNELS", value)
    monkeypatch.setattr(_kernels._STATE, "loaded", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not _kernels.load()
        assert not _kernels.available()
        assert not _kernels.use_kernels(torch.zeros(2))
    assert _kernels._STATE.loaded is None  # nothing was attempted


def test_failed_build_warns_once_and_falls_back(monkeypatch):
    def no_compiler(verbose: bool = False) -> None:
        raise RuntimeError("g++ not found")

    monkeypatch.delenv("EQUISCALE_KERNELS", raising=False)
    monkeypatch.setattr(_build, "build", no_compiler)
    monkeypatch.setattr(_kernels._STATE, "loaded", None)
    monkeypatch.setattr(_kernels._STATE, "reason", "")
    with pytest.warns(RuntimeWarning) as record:
        assert not _kernels.load()
        assert not _kernels.available()
        assert not _kernels.use_kernels(torch.zeros(2))
    assert len(record) == 1
    message = str(record[0].message)
    assert message == ("equiscale: compiled kernels unavailable (RuntimeError: g++ not found); "
                       "using the PyTorch path")
    assert "\n" not in message


def test_sources_and_cache_directory(monkeypatch, tmp_path):
    assert any(s.endswith("spherical_harmonics.cpp") for s in _build.sources())
    monkeypatch.setenv("EQUISCALE_KERNELS_CACHE", str(tmp_path))
    assert _build.build_directory() == tmp_path
    monkeypatch.delenv("EQUISCALE_KERNELS_CACHE")
    assert torch.__version__ in str(_build.build_directory())


def test_failed_build_runs_the_torch_path_with_equal_results(monkeypatch):
    if not _kernels.load():
        pytest.skip("kernels unavailable")
    from equiscale.o3 import FullyConnectedTensorProduct, spherical_harmonics

    x = torch.randn(20, 3, dtype=torch.float64)
    tp = FullyConnectedTensorProduct("3x0e+2x1o", "0e+1o", "2x0e+2x1o").double()
    f = torch.randn(20, tp.irreps_in1.dim, dtype=torch.float64)
    with_kernels = (spherical_harmonics(3, x, True), tp(f, x[:, [0, 0, 1, 2]]))

    def no_compiler(verbose: bool = False) -> None:
        raise OSError("no C++ compiler")

    monkeypatch.delenv("EQUISCALE_KERNELS", raising=False)
    monkeypatch.setattr(_build, "build", no_compiler)
    monkeypatch.setattr(_kernels._STATE, "loaded", None)
    with pytest.warns(RuntimeWarning, match="compiled kernels unavailable"):
        fallback = (spherical_harmonics(3, x, True), tp(f, x[:, [0, 0, 1, 2]]))
    for a, b in zip(with_kernels, fallback):
        assert (a - b).abs().max().item() <= 1e-12


def test_a_build_killed_midway_does_not_block_the_next(tmp_path):
    """torch's ``lock`` file left by a killed build is removed once the build lock is held."""
    import subprocess
    import sys

    (tmp_path / "lock").write_text("")  # what a build killed inside torch's builder leaves
    with _build.exclusive_build(tmp_path):
        assert not (tmp_path / "lock").exists()
    # a holder that dies without unlocking: the operating system frees the lock with the process
    holder = ("import fcntl, os, sys; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
              "open(sys.argv[1] + '.held', 'w').close(); os._exit(9)")
    assert subprocess.run([sys.executable, "-c", holder, str(tmp_path / "build.lock")]).returncode == 9
    assert (tmp_path / "build.lock.held").exists()
    (tmp_path / "lock").write_text("")
    with _build.exclusive_build(tmp_path):
        assert not (tmp_path / "lock").exists()
