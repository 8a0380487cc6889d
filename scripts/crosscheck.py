#!/usr/bin/python3
"""Replays vkgan's first DCGAN training step in PyTorch and compares.

Usage: crosscheck.py DIR, where DIR was written by `go run ./internal/crosscheck`.
The models are PyTorch's dcgan/main.py Generator and Discriminator (the
32x32 variant has one stage fewer in each). Both sides start from the same
weights, the same real batch and the same noise; the script compares the
losses and D outputs, every gradient, the updated weights and running
statistics, then loads vkgan's G.safetensors and D.safetensors into fresh
modules with load_state_dict (strict) and compares G's output for the same z.
Exit status 0 when everything agrees within the stated tolerances.

With the recipes' options (the step's metadata says which: loss, d_norm,
sn, sn_g, r1, augment, flip, classes) the models get spectral norm
(torch.nn.utils.spectral_norm), lose D's batch norm, become conditional
(G: an embedding concatenated to z; D: a projection), the losses are
hinge or least squares, D sees batches augmented by DiffAugment with the
parameters vkgan drew, and the R1 penalty is differentiated by autograd
(create_graph=True): the double backward vkgan computes forward-over-reverse.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.spectral_norm import SpectralNorm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_check import load_numpy, load_state_dict  # noqa: E402

RTOL = 1e-3  # the bar for losses and updated weights


class Generator(nn.Module):
    def __init__(self, nz, ngf, nc, size, sn=False, classes=0, class_dim=0):
        super().__init__()
        wrap = nn.utils.spectral_norm if sn else (lambda m: m)
        mult = size // 8
        cin = nz + (class_dim if classes else 0)
        layers = [wrap(nn.ConvTranspose2d(cin, ngf * mult, 4, 1, 0, bias=False)),
                  nn.BatchNorm2d(ngf * mult), nn.ReLU(True)]
        while mult > 1:
            layers += [wrap(nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=False)),
                       nn.BatchNorm2d(ngf * mult // 2), nn.ReLU(True)]
            mult //= 2
        layers += [wrap(nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False)), nn.Tanh()]
        if classes:
            self.embed = nn.Embedding(classes, class_dim)
        self.main = nn.Sequential(*layers)

    def forward(self, x, y=None):
        if y is not None:
            x = torch.cat([x, self.embed(y)[:, :, None, None]], 1)
        return self.main(x)


class Discriminator(nn.Module):
    """The example's D; with logits it ends in the last convolution (the
    losses take logits), and with classes it is a projection
    discriminator: the logit plus embed(y) . the last features summed
    over space."""

    def __init__(self, ndf, nc, size, sn=False, bn=True, classes=0, logits=False):
        super().__init__()
        wrap = nn.utils.spectral_norm if sn else (lambda m: m)
        layers = [wrap(nn.Conv2d(nc, ndf, 4, 2, 1, bias=False)), nn.LeakyReLU(0.2, inplace=True)]
        hw, mult = size // 2, 1
        while hw > 4:
            layers += [wrap(nn.Conv2d(ndf * mult, ndf * mult * 2, 4, 2, 1, bias=False))]
            if bn:
                layers += [nn.BatchNorm2d(ndf * mult * 2)]
            layers += [nn.LeakyReLU(0.2, inplace=True)]
            mult, hw = mult * 2, hw // 2
        layers += [wrap(nn.Conv2d(ndf * mult, 1, 4, 1, 0, bias=False))]
        if not logits:
            layers += [nn.Sigmoid()]
        if classes:
            self.embed = nn.Embedding(classes, ndf * mult)
        self.main = nn.Sequential(*layers)
        self.classes = classes

    def forward(self, x, y=None):
        if not self.classes:
            return self.main(x).view(-1, 1).squeeze(1)
        h = self.main[:-1](x)
        return self.main[-1](h).view(-1) + (self.embed(y) * h.sum((2, 3))).sum(1)


def augment(x, p, policy, flip):
    """DiffAugment (Zhao et al. 2020) with the per-sample parameters vkgan
    drew: p[:, 0:8] = brightness, saturation, contrast, translation (rows,
    columns), cutout centre (row, column), flip."""
    b, c, h, w = x.shape
    col = (lambda i: p[:, i].view(b, 1, 1, 1))
    if flip:
        x = torch.where(col(7) > 0.5, x.flip(3), x)
    if "color" in policy:
        x = x + col(0)
        m = x.mean(1, keepdim=True)
        x = (x - m) * col(1) + m
        m = x.mean((1, 2, 3), keepdim=True)
        x = (x - m) * col(2) + m
    if "translation" in policy:
        tx, ty = p[:, 3].long().view(b, 1, 1), p[:, 4].long().view(b, 1, 1)
        gb, gx, gy = torch.meshgrid(torch.arange(b), torch.arange(h), torch.arange(w), indexing="ij")
        gx = torch.clamp(gx + tx + 1, 0, h + 1)
        gy = torch.clamp(gy + ty + 1, 0, w + 1)
        x = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2)
    if "cutout" in policy:
        ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
        ox, oy = p[:, 5].long().view(b, 1, 1), p[:, 6].long().view(b, 1, 1)
        gb, gx, gy = torch.meshgrid(torch.arange(b), torch.arange(ch), torch.arange(cw), indexing="ij")
        gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
        gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
        mask = torch.ones(b, h, w, dtype=x.dtype)
        mask[gb, gx, gy] = 0
        x = x * mask.unsqueeze(1)
    return x


def d_term(loss, out, real):
    """D's loss term on real or fake logits, and the mean D output the log shows."""
    if loss == "bce":
        t = torch.ones_like(out) if real else torch.zeros_like(out)
        return F.binary_cross_entropy_with_logits(out, t), torch.sigmoid(out).mean().item()
    if loss == "hinge":
        return F.relu(1 - out).mean() if real else F.relu(1 + out).mean(), out.mean().item()
    return ((out - 1) ** 2).mean() / 2 if real else (out ** 2).mean() / 2, out.mean().item()


