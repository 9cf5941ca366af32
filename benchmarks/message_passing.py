"""Benchmark: the equivariant message-passing block against the same block built from e3nn 0.6.

Graph: 32 molecules of 20 atoms, each drawn uniformly in a 4 A box, boxes 100 A apart (640 atoms);
the cutoff is chosen so that the radius graph has about 9,000 edges. Features 32x0e+32x1o+32x2e in
and out, spherical harmonics 0e+1o+2e, 8 Bessel functions, radial MLP 8 -> 64 -> 64 -> weights.

Versions run interleaved in one process on the same inputs, with the same weights:
  ours/fused  equiscale MessagePassing, the compiled gather -> TP -> scatter kernel (the default),
  ours/torch  the same fused step in plain torch (the fallback without a compiler),
  ours/tp     the same block through o3.TensorProduct on per-edge tensors (fused=False),
  e3nn        spherical_harmonics, TensorProduct (uvu), FullyConnectedNet and Linear from e3nn.
Timed: the forward pass (no grad) and forward + backward (gradients of sum(out^2) with respect
to features, positions and all parameters), median wall-clock time over rounds. Then the `uvu`
product alone (gather -> TP -> scatter on given harmonics and weights, gradients to features,
harmonics and weights): the compiled kernel against e3nn's TensorProduct + index_add.

``--memory`` also runs one forward + backward of each block in a fresh process and prints the
growth of its peak resident memory (VmHWM) over the inputs: the training-step memory.

    python benchmarks/message_passing.py [--repeats 15] [--threads N] [--memory]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from _common import peak_rss_mb

from equiscale import o3
from equiscale.nn.points import MessagePassing, radius_graph

IRREPS, SH, NUM_BASIS, HIDDEN = "32x0e+32x1o+32x2e", "0e+1o+2e", 8, (64, 64)


def make_graph(target_edges: int = 9000, molecules: int = 32, atoms: int = 20, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    pos = torch.rand(molecules, atoms, 3, generator=generator) * 4.0
    pos = pos + torch.arange(molecules).view(-1, 1, 1) * torch.tensor([100.0, 0.0, 0.0])
    distances = torch.cdist(pos, pos)  # (molecules, atoms, atoms)
    off_diagonal = distances[:, ~torch.eye(atoms, dtype=torch.bool)].flatten().sort().values
    cutoff = float(off_diagonal[target_edges - 1] + off_diagonal[target_edges]) / 2
    pos = pos.reshape(-1, 3)
    batch = torch.arange(molecules).repeat_interleave(atoms)
    return pos, radius_graph(pos, cutoff, batch=batch), cutoff


class E3nnBlock(torch.nn.Module):
    """The same block from e3nn modules (Bessel basis and envelope written out), weights copied."""

    def __init__(self, ours: MessagePassing) -> None:
        super().__init__()
        from e3nn import nn as e3nn_nn
        from e3nn import o3 as e3nn_o3

        self.o3 = e3nn_o3
        self.sh = str(ours.irreps_edge_attr)
        self.cutoff, self.p, self.avg = ours.radial_basis.cutoff, ours.envelope.p, ours.avg_num_neighbors
        self.frequencies = torch.nn.Parameter(ours.radial_basis.frequencies.detach().clone())
        self.tp = e3nn_o3.TensorProduct(IRREPS, self.sh, str(ours.irreps_mid), ours.instructions, shared_weights=False, internal_weights=False)
        self.fc = e3nn_nn.FullyConnectedNet(ours.radial_mlp.sizes, torch.nn.functional.silu)
        self.linear = e3nn_o3.Linear(str(ours.irreps_mid.simplify()), IRREPS)
        with torch.no_grad():
            for i, weight in enumerate(ours.radial_mlp.weights):
                getattr(self.fc, f"layer{i}").weight.copy_(weight)
            self.linear.weight.copy_(ours.linear.weight)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        source, target = edge_index
        vec = pos[source] - pos[target]
        r = vec.norm(dim=-1)
        sh = self.o3.spherical_harmonics(self.sh, vec, True, normalization="component")
        basis = 2.0 / self.cutoff * torch.sin(self.frequencies * r[:, None] / self.cutoff) / r[:, None]
        u, p = r / self.cutoff, self.p
        envelope = (1 - (p + 1) * (p + 2) / 2 * u**p + p * (p + 2) * u ** (p + 1) - p * (p + 1) / 2 * u ** (p + 2)) * (u < 1)
        messages = self.tp(x[source], sh, self.fc(basis * envelope[:, None]))
        summed = torch.zeros(x.shape[0], messages.shape[1], dtype=x.dtype).index_add(0, target, messages)
        return self.linear(summed / math.sqrt(self.avg))


def floor(block: MessagePassing, num_nodes: int, num_edges: int) -> tuple[float, float]:
    """(GFLOP, MB) of one forward pass: radial MLP + sparse CG contraction + Linear, and the tensors
    any implementation must read or write (features in and out, edge list, per-edge weights)."""
    sizes = block.radial_mlp.sizes
    mlp = 2 * num_edges * sum(a * b for a, b in zip(sizes, sizes[1:]))
    tp = 0
    for i1, i2, i_out, *_ in block.instructions:
        (mul, ir1), (_, ir2), (_, ir3) = block.irreps_node_in[i1], block.irreps_edge_attr[i2], block.irreps_mid[i_out]
        nonzero = int((o3.wigner_3j(ir1.l, ir2.l, ir3.l).abs() > 1e-9).sum())
        tp += 2 * num_edges * mul * (nonzero + ir3.dim)  # sparse CG contraction, then the weight
    linear = 2 * num_nodes * sum(mul_in * mul_out * ir.dim for mul_in, ir in block.irreps_mid.simplify() for mul_out, ir_o in block.irreps_node_out if ir_o == ir)
    moved = 4 * (2 * num_nodes * block.irreps_node_in.dim + num_edges * (2 + 2 * block.tp.weight_numel))  # x, out, edges, w (write + read)
    return (mlp + tp + linear) / 1e9, moved / 1e6


def product_floor(block: MessagePassing, num_nodes: int, num_edges: int) -> tuple[float, float]:
    """(GFLOP, MB) of the `uvu` product forward alone: the dense per-edge work of the kernel
    (coupling M = C.Y, M @ x per channel, the weight) and the bytes it must read and write."""
    flop = 0
    for i1, i2, i_out, *_ in block.instructions:
        (mul, ir1), (_, ir3) = block.irreps_node_in[i1], block.irreps_mid[i_out]
        flop += 2 * num_edges * mul * (ir1.dim * ir3.dim + ir3.dim)
    moved = 4 * (num_nodes * (block.irreps_node_in.dim + block.irreps_mid.dim)
                 + num_edges * (2 + block.irreps_edge_attr.dim + block.weight_numel))
    return flop / 1e9, moved / 1e6


def time_it(fn) -> tuple[float, float]:
    """(wall-clock ms, CPU ms of this process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="rounds; each times every version once")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--memory", action="store_true", help="also measure the training-step memory of each version")
    parser.add_argument("--peak", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak:
        return peak(args.peak)

    pos, edge_index, cutoff = make_graph()
    num_nodes, num_edges = pos.shape[0], edge_index.shape[1]
    torch.manual_seed(0)
    ours = MessagePassing(IRREPS, IRREPS, SH, num_radial_basis=NUM_BASIS, radial_hidden=HIDDEN,
                          avg_num_neighbors=num_edges / num_nodes, cutoff=cutoff)
    theirs = E3nnBlock(ours)
    x = torch.randn(num_nodes, ours.irreps_node_in.dim)
    print(f"graph: {num_nodes} atoms, {num_edges} edges (cutoff {cutoff:.3f} A, {num_edges / num_nodes:.1f} neighbours),"
          f" {torch.get_num_threads()} threads, float32")

    def run(model, fused=None):
        def call():
            if fused is not None:
                model.fused = fused
            return model(x, pos, edge_index)
        return call

    def use_torch(compiled):
        ours.kernel.compiled = compiled

    versions = {"ours/fused": run(ours, True), "ours/torch": run(ours, True), "ours/tp": run(ours, False), "e3nn": run(theirs)}
    switch = {"ours/fused": lambda: use_torch(True), "ours/torch": lambda: use_torch(False)}
    with torch.no_grad():
        reference = versions["e3nn"]()
        for name, call in versions.items():
            switch.get(name, lambda: None)()
            error = float((call() - reference).abs().max() / reference.abs().max())
            print(f"  {name:11s} max |out - e3nn| / max |e3nn| = {error:.1e}")

    xg, pg = x.clone().requires_grad_(True), pos.clone().requires_grad_(True)

    def train_step(model, fused=None):
        def step():
            if fused is not None:
                model.fused = fused
            model(xg, pg, edge_index).pow(2).sum().backward()
        return step

    steps = {"ours/fused": train_step(ours, True), "ours/torch": train_step(ours, True), "ours/tp": train_step(ours, False),
             "e3nn": train_step(theirs)}
    forward = {name: [] for name in versions}
    backward = {name: [] for name in versions}
    for _ in range(2):  # warm up
        for name in versions:
            switch.get(name, lambda: None)()
            with torch.no_grad():
                versions[name]()
            steps[name]()
    for _ in range(args.repeats):
        for name in versions:
            switch.get(name, lambda: None)()
            with torch.no_grad():
                forward[name].append(time_it(versions[name]))
            backward[name].append(time_it(steps[name]))
    gflop, megabytes = floor(ours, num_nodes, num_edges)
    print(f"forward floor: {gflop:.2f} GFLOP, {megabytes:.0f} MB of unavoidable traffic")
    print("median over rounds; wall-clock, then CPU time of the process (steadier on a shared machine)")
    print(f"{'version':12s} {'fwd ms':>8s} {'f+b ms':>8s} {'fwd cpu':>8s} {'f+b cpu':>8s}   ratios e3nn/version (wall fwd, f+b; cpu fwd, f+b)")
    base = [statistics.median(t[k] for t in table["e3nn"]) for table in (forward, backward) for k in (0, 1)]
    for name in versions:
        f_wall, f_cpu = (statistics.median(t[k] for t in forward[name]) for k in (0, 1))
        b_wall, b_cpu = (statistics.median(t[k] for t in backward[name]) for k in (0, 1))
        ratios = (base[0] / f_wall, base[2] / b_wall, base[1] / f_cpu, base[3] / b_cpu)
        print(f"{name:12s} {f_wall:8.1f} {b_wall:8.1f} {f_cpu:8.1f} {b_cpu:8.1f}   " + "  ".join(f"{r:5.2f}x" for r in ratios))
    use_torch(True)
    product(ours, theirs, x, pos, edge_index, args.repeats)
    if args.memory:
        memory()


def product(ours: MessagePassing, theirs: "E3nnBlock", x: torch.Tensor, pos: torch.Tensor, edge_index: torch.Tensor, repeats: int) -> None:
    """The `uvu` product alone: compiled kernel vs e3nn TensorProduct + index_add, same inputs."""
    num_nodes, num_edges = x.shape[0], edge_index.shape[1]
    vectors = pos[edge_index[0]] - pos[edge_index[1]]
    sh = o3.spherical_harmonics(ours.irreps_edge_attr, vectors, True, normalization="component")
    with torch.no_grad():
        weights = ours.edge_weights(vectors.norm(dim=-1))
    inputs = [t.clone().requires_grad_(True) for t in (x, sh, weights)]
    source, target = edge_index

    def kernel(a, b, c):
        return ours.kernel(a, b, c, edge_index, num_nodes)

    def e3nn(a, b, c):
        messages = theirs.tp(a[source], b, c)
        return torch.zeros(num_nodes, messages.shape[1], dtype=a.dtype).index_add(0, target, messages)

    contenders = {"kernel": kernel, "e3nn": e3nn}
    with torch.no_grad():
        error = float((kernel(*inputs) - e3nn(*inputs)).abs().max() / e3nn(*inputs).abs().max())
    times = {name: ([], []) for name in contenders}
    for round_ in range(repeats + 2):
        for name, fn in contenders.items():
            with torch.no_grad():
                forward = time_it(lambda: fn(*inputs))
            both = time_it(lambda: torch.autograd.grad(fn(*inputs).pow(2).sum(), inputs))
            if round_ >= 2:
                times[name][0].append(forward)
                times[name][1].append(both)
    gflop, megabytes = product_floor(ours, num_nodes, num_edges)
    print(f"uvu product alone (gather -> TP -> scatter, {num_edges} edges; kernel vs e3nn max rel. diff {error:.1e});"
          f" floor {gflop:.3f} GFLOP, {megabytes:.0f} MB forward")
    print(f"{'version':12s} {'fwd ms':>8s} {'f+b ms':>8s} {'fwd cpu':>8s} {'f+b cpu':>8s}   e3nn/version (wall fwd, f+b; cpu fwd, f+b)  fwd GFLOP/s, GB/s")
    base = [statistics.median(t[k] for t in times["e3nn"][j]) for j in (0, 1) for k in (0, 1)]
    for name in contenders:
        f_wall, f_cpu = (statistics.median(t[k] for t in times[name][0]) for k in (0, 1))
        b_wall, b_cpu = (statistics.median(t[k] for t in times[name][1]) for k in (0, 1))
        ratios = (base[0] / f_wall, base[2] / b_wall, base[1] / f_cpu, base[3] / b_cpu)
        print(f"{name:12s} {f_wall:8.2f} {b_wall:8.2f} {f_cpu:8.2f} {b_cpu:8.2f}   " + "  ".join(f"{r:6.2f}x" for r in ratios)
              + f"   {gflop / f_wall * 1e3:6.1f} {megabytes / f_wall:6.1f}")


def memory() -> None:
    """Peak-RSS growth of one forward + backward of each block, each in a fresh process."""
    import subprocess
    import sys

    print("training-step memory: growth of peak RSS over the inputs, one fresh process per version")
    for name in ("ours/fused", "ours/torch", "ours/tp", "e3nn"):
        out = subprocess.run([sys.executable, __file__, "--peak", name, "--threads", str(torch.get_num_threads())],
                             capture_output=True, text=True, check=True)
        print(f"  {name:12s} {out.stdout.strip()}")


def peak(name: str) -> None:
    """Print the peak-RSS growth (MB) of one forward + backward of version ``name``."""
    pos, edge_index, cutoff = make_graph()
    torch.manual_seed(0)
    ours = MessagePassing(IRREPS, IRREPS, SH, num_radial_basis=NUM_BASIS, radial_hidden=HIDDEN,
                          avg_num_neighbors=edge_index.shape[1] / pos.shape[0], cutoff=cutoff, fused=name != "ours/tp")
    ours.kernel.compiled = name != "ours/torch"
    model = E3nnBlock(ours) if name == "e3nn" else ours
    x = torch.randn(pos.shape[0], ours.irreps_node_in.dim, requires_grad=True)
    pg = pos.clone().requires_grad_(True)
    small = torch.zeros(2, ours.irreps_node_in.dim, requires_grad=True)  # load every code path once, outside the measurement
    model(small, pos[:2].clone().requires_grad_(True), torch.tensor([[0], [1]])).pow(2).sum().backward()
    before = peak_rss_mb()
    model(x, pg, edge_index).pow(2).sum().backward()
    print(f"{peak_rss_mb() - before:7.1f} MB")


if __name__ == "__main__":
    main()
