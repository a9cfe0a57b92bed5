#!/usr/bin/env python3
"""D2L's Fashion-MNIST recipe in PyTorch, for comparing what cnn-train reaches with what
PyTorch reaches on the same machine, seed after seed.

    python3 scripts/d2l_pytorch.py lenet-bn --seeds 0-9

The networks are those of the golden files (Tests/GoldenTests/Fixtures/models.py); the
recipe is D2L's `train_ch6`: Xavier-uniform weights, plain SGD, 10 epochs, the training
set shuffled each epoch, images scaled to [0,1] and resized with bilinear interpolation
(align_corners=False), test accuracy with the network in evaluation mode after each
epoch. Prints one JSON line per seed. Needs torch and numpy; nothing else in the project
depends on this script.
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "GoldenTests", "Fixtures"))
import models  # noqa: E402

# D2L's learning rate and batch size for each network (cnn-train's default recipes).
RECIPES = {"lenet": (0.9, 256), "lenet-bn": (1.0, 256), "alexnet": (0.01, 128), "vgg11": (0.05, 128),
           "nin": (0.1, 128), "googlenet": (0.1, 128), "resnet18": (0.05, 256), "resnet34": (0.05, 256),
           "densenet": (0.1, 256)}


def read_idx(path, header):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)


def load_split(data_dir, prefix, limit):
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), 16).reshape(-1, 1, 28, 28)
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), 8).astype(np.int64)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.copy())


def batch_of(images, side):
    x = images.float() / 255
    return x if side == 28 else F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


def seed_list(text):
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


def train(args, seed, train_set, test_set):
    torch.manual_seed(seed)
    net = models.MODELS[args.model]()
    for m in net.modules():
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
    optimizer = torch.optim.SGD(net.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    (xtr, ytr), (xte, yte) = train_set, test_set
    test_acc, started = [], time.time()
    for _ in range(args.epochs):
        net.train()
        loss_sum = correct = 0.0
        order = torch.randperm(len(ytr))
        for i in range(0, len(order), args.batch):
            rows = order[i:i + args.batch]
            logits = net(batch_of(xtr[rows], args.side))
            loss = loss_fn(logits, ytr[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(rows)
            correct += (logits.argmax(1) == ytr[rows]).sum().item()
        net.eval()
        with torch.no_grad():
            right = sum((net(batch_of(xte[i:i + args.batch], args.side)).argmax(1) == yte[i:i + args.batch]).sum().item()
                        for i in range(0, len(yte), args.batch))
        test_acc.append(right / len(yte))
    return {"model": args.model, "seed": seed, "train_loss": loss_sum / len(ytr), "train_acc": correct / len(ytr),
            "test_acc": test_acc, "seconds": round(time.time() - started, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(models.MODELS))
    parser.add_argument("--seeds", default="0", help="e.g. 0-9 or 0,3,5 (default 0)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, help="default: D2L's for the model")
    parser.add_argument("--batch", type=int, help="default: D2L's for the model")
    parser.add_argument("--side", type=int, help="default: D2L's for the model")
    parser.add_argument("--limit-train", type=int, default=0, help="only the first N training images")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    lr, batch = RECIPES[args.model]
    args.lr = args.lr or lr
    args.batch = args.batch or batch
    args.side = args.side or models.INPUT_SIDE[args.model]
    torch.set_num_threads(args.threads)
    train_set = load_split(args.data_dir, "train", args.limit_train)
    test_set = load_split(args.data_dir, "t10k", 0)
    for seed in seed_list(args.seeds):
        print(json.dumps(train(args, seed, train_set, test_set)), flush=True)


if __name__ == "__main__":
    main()
