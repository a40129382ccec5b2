#!/usr/bin/env python3
"""Seed corpora for ember's fuzz targets, written into OUT/<target>/ (the build directory, never the repo).

Usage: python3 fuzz/make_corpus.py OUT

Plain python3 only (struct, zlib, gzip, json). Small, valid files of each format and variant the readers
accept (plain and gzip, LF and CRLF, gray/RGB/RGBA/palette/16-bit PNG, BMP, the JPEG fixture, safetensors
checkpoints with and without optimiser state) plus a few near misses, so that the fuzzer starts deep in
every parser. The regression inputs in tests/fixtures/fuzz-regressions/ are added too.
"""
import gzip
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures")


def write(out_dir, name, data):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, mtime=0)


# ---- IDX -------------------------------------------------------------------------------------------------
def idx(dims, payload):
    return struct.pack(">I", 0x0800 | len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload)


def idx_corpus(out):
    images = idx([2, 3, 3], [(i * 37) % 256 for i in range(18)])
    labels = idx([4], [0, 3, 9, 1])
    write(out, "images_2x3x3", images)
    write(out, "labels_4", labels)
    write(out, "images_2x3x3.gz", gz(images))
    write(out, "labels_4.gz", gz(labels))
    write(out, "images_two_members.gz", gz(images[:10]) + gz(images[10:]))
    write(out, "images_empty_0x28x28", idx([0, 28, 28], []))
    write(out, "images_1x28x28", idx([1, 28, 28], [(i * 13) % 256 for i in range(784)]))
    write(out, "images_truncated", images[:-3])
    write(out, "labels_huge_claim", idx([1000000000], [1, 2]))


# ---- Sign-MNIST CSV --------------------------------------------------------------------------------------
def csv(pixels, rows, eol="\n", final_eol=True):
    header = "label," + ",".join("pixel%d" % (i + 1) for i in range(pixels))
    lines = [header] + [",".join(str(v) for v in row) for row in rows]
    text = eol.join(lines) + (eol if final_eol else "")
    return text.encode()


def csv_corpus(out):
    rows4 = [[3, 0, 255, 17, 128], [24, 1, 2, 3, 4], [10, 9, 8, 7, 6]]
    write(out, "2x2_lf.csv", csv(4, rows4))
    write(out, "2x2_crlf.csv", csv(4, rows4, "\r\n"))
    write(out, "2x2_no_final_eol.csv", csv(4, rows4, "\n", False))
    write(out, "2x2_lf.csv.gz", gz(csv(4, rows4)))
    write(out, "1x1.csv", csv(1, [[0, 5]]))
    write(out, "3x3.csv", csv(9, [[i % 25 if i % 25 != 9 else 8] + [(i * j) % 256 for j in range(9)] for i in range(4)]))
    write(out, "28x28_one_row.csv", csv(784, [[5] + [(j * 7) % 256 for j in range(784)]]))
    write(out, "label_9.csv", csv(4, [[9, 1, 2, 3, 4]]))
    write(out, "short_row.csv", csv(4, [[1, 2, 3]]))
    write(out, "header_only.csv", csv(4, []))


