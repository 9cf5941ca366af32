"""A rotation-invariant image classifier from the public grid layers, against a plain CNN.

Synthetic data made here (no download): noisy images of five tetrominoes (I, L, J, T, S) at random
positions. Both models train on upright shapes only and are tested on upright and on quarter-turned
shapes. The G-CNN (C(4) lifting and group convolutions, ``GroupGlobalPool``, a linear head) gives
the same logits for every quarter turn of its input, so its accuracy does not move; L and J (and S
and its mirror image Z, not in the data) stay apart, because C(4) holds no reflection. The CNN with
about as many parameters has only seen upright shapes.

    python examples/grids_invariant_classifier.py [--tiny]
"""
from __future__ import annotations

import argparse
import os

import torch

SHAPES = {  # cells of each tetromino on a 4x4 board, (row, column)
    "I": [(0, 1), (1, 1), (2, 1), (3, 1)],
    "L": [(0, 1), (1, 1), (2, 1), (2, 2)],
    "J": [(0, 2), (1, 2), (2, 2), (2, 1)],
    "T": [(1, 0), (1, 1), (1, 2), (2, 1)],
    "S": [(1, 1), (1, 2), (2, 0), (2, 1)],
}


def make_images(count: int, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` upright noisy tetrominoes ``(count, 1, size, size)`` (cells of 3x3 pixels) and labels."""
    labels = torch.randint(len(SHAPES), (count,), generator=generator)
    images = 0.3 * torch.randn(count, 1, size, size, generator=generator)
    cells = list(SHAPES.values())
    for n, label in enumerate(labels.tolist()):
        top, left = torch.randint(0, size - 12 + 1, (2,), generator=generator).tolist()
        for row, column in cells[label]:
            images[n, 0, top + 3 * row: top + 3 * row + 3, left + 3 * column: left + 3 * column + 3] += 1.0
    return images, labels


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train both classifiers, test them upright and quarter-turned; return accuracies and the invariance error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", default=bool(os.environ.get("EQUISCALE_EXAMPLE_TINY")),
                        help="fewer images and steps, for tests")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    steps, count, tests = (25, 128, 200) if args.tiny else (300, 1024, 500)

    # --8<-- [start:data]
    size = 20
    train_x, train_y = make_images(count, size, generator)
    test_x, test_y = make_images(tests, size, generator)
    turns = torch.randint(1, 4, (tests,), generator=generator)  # each test image turned by 90, 180 or 270 degrees
    turned_x = torch.stack([torch.rot90(x, int(k), dims=(-1, -2)) for x, k in zip(test_x, turns)])
    # --8<-- [end:data]

    # --8<-- [start:model]
    from equiscale import nn
    from equiscale.groups import C

    G = C(4)
    gcnn = torch.nn.Sequential(
        nn.LiftingConv2d(1, 8, 5, G, padding=2),           # (B, 1, 20, 20) -> (B, 8, 4, 20, 20)
        nn.GroupBatchNorm2d(8), torch.nn.ReLU(),
        nn.GroupMaxPool2d(2),                               # -> (B, 8, 4, 10, 10)
        nn.GroupConv2d(8, 16, 3, G, padding=1),             # -> (B, 16, 4, 10, 10)
        nn.GroupBatchNorm2d(16), torch.nn.ReLU(),
        nn.GroupGlobalPool(spatial="max", group="max"),     # -> (B, 16), invariant
        torch.nn.Linear(16, len(SHAPES)),
    )
    cnn = torch.nn.Sequential(  # the same layout with plain layers and ~the same parameter count
        torch.nn.Conv2d(1, 16, 5, padding=2), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 24, 3, padding=1), torch.nn.BatchNorm2d(24), torch.nn.ReLU(),
        torch.nn.AdaptiveMaxPool2d(1), torch.nn.Flatten(), torch.nn.Linear(24, len(SHAPES)),
    )
    # --8<-- [end:model]

    # --8<-- [start:train]
    def train(model: torch.nn.Module) -> None:
        optimizer = torch.optim.Adam(model.parameters(), 3e-3)
        model.train()
        for step in range(steps):
            batch = torch.randint(count, (32,), generator=generator)
            loss = torch.nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()

    def accuracy(model: torch.nn.Module, images: torch.Tensor) -> float:
        with torch.no_grad():
            return (model(images).argmax(1) == test_y).float().mean().item()

    result = {}
    for name, model in (("gcnn", gcnn), ("cnn", cnn)):
        train(model)
        parameters = sum(p.numel() for p in model.parameters())
        result[f"{name}_upright"], result[f"{name}_turned"] = accuracy(model, test_x), accuracy(model, turned_x)
        print(f"{name}: {parameters} parameters, accuracy upright {result[f'{name}_upright']:.1%}, "
              f"quarter-turned {result[f'{name}_turned']:.1%}")
    # --8<-- [end:train]

    # --8<-- [start:check]
    from equiscale.testing import GridField, equivariance_error

    exact = gcnn.double()
    images = test_x[:8].double()
    invariance = equivariance_error(exact, images, G, GridField(), None, n_samples=8)
    print(f"G-CNN logits under quarter turns, float64: relative change {invariance:.1e}")
    # --8<-- [end:check]
    result["invariance"] = invariance
    return result


if __name__ == "__main__":
    main()
