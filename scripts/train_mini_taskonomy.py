"""Train the miniature Taskonomy that `fastrsa demo` ships: one Table S1 encoder (SmallEncoder) and
a light decoder per task, on scenes from fastrsa.scenes; export the encoders to ONNX.

    python scripts/train_mini_taskonomy.py [--out fastrsa/data/mini_taskonomy] [--epochs 8]

Deterministic for a given seed (CPU, fixed thread count). Records in OUT/training.json the seed,
data size, epochs, final losses and the time taken, so anyone can retrain and compare.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fastrsa.models import SmallEncoder, export_onnx
from fastrsa.scenes import TASKS, make_scenes

LAYERS = ("block4", "compressed")


def decoder(target: str, channels: int) -> nn.Module:
    """From the encoder's (8, S/16, S/16) code: four 2x up-convolutions, or a linear classifier."""
    if target == "class":
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(channels))
    layers, width = [], 8
    for out in (64, 32, 16):
        layers += [nn.ConvTranspose2d(width, out, 4, 2, 1), nn.BatchNorm2d(out), nn.ReLU()]
        width = out
    layers.append(nn.ConvTranspose2d(width, channels, 4, 2, 1))
    return nn.Sequential(*layers)


def loss_fn(target: str, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    if target in ("labels", "class"):
        return F.cross_entropy(pred, truth)
    return F.mse_loss(pred, truth)


def train_task(task, scenes, epochs, batch, lr, seed) -> tuple[SmallEncoder, float, float]:
    kind, target, channels = TASKS[task]
    torch.manual_seed(seed)
    encoder, head = SmallEncoder(), decoder(target, channels)
    inputs = torch.from_numpy(scenes.noisy if task == "denoise" else scenes.images)
    truth = torch.from_numpy(scenes.targets[task])
    head(encoder(inputs[:2]))  # materialise lazy layers
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    encoder.train()
    head.train()
    gen = torch.Generator().manual_seed(seed)
    n = len(inputs)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            loss = loss_fn(target, head(encoder(inputs[idx])), truth[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        final = total / n
    encoder.eval()
    return encoder, final, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="fastrsa/data/mini_taskonomy")
    parser.add_argument("--n-train", type=int, default=2048)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    out = Path(args.out)
    t0 = time.perf_counter()
    scenes = make_scenes(args.n_train, args.size, seed=args.seed)
    record = {
        "seed": args.seed,
        "n_train": args.n_train,
        "image_size": args.size,
        "epochs": args.epochs,
        "batch": args.batch,
        "lr": args.lr,
        "layers": list(LAYERS),
        "scene_seconds": round(time.perf_counter() - t0, 2),
        "tasks": {},
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }
    for i, task in enumerate(TASKS):
        encoder, loss, seconds = train_task(
            task, scenes, args.epochs, args.batch, args.lr, seed=args.seed * 100 + i
        )
        export_onnx(encoder, out / f"{task}.onnx", layers=LAYERS, image_size=args.size)
        record["tasks"][task] = {
            "kind": TASKS[task][0],
            "final_loss": round(loss, 5),
            "seconds": round(seconds, 1),
        }
        print(f"{task:16s} loss {loss:.4f}  {seconds:.1f} s", flush=True)
    record["total_seconds"] = round(time.perf_counter() - t0, 1)
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {len(TASKS)} encoders and training.json to {out} in {record['total_seconds']} s")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