# ---- safetensors -----------------------------------------------------------------------------------------
# The model of fuzz_safetensors.cpp: conv1 Conv2d(1, 2, 2), batchnorm1 BatchNorm2d(2), flatten, fc1 Linear(8, 3).
MODEL = [
    ("conv1.weight", [2, 1, 2, 2]), ("conv1.bias", [2]),
    ("batchnorm1.weight", [2]), ("batchnorm1.bias", [2]),
    ("fc1.weight", [3, 8]), ("fc1.bias", [3]),
    ("batchnorm1.running_mean", [2]), ("batchnorm1.running_var", [2]),
    ("batchnorm1.num_batches_tracked", []),
]
PARAMETERS = [name for name, _ in MODEL[:6]]


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def safetensors(tensors, metadata=None, float_dtype="F32"):
    """tensors: list of (name, shape, values); num_batches_tracked is written as I64."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for name, shape, values in tensors:
        if name.endswith("num_batches_tracked"):
            dtype, blob = "I64", b"".join(struct.pack("<q", int(v)) for v in values)
        elif float_dtype == "F64":
            dtype, blob = "F64", b"".join(struct.pack("<d", v) for v in values)
        else:
            dtype, blob = "F32", b"".join(struct.pack("<f", v) for v in values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


def model_tensors(scale=0.25):
    out = []
    for k, (name, shape) in enumerate(MODEL):
        n = numel(shape)
        if name.endswith("num_batches_tracked"):
            values = [7]
        elif name.endswith("running_var"):
            values = [1.0 + 0.5 * i for i in range(n)]
        else:
            values = [scale * ((i * 7 + k) % 11 - 5) for i in range(n)]
        out.append((name, shape, values))
    return out


def safetensors_corpus(out):
    meta = {"format": "pt", "epoch": "3", "best_epoch": "2", "best_val_loss": "0.5"}
    model = model_tensors()
    write(out, "model.safetensors", safetensors(model, meta))
    write(out, "model_f64.safetensors", safetensors(model, {"format": "pt"}, "F64"))
    momentum = [("optimizer.momentum_buffer." + name, shape, [0.125] * numel(shape))
                for name, shape in MODEL if name in PARAMETERS]
    write(out, "model_momentum.safetensors", safetensors(model + momentum, meta))
    write(out, "model_no_metadata.safetensors", safetensors(model))
    write(out, "one_tensor.safetensors", safetensors([("x", [2, 2], [1.0, 2.0, 3.0, 4.0])]))
    write(out, "empty_tensor.safetensors", safetensors([("x", [0, 3], [])]))
    write(out, "empty_object.safetensors", struct.pack("<Q", 8) + b"{}      ")
    write(out, "bad_length.safetensors", struct.pack("<Q", 1 << 60) + b"{}")


# ---- images ----------------------------------------------------------------------------------------------
def png(width, height, color_type, bit_depth, rows, palette=None, trns=None):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(r) for r in rows)  # filter type 0 (None) on every row
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    if palette:
        body += chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    if trns:
        body += chunk(b"tRNS", bytes(trns))
    body += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def png_filtered(width, height, rows):
    """Gray 8-bit with each of the five PNG row filters in turn (Sub, Up, Average, Paeth exercised)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b""
    for y, r in enumerate(rows):
        raw += bytes([y % 5]) + bytes(r)  # the bytes are "filtered" values; any byte string is a valid image
    body = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    body += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def bmp24(width, height, pixels):
    row_size = (width * 3 + 3) // 4 * 4
    data = b""
    for y in reversed(range(height)):
        row = b"".join(bytes(pixels[y][x][::-1]) for x in range(width))  # BGR
        data += row + b"\x00" * (row_size - len(row))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(data), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    return header + info + data


def bmp8(width, height, indices, palette):
    row_size = (width + 3) // 4 * 4
    data = b""
    for y in reversed(range(height)):
        row = bytes(indices[y])
        data += row + b"\x00" * (row_size - len(row))
    pal = b"".join(bytes([b, g, r, 0]) for r, g, b in palette)
    offset = 54 + len(pal)
    header = struct.pack("<2sIHHI", b"BM", offset + len(data), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 0, len(data), 2835, 2835, len(palette), 0)
    return header + info + pal + data


def image_corpus(out):
    w, h = 5, 4
    gray = [[(x * 50 + y * 13) % 256 for x in range(w)] for y in range(h)]
    rgb = [[((x * 60) % 256, (y * 70) % 256, (x * y * 20) % 256) for x in range(w)] for y in range(h)]
    write(out, "gray8.png", png(w, h, 0, 8, gray))
    write(out, "gray16.png", png(w, h, 0, 16, [[b for v in r for b in (v, 255 - v)] for r in gray]))
    write(out, "gray1.png", png(9, 2, 0, 1, [[0b10110010, 0b10000000], [0b01010101, 0]]))
    write(out, "gray_alpha.png", png(w, h, 4, 8, [[b for v in r for b in (v, 200)] for r in gray]))
    write(out, "rgb.png", png(w, h, 2, 8, [[c for px in r for c in px] for r in rgb]))
    write(out, "rgba.png", png(w, h, 6, 8, [[c for px in r for c in px + (128,)] for r in rgb]))
    palette = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
    write(out, "palette.png", png(w, h, 3, 8, [[(x + y) % 4 for x in range(w)] for y in range(h)], palette, [255, 0]))
    write(out, "filters.png", png_filtered(w, 5, [[(x * 31 + y) % 256 for x in range(w)] for y in range(5)]))
    write(out, "rgb24.bmp", bmp24(w, h, rgb))
    write(out, "palette8.bmp", bmp8(w, h, [[(x + y) % 4 for x in range(w)] for y in range(h)], palette))
    for fixture in ("ramp_8x8.jpg", "rgb_3x2.gif"):
        path = os.path.join(FIXTURES, fixture)
        if os.path.exists(path):
            with open(path, "rb") as f:
                write(out, fixture, f.read())


# ---- EXIF --------------------------------------------------------------------------------------------------
def exif_jpeg(orientation, order, extra_entries=0, head=b"\xff\xd8"):
    """SOI, an APP1 Exif segment whose IFD0 holds Orientation (after `extra_entries` other tags), then EOI."""
    e = "<" if order == b"II" else ">"
    entries = [struct.pack(e + "HHII", 0x010F + k, 2, 4, 0) for k in range(extra_entries)]
    entries.append(struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0))
    tiff = order + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", len(entries)) + b"".join(entries)
    tiff += struct.pack(e + "I", 0)
    app1 = b"Exif\x00\x00" + tiff
    return head + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + b"\xff\xd9"


