#!/usr/bin/python3
"""The FID Inception in PyTorch, with random weights, as a reference for vkgan.

Builds torchvision's Inception3 (1008 classes, no auxiliary head) with the
FID variants of blocks A, C and E written here from their description:
average pools that do not count the padding, a max pool in the last E
block's pool branch, batch-norm eps 1e-3. The weights are random, and the
batch norms' running statistics are set from one batch of random images
(train mode with cumulative averaging), so activations keep a sane scale
through all 94 units, as trained ones do.

Writes into DIR:
  inception.pth          the state_dict, torch.save's zip format
  inception-legacy.pth   the same, the pre-1.6 format
  inception.safetensors  the same as safetensors (float32)
  ref.safetensors        "images" (N,3,S,S in [-1,1]), "features" (N,2048),
                         and per-block outputs "block.NAME" for the layer-by-
                         layer comparison; metadata "side".

Preprocessing is pytorch-fid's: x in [0,1] -> bilinear resize to 299x299
(align_corners=False) -> 2x - 1. The images given to vkgan are 2x - 1 of the
same [0,1] images.

usage: fid_inception_ref.py DIR [--side 32] [--n 4] [--seed 0]
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models import inception as tvi


class FIDInceptionA(tvi.InceptionA):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b5, b3, bp], 1)


class FIDInceptionC(tvi.InceptionC):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = m(bd)
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b7, bd, bp], 1)


class FIDInceptionE(tvi.InceptionE):
    def __init__(self, in_channels, max_pool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.max_pool:
            p = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            p = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b3, bd, self.branch_pool(p)], 1)


def fid_inception():
    net = tvi.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280, max_pool=False)
    net.Mixed_7c = FIDInceptionE(2048, max_pool=True)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-3
    return net


BLOCKS = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
          "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
          "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"]


def trunk(net, x01, keep=None):
    """pytorch-fid's preprocessing and the blocks up to the 2048-d pool."""
    x = F.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    for name in BLOCKS:
        m = getattr(net, name)
        x = m(x)
        if keep is not None:
            keep[name] = x
    return x.flatten(1)


def write_safetensors(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    torch.manual_seed(a.seed)
    net = fid_inception()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0, (2.0 / fan_in) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # cumulative: the statistics of the calibration batch
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
        net.train()
        trunk(net, torch.rand(8, 3, a.side, a.side))
        net.eval()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.1

    sd = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    torch.save(net.state_dict(), os.path.join(a.dir, "inception.pth"))
    torch.save(net.state_dict(), os.path.join(a.dir, "inception-legacy.pth"), _use_new_zipfile_serialization=False)
    write_safetensors(os.path.join(a.dir, "inception.safetensors"),
                      {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")})

    # Smooth images, like real ones, plus one of pure noise.
    g = torch.Generator().manual_seed(a.seed + 1)
    lo = torch.rand(a.n, 3, 4, 4, generator=g)
    x01 = F.interpolate(lo, size=(a.side, a.side), mode="bilinear", align_corners=False)
    x01[-1] = torch.rand(3, a.side, a.side, generator=g)
    x01 = x01.double().float()
    keep = {}
    with torch.no_grad():
        feats = trunk(net.double(), x01.double(), keep)
    out = {"images": 2 * x01 - 1, "features": feats.float()}
    for k, v in keep.items():
        out["block." + k] = v.float()
    write_safetensors(os.path.join(a.dir, "ref.safetensors"), out, {"side": str(a.side)})
    print(f"fid_inception_ref: wrote {a.dir} ({a.n} images of {a.side}x{a.side}; features mean {feats.mean():.4f} std {feats.std():.4f})")


if __name__ == "__main__":
    sys.exit(main())