def g_term(loss, out):
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(out, torch.ones_like(out)), torch.sigmoid(out).mean().item()
    if loss == "hinge":
        return -out.mean(), out.mean().item()
    return ((out - 1) ** 2).mean() / 2, out.mean().item()


failures = []


def check(name, want, got, rtol=RTOL, atol=0.0, slack=None):
    """slack, when given, is an extra per-element allowance (a tensor)."""
    want = torch.as_tensor(want, dtype=torch.float64)
    got = torch.as_tensor(got, dtype=torch.float64)
    if want.shape != got.shape:
        failures.append(f"{name}: shape {tuple(got.shape)}, want {tuple(want.shape)}")
        return
    err = (got - want).abs()
    bound = atol + rtol * want.abs()
    note = ""
    if slack is not None:
        used = int(((err > bound) & (slack > 0)).sum())
        bound = bound + slack
        if used:
            note = f"; {used} with a gradient within tolerance of 0"
    worst = (err - bound).max().item() if err.numel() else 0.0
    rel = (err.max() / want.abs().max().clamp_min(1e-30)).item() if err.numel() else 0.0
    status = "ok" if worst <= 0 else "FAIL"
    print(f"{status:4} {name:40} max|diff| {err.max().item():.3g}  (relative to max|want| {rel:.2g}){note}")
    if worst > 0:
        failures.append(name)


