"""Writes tests/data/hhr_unseen.npz: the OFFICIAL HigherHRNet network in a shape the shared
fixture does not have (widths 4/8/12/16, modules 1/2/1, blocks 2/1/3, two deconvs of kernel 3
with 8 and 6 channels, 2 basic blocks each, concatenation before the first only), random
weights and BatchNorm statistics, and its float32 outputs on a non-square 2x64x96 input.

  /path/to/torch-venv/bin/python tests/data/make_hhr_fixture.py OFFICIAL_MODEL_FILE

OFFICIAL_MODEL_FILE: lib/models/pose_higher_hrnet.py of HRNet/HigherHRNet-Human-Pose-Estimation
(commit aa23881), imported from there, never copied here. Keys: state_dict/<name> (PyTorch
layouts), input_nhwc, output{i}_nchw.
"""

import importlib.util
import sys

import numpy as np
import torch


class Node(dict):
  """The yacs CfgNode access the official model uses: cfg['A']['B'] and cfg.A.B."""

  def __getattr__(self, name):
    return self[name]


def stage(modules, branches, blocks, widths):
  return Node(NUM_MODULES=modules, NUM_BRANCHES=branches, BLOCK='BASIC',
              NUM_BLOCKS=[blocks] * branches, NUM_CHANNELS=widths, FUSE_METHOD='SUM')


CFG = Node(
    MODEL=Node(NUM_JOINTS=17, TAG_PER_JOINT=True, EXTRA=Node(
        FINAL_CONV_KERNEL=1, PRETRAINED_LAYERS=['*'],
        STAGE2=stage(1, 2, 2, [4, 8]), STAGE3=stage(2, 3, 1, [4, 8, 12]),
        STAGE4=stage(1, 4, 3, [4, 8, 12, 16]),
        DECONV=Node(NUM_DECONVS=2, NUM_CHANNELS=[8, 6], KERNEL_SIZE=[3, 3],
                    NUM_BASIC_BLOCKS=2, CAT_OUTPUT=[True, False])),
               INIT_WEIGHTS=False),
    LOSS=Node(WITH_AE_LOSS=[True, False, False]))


def main():
  spec = importlib.util.spec_from_file_location('pose_higher_hrnet', sys.argv[1])
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  torch.manual_seed(0)
  net = module.PoseHigherResolutionNet(CFG)
  gen = torch.Generator().manual_seed(1)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5, generator=gen)
        m.bias.uniform_(-0.25, 0.25, generator=gen)
        m.running_mean.uniform_(-0.5, 0.5, generator=gen)
        m.running_var.uniform_(0.5, 2.0, generator=gen)
  net.eval()
  torch.set_num_threads(1)
  x = torch.randn(2, 3, 64, 96, generator=gen)
  with torch.no_grad():
    outputs = net(x)
  out = {f'state_dict/{k}': v.numpy() for k, v in net.state_dict().items()}
  out['input_nhwc'] = x.permute(0, 2, 3, 1).numpy()
  for i, o in enumerate(outputs):
    out[f'output{i}_nchw'] = o.numpy()
    print(i, tuple(o.shape))
  np.savez_compressed(sys.argv[2] if len(sys.argv) > 2 else 'tests/data/hhr_unseen.npz', **out)


if __name__ == '__main__':
  main()
