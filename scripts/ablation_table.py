#!/usr/bin/python3
"""Summarises scripts/ablation.sh's runs as the Markdown tables of
docs/ABLATION.md and copies seed 1's last sample grid of each row.

Usage: ablation_table.py RUNS_DIR [DOC_IMAGE_DIR]
Per data set and row: SWD (x1e3, lower is better) of every seed, their
median and range, and the median's change against the example's recipe.
"""
import glob
import json
import os
import shutil
import statistics
import sys

ROWS = [("baseline", "the example's recipe (BCE, batch norm in D)"),
        ("diffaug", "+ DiffAugment (color, translation, cutout)"),
        ("hinge-sn", "hinge + SN, no batch norm in D"),
        ("hinge-sn-diffaug", "hinge + SN + DiffAugment"),
        ("r1", "hinge + SN + DiffAugment + R1 (gamma 0.1, every 4)"),
        ("cond", "hinge + SN + DiffAugment, conditional")]
DATA = [("mammal", "animal-mammal (132 images)"), ("all", "all emoji (7,572 images)")]


def main(root, images=None):
    for data, title in DATA:
        print(f"\n### {title}\n")
        print("| recipe | SWD per seed | median | range | vs. the example |")
        print("| --- | --- | --- | --- | --- |")
        base = None
        for row, label in ROWS:
            vals = []
            for f in sorted(glob.glob(os.path.join(root, data, row, "seed*", "eval.json"))):
                with open(f) as fh:
                    vals.append(json.load(fh)["swd"])
            if not vals:
                print(f"| {label} | not run | | | |")
                continue
            med = statistics.median(vals)
            if row == "baseline":
                base = med
            rel = f"{(med / base - 1) * 100:+.0f}%" if base and row != "baseline" else ""
            seeds = ", ".join(f"{v:.1f}" for v in vals)
            print(f"| {label} | {seeds} | {med:.1f} | {min(vals):.1f}-{max(vals):.1f} | {rel} |")
            if images:
                grids = sorted(glob.glob(os.path.join(root, data, row, "seed1", "samples", "*.png")))
                if grids:
                    os.makedirs(images, exist_ok=True)
                    shutil.copy(grids[-1], os.path.join(images, f"{data}-{row}.png"))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        sys.exit(2)
    main(*sys.argv[1:])