def main(d):
    st, meta = load_numpy(os.path.join(d, "step.safetensors"))
    size, nz, ngf, ndf = (int(meta[k]) for k in ("size", "nz", "ngf", "ndf"))
    lr, b1, b2 = float(meta["lr"]), float(meta["beta1"]), float(meta["beta2"])
    nc = int(meta.get("channels", "3"))
    loss = meta.get("loss", "bce")
    sn, sn_g = meta.get("sn") == "true", meta.get("sn_g") == "true"
    bn = meta.get("d_norm", "batch") != "none"
    r1 = float(meta.get("r1", "0"))
    policy = [p for p in meta.get("augment", "").split(",") if p]
    flip = meta.get("flip") == "true"
    classes, class_dim = int(meta.get("classes", "0")), int(meta.get("class_dim", "0"))
    # The example's own model and loss (Sigmoid then BCELoss) unless a
    # recipe's option is on.
    plain = loss == "bce" and not (sn or sn_g or not bn or r1 or policy or flip or classes)
    torch.manual_seed(0)
    netG = Generator(nz, ngf, nc, size, sn_g, classes, class_dim).double()
    netD = Discriminator(ndf, nc, size, sn, bn, classes, logits=not plain).double()
    init = load_state_dict(os.path.join(d, "init.safetensors"))
    for prefix, net in (("G.", netG), ("D.", netD)):
        sd = net.state_dict()
        for k in sd:
            if k.endswith("num_batches_tracked"):
                continue
            sd[k] = init[prefix + k].double()
        net.load_state_dict(sd)
    real = torch.from_numpy(st["real"]).double()
    z = torch.from_numpy(st["z"]).double()
    yr = yf = None
    if classes:
        yr = torch.from_numpy(st["labels_real"]).argmax(1)
        yf = torch.from_numpy(st["labels_fake"]).argmax(1)
    aug = [lambda x: x] * 3
    if policy or flip:
        aug = [(lambda x, p=torch.from_numpy(st[f"augment{i}"]).double(): augment(x, p, policy, flip)) for i in range(3)]
    criterion = nn.BCELoss()
    optD = torch.optim.Adam(netD.parameters(), lr=lr, betas=(b1, b2))
    optG = torch.optim.Adam(netG.parameters(), lr=lr, betas=(b1, b2))
    ones, zeros = torch.ones(real.shape[0], dtype=torch.float64), torch.zeros(real.shape[0], dtype=torch.float64)

    # The example's loop body, one iteration (in float64: the reference).
    netD.zero_grad()
    if plain:
        output = netD(real)
        errD_real = criterion(output, ones)
        errD_real.backward()
        D_x = output.mean().item()
        fake = netG(z)
        output = netD(fake.detach())
        errD_fake = criterion(output, zeros)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
    else:
        xr = aug[0](real)
        if r1:
            xr = xr.detach().requires_grad_(True)
        output = netD(xr, yr)
        errD_real, D_x = d_term(loss, output, True)
        if r1:
            # R1 on the images D sees; create_graph keeps the gradient
            # differentiable, so backward() runs the double backward.
            grad, = torch.autograd.grad(output.sum(), xr, create_graph=True)
            penalty = r1 / 2 * grad.pow(2).flatten(1).sum(1).mean()
            (errD_real + penalty).backward()
            check("R1 penalty", penalty.item(), float(meta["r1_penalty"]))
        else:
            errD_real.backward()
        fake = netG(z, yf)
        output = netD(aug[1](fake.detach()), yf)
        errD_fake, D_G_z1 = d_term(loss, output, False)
        errD_fake.backward()
    gradsD = {k: p.grad.clone() for k, p in netD.named_parameters()}
    optD.step()
    netG.zero_grad()
    if plain:
        output = netD(fake)
        errG = criterion(output, ones)
        D_G_z2 = output.mean().item()
    else:
        output = netD(aug[2](fake), yf)
        errG, D_G_z2 = g_term(loss, output)
    errG.backward()
    gradsG = {k: p.grad.clone() for k, p in netG.named_parameters()}
    optG.step()

    check("loss_d", (errD_real + errD_fake).item(), float(meta["loss_d"]))
    check("loss_g", errG.item(), float(meta["loss_g"]))
    check("D(x)", D_x, float(meta["d_x"]))
    check("D(G(z)) before D's update", D_G_z1, float(meta["d_g_z1"]))
    check("D(G(z)) after D's update", D_G_z2, float(meta["d_g_z2"]))
    grads = load_state_dict(os.path.join(d, "grads.safetensors"))
    for prefix, g in (("D.", gradsD), ("G.", gradsG)):
        for k, v in g.items():
            # Relative to the tensor's largest gradient: fp32 sums of many
            # terms cancel, so tiny entries carry absolute, not relative, error.
            check("grad " + prefix + k, v, grads[prefix + k], rtol=RTOL, atol=RTOL * v.abs().max().item())
    after = load_state_dict(os.path.join(d, "after.safetensors"))
    for prefix, net, g in (("D.", netD, gradsD), ("G.", netG, gradsG)):
        for k, v in net.state_dict().items():
            if k.endswith("num_batches_tracked"):
                continue
            # Adam's first step moves a weight by about lr*sign(grad); where a
            # gradient is ~0 its sign is noise, so allow a small absolute slack.
            # Where the reference gradient is within the gradient check's own
            # tolerance of 0 (more such entries at 128x128), either sign is
            # correct: the two updates may then differ by up to 2*lr.
            slack = None
            if k in g:
                gw = g[k].to(torch.float64)
                slack = (gw.abs() <= RTOL * gw.abs().max()).to(torch.float64) * 2 * lr
            check("updated " + prefix + k, v, after[prefix + k], rtol=RTOL, atol=0.05 * lr, slack=slack)

    # vkgan's checkpoint loads into the example's models without renaming.
    G2 = Generator(nz, ngf, nc, size, sn_g, classes, class_dim)
    D2 = Discriminator(ndf, nc, size, sn, bn, classes, logits=not plain)
    G2.load_state_dict(load_state_dict(os.path.join(d, "G.safetensors")))
    D2.load_state_dict(load_state_dict(os.path.join(d, "D.safetensors")))
    print("ok   load_state_dict of G.safetensors and D.safetensors (strict)")
    # vkgan's sampling never moves state, spectral norm's vectors included:
    # PyTorch's G in training mode would take a power iteration.
    for m in G2.modules():
        for hook in m._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm):
                hook.n_power_iterations = 0
    ys = torch.arange(st["sample_z"].shape[0]) % classes if classes else None
    with torch.no_grad():
        out = G2(torch.from_numpy(st["sample_z"]), ys)  # training mode: batch statistics, as vkgan's samples
    check("G(z) from G.safetensors vs vkgan", out, st["sample"], rtol=0, atol=1e-4)

    if failures:
        print(f"crosscheck: {len(failures)} mismatches: {', '.join(failures)}")
        return 1
    print("crosscheck: vkgan matches PyTorch")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
