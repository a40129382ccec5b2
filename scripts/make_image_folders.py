#!/usr/bin/python3
"""Writes class folders of colour images for train_folder and its test, from Debian's Fashion-MNIST test set
(package dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/t10k-*-ubyte.gz).

Usage: /usr/bin/python3 scripts/make_image_folders.py OUT [--per-class N] [--classes K] [--size-min A]
                                                          [--size-max B] [--seed S] [--source DIR]
Writes OUT/<class>/NNNNN.<ext> for the first K classes (Fashion-MNIST's names), N images each, taken in
order from the test set (--skip M starts after each class's first M, for a separate validation folder;
--samples DIR also writes each class's first image as DIR/<class>.png, for predict).
Each 28 x 28 gray image is coloured (a random dark garment colour on a random light background, so that
colour says nothing about the class), scaled to a random size between A and B pixels per side (the aspect ratio
varying by up to 25%), and written as PNG, JPEG (quality 75..95) or, now and then, an RGBA PNG, with
upper-case extensions and sub-folders mixed in, as a folder of one's own photographs would be.
Deterministic for a seed. Needs PIL and numpy (python3-pil, python3-numpy).
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np
from PIL import Image

NAMES = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--skip", type=int, default=0)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--size-min", type=int, default=24)
    p.add_argument("--size-max", type=int, default=96)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--samples", help="also write each class's first image as SAMPLES/<class>.png (for predict)")
    args = p.parse_args()
    images_path = os.path.join(args.source, "t10k-images-idx3-ubyte.gz")
    labels_path = os.path.join(args.source, "t10k-labels-idx1-ubyte.gz")
    if not os.path.exists(images_path):
        sys.exit("make_image_folders.py: %s not found (Debian package dataset-fashion-mnist)" % images_path)
    if not 1 <= args.classes <= 10:
        sys.exit("make_image_folders.py: --classes must lie in 1..10")
    images, labels = read_idx(images_path), read_idx(labels_path)
    rng = np.random.default_rng(args.seed)
    seen = [0] * args.classes
    written = [0] * args.classes
    for img, label in zip(images, labels):
        if label >= args.classes or written[label] >= args.per_class:
            continue
        seen[label] += 1
        if seen[label] <= args.skip:
            continue
        n = written[label]
        written[label] += 1
        # A darker garment of any hue on a lighter background of any hue, like a product photograph.
        fg = rng.integers(0, 130, 3).astype(np.float32)
        bg = rng.integers(150, 256, 3).astype(np.float32)
        a = img.astype(np.float32)[..., None] / 255.0
        rgb = (a * fg + (1.0 - a) * bg).round().clip(0, 255).astype(np.uint8)
        side = int(rng.integers(args.size_min, args.size_max + 1))
        aspect = float(rng.uniform(0.8, 1.25))
        w, h = max(8, int(side * aspect)), side
        pic = Image.fromarray(rgb, "RGB").resize((w, h), Image.BICUBIC)
        if args.samples and n == 0:
            os.makedirs(args.samples, exist_ok=True)
            pic.save(os.path.join(args.samples, NAMES[label] + ".png"))
        kind = rng.random()
        folder = os.path.join(args.out, NAMES[label], "more" if n % 7 == 3 else "")
        os.makedirs(folder, exist_ok=True)
        stem = os.path.join(folder, "%05d" % n)
        if kind < 0.45:
            pic.save(stem + (".JPG" if n % 5 == 0 else ".jpg"), quality=int(rng.integers(75, 96)))
        elif kind < 0.9:
            pic.save(stem + (".PNG" if n % 5 == 1 else ".png"))
        else:
            alpha = Image.fromarray(rng.integers(128, 256, (h, w)).astype(np.uint8), "L")
            rgba = pic.copy()
            rgba.putalpha(alpha)
            rgba.save(stem + ".png")
    for c in range(args.classes):
        print("%-12s %d images" % (NAMES[c], written[c]))


if __name__ == "__main__":
    main()
