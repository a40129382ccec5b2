#!/usr/bin/python3
"""Moves checkpoints between ember (safetensors) and PyTorch (a state_dict saved with torch.save).

    ember-to-torch to-torch   model.safetensors model.pt [--optimizer optim.pt]
    ember-to-torch from-torch model.pt model.safetensors [--meta key=value] [--meta key=value ...]

(ember-to-torch is the installed command; from a source tree: /usr/bin/python3 tools/checkpoint_to_torch.py.)

to-torch writes the model's tensors as a state_dict for module.load_state_dict (F32 -> float32, F64 -> float64,
I64 -> int64, so num_batches_tracked stays int64). ember's optimiser entries
("optimizer.momentum_buffer.<param>") are left out of the state_dict; --optimizer saves them as a dict
{param name: momentum buffer}. The file's __metadata__ is printed to stderr and kept with the state_dict as
its attribute `ember_metadata` (a dict of strings, which load_state_dict ignores), so from-torch restores it.

from-torch reads a state_dict (or a dict holding one under "state_dict" or "model_state_dict") and writes a
safetensors file that ember's io::load_checkpoint reads: float32 -> F32, float64 -> F64, int64 -> I64. Its
__metadata__: the state_dict's `ember_metadata` (a file that came from to-torch) or the string entries of a
"metadata" dict next to "state_dict", then "format": "pt", then each --meta key=value (repeat --meta, or give
several after one; later ones win).

Needs only torch and numpy (Debian's python3-torch and python3-numpy). `cmake --install` puts this file in
<prefix>/share/ember/ with a launcher, <prefix>/bin/ember-to-torch, that takes the same arguments.
"""
import argparse
import collections
import json
import os
import struct
import sys
import tempfile

import numpy as np
import torch

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
          "F16": np.dtype("<f2"), "U8": np.dtype("u1"), "I8": np.dtype("i1"), "BOOL": np.dtype("?")}
OPTIMIZER_PREFIX = "optimizer.momentum_buffer."


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        sys.exit("%s: shorter than the 8-byte header length" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        sys.exit("%s: header length %d runs past the end of the file" % (path, n))
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    tensors = collections.OrderedDict()
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        if e["dtype"] not in DTYPES:
            sys.exit("%s: tensor %s has unsupported dtype %s" % (path, name, e["dtype"]))
        begin, end = e["data_offsets"]
        if not 0 <= begin <= end <= len(data):
            sys.exit("%s: tensor %s has data_offsets outside the data section" % (path, name))
        arr = np.frombuffer(data[begin:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        tensors[name] = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=True))
    return tensors, meta


def write_safetensors(path, tensors, meta):
    header = collections.OrderedDict()
    if meta:
        header["__metadata__"] = {str(k): str(v) for k, v in meta.items()}
    chunks = []
    offset = 0
    names = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64"}
    for name, t in tensors.items():
        arr = t.detach().cpu().contiguous().numpy()
        if arr.dtype not in names:
            sys.exit("tensor %s has dtype %s; ember reads float32, float64 and int64" % (name, arr.dtype))
        le = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": names[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(le)]}
        chunks.append(le)
        offset += len(le)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    # Same atomic write as ember: temporary file in the target's directory, fsync, rename.
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would surprise; give the file the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_torch(args):
    tensors, meta = read_safetensors(args.input)
    state = collections.OrderedDict((k, v) for k, v in tensors.items() if not k.startswith(OPTIMIZER_PREFIX))
    optim = {k[len(OPTIMIZER_PREFIX):]: v for k, v in tensors.items() if k.startswith(OPTIMIZER_PREFIX)}
    state.ember_metadata = dict(meta)  # pickled with the OrderedDict; load_state_dict does not look at it
    torch.save(state, args.output)
    if args.optimizer:
        torch.save(optim, args.optimizer)
    for k, v in sorted(meta.items()):
        print("%s: %s" % (k, v), file=sys.stderr)


def from_torch(args):
    try:  # torch >= 2.6 loads weights only by default, which drops the state_dict's ember_metadata attribute
        obj = torch.load(args.input, map_location="cpu", weights_only=False)
    except TypeError:  # torch < 1.13 has no weights_only
        obj = torch.load(args.input, map_location="cpu")
    meta = {}
    if isinstance(obj, dict) and isinstance(obj.get("metadata"), dict):
        meta.update({str(k): str(v) for k, v in obj["metadata"].items()})
    for key in ("state_dict", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        sys.exit("%s: not a state_dict (a mapping from names to tensors)" % args.input)
    meta.update({str(k): str(v) for k, v in (getattr(obj, "ember_metadata", None) or {}).items()})
    meta["format"] = "pt"
    for kv in args.meta or []:
        k, eq, v = kv.partition("=")
        if not eq or not k:
            sys.exit("--meta %s: expected key=value" % kv)
        meta[k] = v
    write_safetensors(args.output, obj, meta)


def main():
    # The usage line names the command as the user typed it: the installed launcher sets EMBER_PROG.
    p = argparse.ArgumentParser(prog=os.environ.get("EMBER_PROG") or os.path.basename(sys.argv[0]),
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("to-torch", help="safetensors -> state_dict .pt")
    a.add_argument("input")
    a.add_argument("output")
    a.add_argument("--optimizer", help="also save the momentum buffers here")
    a.set_defaults(run=to_torch)
    b = sub.add_parser("from-torch", help="state_dict .pt -> safetensors")
    b.add_argument("input")
    b.add_argument("output")
    b.add_argument("--meta", action="extend", nargs="+", metavar="KEY=VALUE",
                   help="an entry for __metadata__ (repeatable); kept metadata is overridden")
    b.set_defaults(run=from_torch)
    args = p.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
