#!/usr/bin/env python3
"""Convert between a cnn-train checkpoint (HDF5) and a PyTorch state_dict (.pt).

    python3 scripts/convert_checkpoint.py from-pytorch resnet50-11ad3fa6.pth resnet50.h5 --model resnet50
    python3 scripts/convert_checkpoint.py to-pytorch ckpt-step-000000100.h5 model.pt

The HDF5 side is the /model group (one dataset per state_dict key, float32 in PyTorch
layout, num_batches_tracked int64) with cnn-train's checksum, which `cnn-train train
--init-from` and `cnn-train eval --init-from` read.

from-pytorch reads a state_dict saved by torch.save (torchvision's pretrained files
included) without PyTorch: it opens the archive itself and accepts only tensors, numbers,
strings and containers in its pickle, so that a file cannot run code. It also takes a
dict holding the state_dict under "state_dict" or "model", strips DistributedDataParallel's
"module." prefixes, drops what cnn-train's network does not have (Inception v3's
auxiliary head), and adds num_batches_tracked where older files lack it. A torchvision
ImageNet head (1000 classes, 3 input channels) is kept: train from it with
`--replace-head` (and `--channels 3` on grayscale data).

Needs numpy and h5py; to-pytorch also needs torch. Nothing else in the project depends
on this script.
"""
import argparse
import io
import os
import pickle
import sys
import zipfile
import zlib

import h5py
import numpy as np

# Keys of torchvision's networks that cnn-train's versions do not have, by model.
NOT_IN_CNN_TRAIN = {"inception-v3": ("AuxLogits.",)}

# torch storage classes (torch.save's zip format, PyTorch >= 1.6) and their element types.
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": None,  # widened by hand below: numpy has no bfloat16
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class ConversionError(Exception):
    pass


def _storage_array(raw, type_name, byteorder):
    if type_name == "BFloat16Storage":
        halves = np.frombuffer(raw, dtype=byteorder + "u2")
        return (halves.astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype=np.dtype(STORAGE_DTYPES[type_name]).newbyteorder(byteorder))


def _rebuild_tensor(storage, offset, size, stride, *_):
    """torch._utils._rebuild_tensor_v2 for numpy: the view of `storage` that the tensor was."""
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride))
    return np.array(view)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles torch.save's data.pkl into numpy arrays, refusing every other object."""

    def __init__(self, data, archive, prefix, byteorder):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.byteorder = archive, prefix, byteorder
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            import collections
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *_: data
        if module == "torch" and name in STORAGE_DTYPES:
            return name  # a storage type, resolved in persistent_load
        raise ConversionError(f"holds a {module}.{name}, not only tensors (refused: unpickling it could run code)")

    def persistent_load(self, pid):
        kind, type_name, key, _location, _count = pid
        if kind != "storage" or type_name not in STORAGE_DTYPES:
            raise ConversionError(f"holds an unsupported storage {pid[:2]}")
        if key not in self.storages:
            self.storages[key] = _storage_array(self.archive.read(f"{self.prefix}data/{key}"), type_name, self.byteorder)
        return self.storages[key]


def read_state_dict(path):
    """The tensors of a torch.save file as numpy arrays, by key."""
    if not zipfile.is_zipfile(path):
        raise ConversionError("is not a torch.save zip archive (files from PyTorch before 1.6 are not read; "
                              "re-save it with torch.save(torch.load(f), g) and convert g)")
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise ConversionError("has no data.pkl at the top of its archive")
        prefix = pickles[0][: -len("data.pkl")]
        names = set(archive.namelist())
        byteorder = archive.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        data = archive.read(pickles[0])
        state = _StateDictUnpickler(data, archive, prefix, "<" if byteorder == "little" else ">").load()
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ConversionError("is not a state_dict (a dict of tensors by key)")
    return state


def adapt_to_cnn_train(state, model):
    """The state_dict as cnn-train's network has it, and lines saying what changed."""
    notes = []
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append("stripped the 'module.' prefix of DistributedDataParallel")
    dropped = [k for k in state if k.startswith(NOT_IN_CNN_TRAIN.get(model, ()))]
    if dropped:
        state = {k: v for k, v in state.items() if k not in dropped}
        notes.append(f"dropped {len(dropped)} tensors cnn-train's {model} does not have ({dropped[0]}, ...)")
    added = []
    for key in list(state):
        if key.endswith(".running_mean"):
            counter = key[: -len("running_mean")] + "num_batches_tracked"
            if counter not in state:
                state[counter] = np.zeros((), np.int64)
                added.append(counter)
    if added:
        notes.append(f"added num_batches_tracked = 0 to {len(added)} batch norms (the file had none)")
    return state, notes


def write_checksummed(path, model, state):
    """Writes /model in cnn-train's checksummed layout (Sources/HDF5/FileChecksum.swift):
    a 512-byte header in HDF5's user block, then HDF5, then a table of dataset extents."""
    header_size = 512
    temporary = path + ".partial"
    with h5py.File(temporary, "w", userblock_size=header_size) as f:
        f.attrs["model"] = model
        group = f.create_group("model")
        for key, value in state.items():
            group.create_dataset(key, data=value.astype(np.int64 if key.endswith("num_batches_tracked") else np.float32))
        f.flush()
        extents = [(group[k].id.get_offset(), group[k].id.get_storage_size(), f"/model/{k}")
                   for k in state if group[k].id.get_offset() is not None]
    with open(temporary, "rb") as f:
        body = bytearray(f.read())
    if len(body) < header_size or any(body[:header_size]):
        raise ConversionError(f"{temporary}: h5py did not leave the {header_size}-byte user block empty")
    table_offset = len(body)
    table = "".join(f"{o} {n} {zlib.crc32(body[o:o + n]):08x} {name}\n" for o, n, name in sorted(extents)).encode()
    body += table
    header = (f"cnn-train checksummed HDF5 1\nsize {len(body)}\ncrc32 {zlib.crc32(body[header_size:]):08x}\n"
              f"table {table_offset} {len(table)} {zlib.crc32(table):08x}\n").encode()
    body[:header_size] = header + bytes(header_size - len(header))
    with open(temporary, "wb") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def from_pytorch(source, target, model):
    try:
        state = read_state_dict(source)
    except (ConversionError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as error:
        sys.exit(f"{source}: {error}")
    state, notes = adapt_to_cnn_train(state, model)
    write_checksummed(target, model, state)
    for note in notes:
        print(f"{source}: {note}")
    print(f"{target}: {len(state)} tensors of {model}")


def to_pytorch(source, target):
    import torch
    with h5py.File(source, "r") as f:
        if "model" not in f:
            sys.exit(f"{source}: no /model group")
        state = {k: torch.from_numpy(np.array(f["model"][k][()])) for k in f["model"]}
        model = f.attrs.get("model")
    torch.save(state, target)
    print(f"{target}: {len(state)} tensors" + (f" of {model}" if model is not None else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="direction", required=True)
    a = sub.add_parser("to-pytorch", help="checkpoint or weights (.h5) to a state_dict (.pt); needs torch")
    a.add_argument("source")
    a.add_argument("target")
    b = sub.add_parser("from-pytorch", help="a state_dict (.pt, .pth) to weights (.h5) for --init-from")
    b.add_argument("source")
    b.add_argument("target")
    b.add_argument("--model", required=True, help="the cnn-train model name, e.g. resnet50 (see `cnn-train models`)")
    args = parser.parse_args()
    if args.direction == "to-pytorch":
        to_pytorch(args.source, args.target)
    else:
        from_pytorch(args.source, args.target, args.model)


if __name__ == "__main__":
    main()
