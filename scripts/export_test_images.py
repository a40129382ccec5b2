#!/usr/bin/env python3
"""Writes Sign-MNIST test images as upscaled RGB PNGs, to try asl_predict on images of another size and format.

usage: python3 scripts/export_test_images.py CSV_OR_CSV_GZ OUT_DIR [COUNT] [SCALE]
Standard library only. File names carry the row number and the true letter: test-0001-G.png.
"""
import gzip
import os
import struct
import sys
import zlib

path, out = sys.argv[1], sys.argv[2]
count = int(sys.argv[3]) if len(sys.argv) > 3 else 8
scale = int(sys.argv[4]) if len(sys.argv) > 4 else 4
letters = "ABCDEFGHIKLMNOPQRSTUVWXY"  # 24 classes: no J, no Z
os.makedirs(out, exist_ok=True)


def png(path, width, height, rgb_rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(row) for row in rgb_rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


opener = gzip.open if path.endswith(".gz") else open
with opener(path, "rt") as f:
    next(f)
    for i, line in zip(range(count), f):
        cells = [int(v) for v in line.strip().split(",")]
        label = cells[0] - (1 if cells[0] > 9 else 0)
        px = cells[1:]
        rows = []
        for y in range(28 * scale):
            row = []
            for x in range(28 * scale):
                v = px[(y // scale) * 28 + x // scale]
                row += [v, v, v]
            rows.append(row)
        png(os.path.join(out, f"test-{i + 1:04d}-{letters[label]}.png"), 28 * scale, 28 * scale, rows)
print(f"wrote {count} images to {out}")
