#!/usr/bin/python3
"""Summarises scripts/ablation.sh's runs as the Markdown tables of
docs/ABLATION.md and copies seed 1's last sample grid of each row.

Usage: ablation_table.py RUNS_DIR [DOC_IMAGE_DIR]
Per data set and row: SWD (x1e3, lower is better) of every seed, their
median and range, and the median's change against the example's recipe.
With DOC_IMAGE_DIR it also writes DATA.png there: the first two rows of
seed 1's last sample grid of every row that ran, top to bottom in the
table's order.
"""
import glob
import json
import os
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
        base, strips = None, []
        for row, label in ROWS:
            vals = []
            for f in sorted(glob.glob(os.path.join(root, data, row, "seed*", "eval.json"))):
                with open(f) as fh:
                    res = json.load(fh)
                if "swd" in res:
                    vals.append(res["swd"])
            if not vals:
                why = "no row: one class" if row == "cond" and data == "mammal" else "not run"
                print(f"| {label} | {why} | | | |")
                continue
            med = statistics.median(vals)
            if row == "baseline":
                base = med
            rel = f"{(med / base - 1) * 100:+.0f}%" if base and row != "baseline" else ""
            seeds = ", ".join(f"{v:.1f}" for v in vals)
            print(f"| {label} | {seeds} | {med:.1f} | {min(vals):.1f}-{max(vals):.1f} | {rel} |")
            grids = sorted(glob.glob(os.path.join(root, data, row, "seed1", "samples", "*.png")))
            if grids:
                strips.append(grids[-1])
        if images and strips:
            montage(strips, os.path.join(images, f"{data}.png"))


def montage(grids, out):
    """Stacks the top two rows of each 8x8 grid (32-pixel images, 2-pixel
    borders), 6 pixels apart."""
    from PIL import Image  # only for the doc's pictures
    strips = [Image.open(g).convert("RGB") for g in grids]
    w, h = strips[0].width, 2 + 2 * (strips[0].width - 2) // 8
    sheet = Image.new("RGB", (w, len(strips) * (h + 6) - 6), "white")
    for i, im in enumerate(strips):
        sheet.paste(im.crop((0, 0, w, h)), (0, i * (h + 6)))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    sheet.save(out, optimize=True)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        sys.exit(2)
    main(*sys.argv[1:])
