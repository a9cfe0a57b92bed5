#!/usr/bin/env python3
"""Writes the fixture of PretrainedWeightsTests: torchvision's mobilenet_v3_small as
torchvision builds it (randomly initialised, ImageNet head: 3 input channels, 1000 classes),
saved with torch.save as a pretrained file is, and its logits on two images.

    /work/venv/bin/python Tests/GoldenTests/Fixtures/pretrained/make_pretrained.py

- mobilenet-v3-small.pt: the state_dict. Convolution and linear weights are stored in
  float16 (half the fixture's size; cnn-train's converter widens them), batch-norm tensors
  in float32, num_batches_tracked in int64; one weight is a transposed (non-contiguous)
  view, as slicing can leave them. The running statistics come from three training-mode
  passes over random images, so evaluation-mode batch norm is not the identity.
- mobilenet-v3-small.h5: `x` [2, 3, 64, 64] float32 images, `logits` [2, 1000], torchvision's
  evaluation-mode output computed in float64 from exactly the stored weights.
Seed 20261123. Needs torch, torchvision (imported as ../torchvision_models.py does), h5py.
"""
import os
import sys
import types

sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import h5py  # noqa: E402
import torch  # noqa: E402
from torchvision import models  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(20261123)
net = models.mobilenet_v3_small()
batch_norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
for m in batch_norms:
    m.momentum = None  # cumulative average over the passes below
net.train()
with torch.no_grad():
    for _ in range(3):
        net(torch.rand(8, 3, 64, 64))
for m in batch_norms:
    m.momentum = 0.01

state = {}
for key, value in net.state_dict().items():
    if value.dim() >= 2:
        value = value.half()
    state[key] = value
first = state["features.0.0.weight"]
state["features.0.0.weight"] = first.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
assert not state["features.0.0.weight"].is_contiguous()
torch.save(state, os.path.join(here, "mobilenet-v3-small.pt"))

reference = models.mobilenet_v3_small().double()
reference.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in state.items()})
reference.eval()
x = torch.rand(2, 3, 64, 64)
with torch.no_grad():
    logits = reference(x.double())
with h5py.File(os.path.join(here, "mobilenet-v3-small.h5"), "w") as f:
    f["x"] = x.numpy()
    f["logits"] = logits.numpy()
    f.attrs["seed"] = 20261123
print("logits", logits.shape, float(logits.abs().max()))
