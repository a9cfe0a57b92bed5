#!/usr/bin/env python3
"""PyTorch's CPU training step on the reference networks: the yardstick for `cnn-train bench`.

Times what `cnn-train bench` times, on random data: forward, mean cross-entropy, backward,
plain SGD update (learning rate 0.01). Prints one JSON line with images/s and peak resident
memory.
Needs torch (a venv outside the project: pip install /opt/wheels/torch-*.whl); torchvision
(pip install --no-deps "torchvision==0.28.*" pillow) adds its networks (resnet50, ...).

    python3 scripts/bench_pytorch.py resnet18 --batch 64 --threads 2
"""
import argparse, importlib.util, json, os, resource, time

import torch
import torch.nn.functional as F

fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "GoldenTests", "Fixtures")


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(fixtures, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The reference networks: D2L's and the Packt chapter's own (models.py), and torchvision's
# (torchvision_models.py) where torchvision is installed.
models = load("models")
MODELS, SIDES = dict(models.MODELS), dict(models.INPUT_SIDE)
try:
    torchvision_models = load("torchvision_models")
    MODELS.update(torchvision_models.MODELS)
    SIDES.update(torchvision_models.INPUT_SIDE)
except ImportError:
    pass

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model", choices=sorted(MODELS))
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--side", type=int, help="input side (default: the model's D2L side)")
parser.add_argument("--steps", type=int, default=5, help="timed steps (at least; see --min-seconds)")
parser.add_argument("--min-seconds", type=float, default=1.0,
                    help="keep timing steps past --steps until they add up to this many seconds")
parser.add_argument("--warmup", type=int, default=1,
                    help="untimed steps first; when at least one, warm-up goes on for half a second")
parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
args = parser.parse_args()

if args.threads:
    torch.set_num_threads(args.threads)
torch.manual_seed(0)
channels = 1  # as `cnn-train bench` builds every network
side = args.side or SIDES[args.model]
net = MODELS[args.model](cin=channels, classes=10)
net.train()
optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
x = torch.rand(args.batch, channels, side, side)
labels = torch.randint(0, 10, (args.batch,))


def step():
    optimizer.zero_grad(set_to_none=False)
    F.cross_entropy(net(x), labels).backward()
    optimizer.step()


# The same rules as `cnn-train bench`: warm-up for at least half a second, then time at
# least --steps steps and at least --min-seconds of them.
start = time.perf_counter()
for _ in range(args.warmup):
    step()
if args.warmup:
    while time.perf_counter() - start < 0.5:
        step()
start = time.perf_counter()
steps = 0
while steps < args.steps or time.perf_counter() - start < args.min_seconds:
    step()
    steps += 1
seconds = (time.perf_counter() - start) / steps
print(json.dumps({"model": args.model, "batch": args.batch, "side": side, "threads": torch.get_num_threads(),
                  "torch": torch.__version__, "seconds_per_step": seconds, "images_per_sec": args.batch / seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 * 1.048576}))
