#!/usr/bin/env python3
"""D2L's Fashion-MNIST recipe in PyTorch, for comparing what cnn-train reaches with what
PyTorch reaches on the same machine, seed after seed.

    python3 scripts/d2l_pytorch.py lenet-bn --seeds 0-9
    python3 scripts/d2l_pytorch.py resnet50 --side 32 --batch 64 --max-steps 200 --limit-test 2000

The networks are those of the golden files, every one of `cnn-train models` with one input
channel and 10 classes: Tests/GoldenTests/Fixtures/models.py (D2L's and the Packt chapter's
own) and torchvision_models.py (torchvision's, which needs torchvision). The recipe is
cnn-train's default, D2L's `train_ch6`: Xavier-uniform weights and biases uniform in
±1/sqrt(fan_in) (PyTorch's default, which torchvision's constructors replace), batch norm at
scale 1 and shift 0, plain SGD (or --momentum, --optimizer adam), 10 epochs or --max-steps,
the training set shuffled each epoch, images scaled to [0,1] and resized with bilinear
interpolation (align_corners=False), test accuracy with the network in evaluation mode after
each epoch and after the last step. Prints one JSON line per epoch on stderr as it goes and
one per seed on stdout (with every step's loss when --max-steps is given). Needs torch and
numpy; nothing else in the project depends on this script.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "Tests", "GoldenTests", "Fixtures"))
import models  # noqa: E402

# Learning rate and batch size of each network: cnn-train's default recipes (`cnn-train models`).
RECIPES = {"lenet": (0.9, 256), "lenet-bn": (1.0, 256), "alexnet": (0.01, 128), "vgg11": (0.05, 128),
           "nin": (0.1, 128), "googlenet": (0.1, 128), "resnet18": (0.05, 256), "resnet34": (0.05, 256),
           "densenet": (0.1, 256), "cifar-cnn": (0.05, 128), "preact-resnet18": (0.05, 256),
           "se-resnet18": (0.05, 256), "xception": (0.05, 128), "resnet50": (0.05, 128),
           "mobilenet-v3-small": (0.05, 128), "mobilenet-v3-large": (0.05, 128),
           "efficientnet-b0": (0.05, 128), "efficientnet-v2-s": (0.05, 128), "inception-v3": (0.05, 128)}
TORCHVISION = ("resnet50", "mobilenet-v3-small", "mobilenet-v3-large", "efficientnet-b0",
               "efficientnet-v2-s", "inception-v3")


def build(name):
    """The golden files' network `name` with one input channel and 10 classes."""
    if name in TORCHVISION:
        import torchvision_models  # imported only when asked for: it needs torchvision
        return torchvision_models.MODELS[name](cin=1, classes=10)
    return models.MODELS[name](cin=1, classes=10) if name == "cifar-cnn" else models.MODELS[name]()


def default_side(name):
    return 96 if name in TORCHVISION else models.INPUT_SIDE[name]


def initialize_like_cnn_train(net):
    """cnn-train's `--initialization xavier`: Xavier-uniform conv and linear weights (PyTorch's
    fans, grouped convolutions included), biases uniform in ±1/sqrt(fan_in), batch norm at 1 and 0."""
    for m in net.modules():
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                bound = 1 / math.sqrt(m.weight[0].numel())
                nn.init.uniform_(m.bias, -bound, bound)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


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


def test_accuracy(net, test_set, args):
    xte, yte = test_set
    net.eval()
    with torch.no_grad():
        right = sum((net(batch_of(xte[i:i + args.batch], args.side)).argmax(1) == yte[i:i + args.batch]).sum().item()
                    for i in range(0, len(yte), args.batch))
    return right / len(yte)


def train(args, seed, train_set, test_set):
    torch.manual_seed(seed)
    net = build(args.model)
    if args.model in TORCHVISION:
        initialize_like_cnn_train(net)  # their constructors set biases to 0 and weights their own way
    else:
        for m in net.modules():  # biases keep PyTorch's default, which is cnn-train's
            if type(m) in (nn.Linear, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
    if args.optimizer == "adam":
        optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    else:
        optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=args.momentum)
    loss_fn = nn.CrossEntropyLoss()
    xtr, ytr = train_set
    test_acc, step_losses, steps, started = [], [], 0, time.time()
    for epoch in range(args.epochs):
        net.train()
        loss_sum = correct = seen = 0.0
        order = torch.randperm(len(ytr))
        for i in range(0, len(order), args.batch):
            rows = order[i:i + args.batch]
            logits = net(batch_of(xtr[rows], args.side))
            loss = loss_fn(logits, ytr[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            step_losses.append(round(loss.item(), 4))
            loss_sum += loss.item() * len(rows)
            correct += (logits.argmax(1) == ytr[rows]).sum().item()
            seen += len(rows)
            if steps == args.max_steps:
                break
        test_acc.append(test_accuracy(net, test_set, args))
        print(json.dumps({"event": "epoch", "model": args.model, "seed": seed, "epoch": epoch + 1, "step": steps,
                          "train_loss": loss_sum / seen, "train_acc": correct / seen, "test_acc": test_acc[-1],
                          "seconds": round(time.time() - started, 1)}), file=sys.stderr, flush=True)
        if steps == args.max_steps:
            break
    result = {"model": args.model, "seed": seed, "side": args.side, "batch": args.batch, "lr": args.lr,
              "optimizer": args.optimizer, "momentum": args.momentum, "steps": steps,
              "train_loss": loss_sum / seen, "train_acc": correct / seen, "test_acc": test_acc,
              "test_examples": len(test_set[1]), "seconds": round(time.time() - started, 1)}
    if args.max_steps:
        result["step_losses"] = step_losses
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(RECIPES))
    parser.add_argument("--seeds", default="0", help="e.g. 0-9 or 0,3,5 (default 0)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, help="default: D2L's for the model")
    parser.add_argument("--batch", type=int, help="default: D2L's for the model")
    parser.add_argument("--side", type=int, help="default: D2L's for the model")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after N optimizer steps (then evaluate)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default 0)")
    parser.add_argument("--limit-train", type=int, default=0, help="only the first N training images")
    parser.add_argument("--limit-test", type=int, default=0, help="only the first N test images")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    lr, batch = RECIPES[args.model]
    args.lr = args.lr or lr
    args.batch = args.batch or batch
    args.side = args.side or default_side(args.model)
    torch.set_num_threads(args.threads)
    train_set = load_split(args.data_dir, "train", args.limit_train)
    test_set = load_split(args.data_dir, "t10k", args.limit_test)
    for seed in seed_list(args.seeds):
        print(json.dumps(train(args, seed, train_set, test_set)), flush=True)


if __name__ == "__main__":
    main()
