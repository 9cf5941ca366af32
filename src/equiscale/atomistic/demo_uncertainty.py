"""The uncertainty section of ``equiscale demo``: a committee of copper potentials, its calibration
and an out-of-distribution row (declared in :mod:`equiscale.atomistic.app` as its own application,
``uncertainty``, since an application declares one demo section).

Trains a committee (``--ensemble``, :mod:`equiscale.uncertainty`) on EMT copper at 800 K, fits the
spread's scale factor on held-out frames, and evaluates it there and on frames at 1600 K
(:func:`equiscale.atomistic.evaluate.evaluate_committee`): the error and the calibrated spread
should both grow under the shift, and the spread should rank the errors (Spearman).
"""
from __future__ import annotations

import contextlib
import io
import shutil
from dataclasses import dataclass

from equiscale.demo.context import DemoContext, SectionResult, SummaryRow
from equiscale.demo.progress import timed_bar

__all__ = ["UncertaintySettings", "FULL", "QUICK", "section_uncertainty"]


@dataclass(frozen=True)
class UncertaintySettings:
    """Sizes and budgets of the uncertainty section."""

    train_frames: int
    test_frames: int
    members: int
    seconds_per_member: float
    shifts: tuple[str, ...]
    shift_frames: int
    channels: int = 8
    lmax: int = 1
    layers: int = 1
    cutoff: float = 4.0


FULL = UncertaintySettings(train_frames=40, test_frames=10, members=4, seconds_per_member=30.0, shifts=("hot", "strain"),
                           shift_frames=8, channels=16, lmax=2, layers=2)
QUICK = UncertaintySettings(train_frames=8, test_frames=4, members=3, seconds_per_member=2.0, shifts=("hot",),
                            shift_frames=3, channels=4)


def section_uncertainty(ctx: DemoContext) -> SectionResult:
    """A committee on EMT copper: calibration plot, error and spread in and out of distribution."""
    from equiscale.atomistic import emt_frames, write_structures
    from equiscale.atomistic.evaluate import committee_table, evaluate_committee, shift_plot
    from equiscale.atomistic.settings import TrainSettings
    from equiscale.uncertainty.calibration import calibration_plot
    from equiscale.uncertainty.committee import train_committee

    s = QUICK if ctx.quick else FULL
    folder = ctx.folder("uncertainty")
    ctx.log(f"EMT Cu at 800 K: {s.train_frames} training and {s.test_frames} held-out frames; a committee of {s.members}")
    train, test = folder / "train.xyz", folder / "test.xyz"
    write_structures(train, emt_frames("Cu", 2, s.train_frames, 800.0, interval=5, seed=ctx.seed))
    write_structures(test, emt_frames("Cu", 2, s.test_frames, 800.0, interval=5, seed=ctx.seed + 1000))
    run = folder / "committee"
    shutil.rmtree(run, ignore_errors=True)
    settings = TrainSettings(data=str(train), out=str(run), ensemble=s.members, max_time=s.seconds_per_member,
                             clock="process", patience=None, batch_size=2, lr=1e-2, seed=ctx.seed, progress=False,
                             device="cpu", lmax=s.lmax, channels=s.channels, layers=s.layers, cutoff=s.cutoff,
                             radial_hidden=16, readout_hidden=8, num_radial_basis=6, threads=1)
    with timed_bar(s.members * s.seconds_per_member, "training the committee", ctx.progress), \
            contextlib.redirect_stdout(io.StringIO()):
        train_committee("equiscale.atomistic.commands:train_potential", settings, processes=1)
    report = evaluate_committee(run, test, shifts=s.shifts, frames=s.shift_frames, seed=ctx.seed)
    calibration_png, shifts_png = folder / "calibration.png", folder / "shifts.png"
    calibration_plot({row["name"]: row["metrics"]["force_calibration"] for row in report["rows"]}, calibration_png,
                     unit="meV/A", title="forces, binned by committee spread")
    shift_plot(report, shifts_png)
    inside, shifted = report["rows"][0]["metrics"], report["rows"][1]
    text = [
        f"A committee of {s.members} potentials (`equiscale train potential --ensemble {s.members}`: seeds "
        f"{ctx.seed}..{ctx.seed + s.members - 1}, each its own data order; lmax {s.lmax}, {s.channels} channels, "
        f"{s.seconds_per_member:g} CPU-s each) on {s.train_frames} frames of EMT copper at 800 K. Its prediction is "
        f"the members' mean, its uncertainty their spread; one scale factor, fitted on the {s.test_frames} held-out "
        f"frames by maximum likelihood of a Gaussian, turns the force spread into an error estimate "
        f"(x{report['force_scale']:.3g}). Then the same committee meets data it was not trained on:",
        committee_table(report),
        ctx.image(calibration_png, "expected against observed force error, in bins of predicted spread"),
        ctx.image(shifts_png, "force error and calibrated spread against the shift"),
        f"The run is `{ctx.relative(run)}/` (`committee.json`, `member-K/`): `equiscale.atomistic.Calculator` loads "
        "it and returns `energy_std` and `forces_std` beside the energy and forces.",
    ]
    summary = [
        SummaryRow("uncertainty", f"committee of {s.members}, held-out frames",
                   f"force MAE {inside['force_mae']:.0f} meV/A, spread x{report['force_scale']:.2g}, "
                   f"Spearman {inside['force_spearman']:.2f}"),
        SummaryRow("uncertainty", shifted["name"],
                   f"force RMSE {shifted['metrics']['force_rmse']:.0f} meV/A (held out {inside['force_rmse']:.0f}), "
                   f"calibrated spread {shifted['metrics']['force_sigma_rms']:.0f} (held out {inside['force_sigma_rms']:.0f})"),
    ]
    numbers = {"force_scale": report["force_scale"], "force_spearman": inside["force_spearman"],
               "force_rmse": inside["force_rmse"], "force_sigma_rms": inside["force_sigma_rms"],
               "shifted_force_rmse": shifted["metrics"]["force_rmse"],
               "shifted_force_sigma_rms": shifted["metrics"]["force_sigma_rms"]}
    return SectionResult("Uncertainty: a committee of potentials, calibrated and shifted", "\n\n".join(text),
                         figures=[calibration_png, shifts_png], summary=summary, metrics=numbers)
