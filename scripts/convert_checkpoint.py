#!/usr/bin/env python3
"""Convert between a cnn-train checkpoint (HDF5) and a PyTorch state_dict (.pt).

    python3 scripts/convert_checkpoint.py to-pytorch ckpt-step-000000100.h5 model.pt
    python3 scripts/convert_checkpoint.py from-pytorch model.pt weights.h5 --model resnet18

The HDF5 side is the /model group (one dataset per state_dict key, float32 in PyTorch
layout, num_batches_tracked int64), which `cnn-train train --init-from` and
`cnn-train eval --init-from` read. Needs h5py and torch; nothing else in the project
depends on this script.
"""
import argparse
import sys

import h5py
import numpy as np
import torch


def to_pytorch(source, target):
    with h5py.File(source, "r") as f:
        if "model" not in f:
            sys.exit(f"{source}: no /model group")
        state = {k: torch.from_numpy(np.array(f["model"][k][()])) for k in f["model"]}
        model = f.attrs.get("model")
    torch.save(state, target)
    print(f"{target}: {len(state)} tensors" + (f" of {model}" if model is not None else ""))


def from_pytorch(source, target, model):
    state = torch.load(source, map_location="cpu")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    with h5py.File(target, "w") as f:
        f.attrs["model"] = model
        group = f.create_group("model")
        for key, value in state.items():
            array = value.detach().cpu().numpy()
            group[key] = array.astype(np.int64 if key.endswith("num_batches_tracked") else np.float32)
    print(f"{target}: {len(state)} tensors of {model}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="direction", required=True)
    a = sub.add_parser("to-pytorch", help="checkpoint or weights (.h5) to a state_dict (.pt)")
    a.add_argument("source")
    a.add_argument("target")
    b = sub.add_parser("from-pytorch", help="a state_dict (.pt) to weights (.h5) for --init-from")
    b.add_argument("source")
    b.add_argument("target")
    b.add_argument("--model", required=True, help="the cnn-train model name, e.g. resnet18")
    args = parser.parse_args()
    if args.direction == "to-pytorch":
        to_pytorch(args.source, args.target)
    else:
        from_pytorch(args.source, args.target, args.model)


if __name__ == "__main__":
    main()
