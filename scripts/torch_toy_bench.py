#!/usr/bin/python3
"""Times one step of the 2D toy GAN's small or large protocol in PyTorch.

Usage: torch_toy_bench.py [--protocol small|large] [--steps 50] [--threads N] [--device cpu|cuda]
The networks, batch and optimizers are those of `vkgan toy` (docs/TOY.md);
the step is the same: D on the real and the detached fake batch, Adam on D,
D on the fake batch with target 1 into G, Adam on G. Real points come from
the ring8 mixture. Prints milliseconds per step (median of --steps after
five warm-up steps).
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn


class Maxout(nn.Module):
    def __init__(self, fan_in, units, pieces):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.lin = nn.Linear(fan_in, units * pieces)

    def forward(self, x):
        return self.lin(x).view(-1, self.units, self.pieces).max(dim=2).values


def nets(protocol):
    if protocol == "small":
        g = nn.Sequential(nn.Linear(256, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 2))
        d = nn.Sequential(nn.Linear(2, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 1))
        return g, d, 512, (1e-4, 1e-3), 0.5
    layers, width = [], 256
    for _ in range(4):
        layers += [nn.Linear(width, 400), nn.BatchNorm1d(400), nn.ReLU()]
        width = 400
    g = nn.Sequential(*layers, nn.Linear(400, 2))
    d = nn.Sequential(Maxout(2, 200, 5), Maxout(200, 200, 5), Maxout(200, 200, 5), nn.Linear(200, 1))
    return g, d, 128, (1e-4, 1e-4), 0.8


def ring8(batch, dev):
    k = torch.randint(0, 8, (batch,), device=dev).float() * (2 * math.pi / 8)
    return torch.stack([k.cos(), k.sin()], dim=1) + 0.01 * torch.randn(batch, 2, device=dev)


def step_ms(protocol, steps, dev=torch.device("cpu")):
    torch.manual_seed(1)
    g, d, batch, (lr_d, lr_g), beta1 = nets(protocol)
    g, d = g.to(dev), d.to(dev)
    opt_d = torch.optim.Adam(d.parameters(), lr=lr_d, betas=(beta1, 0.999))
    opt_g = torch.optim.Adam(g.parameters(), lr=lr_g, betas=(beta1, 0.999))
    bce = nn.BCEWithLogitsLoss()
    ones, zeros = torch.ones(batch, 1, device=dev), torch.zeros(batch, 1, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    for i in range(steps + 5):
        sync()
        t0 = time.perf_counter()
        real = ring8(batch, dev)
        fake = g(torch.randn(batch, 256, device=dev))
        d.zero_grad()
        loss_d = bce(d(real), ones) + bce(d(fake.detach()), zeros)
        loss_d.backward()
        opt_d.step()
        g.zero_grad()
        bce(d(fake), ones).backward()
        opt_g.step()
        sync()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", default="small", choices=["small", "large"])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    where = torch.cuda.get_device_name() if dev.type == "cuda" else f"{torch.get_num_threads()} threads"
    ms = step_ms(a.protocol, a.steps, dev)
    if a.json:
        print(json.dumps([{"protocol": a.protocol, "ms_per_step": ms, "where": where, "torch": torch.__version__}]))
    else:
        print(f"{a.protocol}: {ms:.2f} ms/step (torch {torch.__version__}, {where})")


if __name__ == "__main__":
    main()