def exif_corpus(out):
    for o in (1, 3, 6, 8):
        write(out, "orientation%d_le.jpg" % o, exif_jpeg(o, b"II"))
    write(out, "orientation6_be_after_tags.jpg", exif_jpeg(6, b"MM", extra_entries=3))
    write(out, "orientation_bad.jpg", exif_jpeg(42, b"II"))
    write(out, "app0_then_exif.jpg", b"\xff\xd8\xff\xe0\x00\x06JFIF" + exif_jpeg(5, b"MM")[2:])
    for fixture in ("ramp_8x8.jpg", "rgb_3x2.gif"):
        path = os.path.join(FIXTURES, fixture)
        if os.path.exists(path):
            with open(path, "rb") as f:
                write(out, fixture, f.read())


# ---- ONNX ------------------------------------------------------------------------------------------------
# A tiny protobuf writer: varint fields, length-delimited bytes and messages (onnx.proto's field numbers).
def pb_varint(v):
    v &= (1 << 64) - 1
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7f) | 0x80])
        v >>= 7
    return out + bytes([v])


def pb_int(field, v):
    return pb_varint(field << 3) + pb_varint(v)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return pb_varint((field << 3) | 2) + pb_varint(len(data)) + data


def onnx_value_info(name, dims):
    shape = b"".join(pb_bytes(1, pb_bytes(2, "N") if d < 0 else pb_int(1, d)) for d in dims)
    return pb_bytes(1, name) + pb_bytes(2, pb_bytes(1, pb_int(1, 1) + pb_bytes(2, shape)))


def onnx_model(nodes, inits, in_dims, out_dims, opset=13):
    graph = b"".join(pb_bytes(1, n) for n in nodes) + pb_bytes(2, "g")
    graph += b"".join(pb_bytes(5, t) for t in inits)
    graph += pb_bytes(11, onnx_value_info("x", in_dims)) + pb_bytes(12, onnx_value_info("y", out_dims))
    model = pb_int(1, 8) + pb_bytes(7, graph) + pb_bytes(8, pb_bytes(1, "") + pb_int(2, opset))
    return model + pb_bytes(14, pb_bytes(1, "classes") + pb_bytes(2, "a,b"))


def onnx_node(op, inputs, outputs, attrs=b""):
    return b"".join(pb_bytes(1, i) for i in inputs) + b"".join(pb_bytes(2, o) for o in outputs) + \
        pb_bytes(3, op.lower()) + pb_bytes(4, op) + attrs


def onnx_corpus(out):
    """Hand-written models (the committed fuzz/corpus/onnx/ holds PyTorch's exports)."""
    write(out, "relu", onnx_model([onnx_node("Relu", ["x"], ["y"])], [], [-1, 3], [-1, 3]))
    shape = pb_int(1, 2) + pb_int(2, 7) + pb_bytes(8, "shape") + pb_bytes(9, struct.pack("<2q", 0, -1))
    weight = pb_int(1, 4) + pb_int(1, 6) + pb_int(2, 1) + pb_bytes(8, "w") + \
        pb_bytes(9, struct.pack("<24f", *[0.1 * i for i in range(24)]))
    gemm = pb_bytes(5, pb_bytes(1, "transB") + pb_int(3, 1) + pb_int(20, 2))
    write(out, "reshape_gemm", onnx_model(
        [onnx_node("Reshape", ["x", "shape"], ["flat"]), onnx_node("Gemm", ["flat", "w"], ["y"], gemm)],
        [shape, weight], [-1, 2, 3], [-1, 4]))
    write(out, "opset_9", onnx_model([onnx_node("Relu", ["x"], ["y"])], [], [-1, 3], [-1, 3], opset=9))


def regressions(out_root):
    """Inputs that once crashed a reader go back into the matching corpus."""
    base = os.path.join(FIXTURES, "fuzz-regressions")
    if not os.path.isdir(base):
        return
    for name in sorted(os.listdir(base)):
        target = name.split("-", 1)[0]  # <target>-<description>
        if target in ("idx", "csv", "safetensors", "image", "exif", "onnx"):
            with open(os.path.join(base, name), "rb") as f:
                write(os.path.join(out_root, target), "regression-" + name, f.read())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    idx_corpus(os.path.join(out, "idx"))
    csv_corpus(os.path.join(out, "csv"))
    safetensors_corpus(os.path.join(out, "safetensors"))
    image_corpus(os.path.join(out, "image"))
    exif_corpus(os.path.join(out, "exif"))
    onnx_corpus(os.path.join(out, "onnx"))
    regressions(out)
    for target in ("idx", "csv", "safetensors", "image", "exif", "onnx"):
        print("%s: %d seed files" % (target, len(os.listdir(os.path.join(out, target)))))


if __name__ == "__main__":
    main()
