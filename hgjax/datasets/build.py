"""Builds the tfds datasets hgjax trains on (array_record files, no TensorFlow needed).

  python -m hgjax.datasets.build mpii --manual_dir DIR [--data_dir data]
  python -m hgjax.datasets.build coco --manual_dir DIR [--data_dir data]
  python -m hgjax.datasets.build synthetic [--num_train 1000 --num_validation 200]

Read them back with `tfds.data_source('hgjax_mpii', split='train', data_dir=...)`. Bad source
examples stop the build with a message naming file, field and value, or, with
`--on_bad_example=skip`, are left out and counted in the closing report. See data/README.md.
"""

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import tensorflow_datasets as tfds

from hgjax.datasets import bad_input
from hgjax.datasets import synthetic


class HgjaxSynthetic(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Procedural single-person examples (`synthetic.person_example`) as a tfds dataset."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'First release.'}

  def __init__(self, *, num_train: int = 1000, num_validation: int = 200,
               image_size: int = 128, seed: int = 0, **kwargs):
    self.counts = {'train': num_train, 'validation': num_validation}
    self.image_size, self.seed = image_size, seed
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    tensor = tfds.features.Tensor
    return tfds.core.DatasetInfo(
        builder=self,
        description='Procedural synthetic people with the 16 MPII joints (image = PNG).',
        features=tfds.features.FeaturesDict({
            'image': tensor(shape=(), dtype=np.object_),
            'keypoints': tensor(shape=(16, 3), dtype=np.float32),
            'head_box': tensor(shape=(2, 2), dtype=np.float32),
            'center': tensor(shape=(2,), dtype=np.float32),
            'scale': tensor(shape=(), dtype=np.float32),
            'index': tensor(shape=(), dtype=np.int64),
        }),
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(split, n) for split, n in self.counts.items() if n}

  def _generate_examples(self, split: str, count: int):
    for i in range(count):
      ex = synthetic.person_example(self.seed, split, i, self.image_size)
      png = cv2.imencode('.png', cv2.cvtColor(ex['image'], cv2.COLOR_RGB2BGR))[1].tobytes()
      yield i, {'image': png, 'keypoints': ex['keypoints'], 'head_box': ex['head_box'],
                'center': ex['center'], 'scale': ex['scale'], 'index': i}


def make_builder(args):
  """The tfds builder for the parsed command line."""
  common = dict(data_dir=args.data_dir, file_format='array_record')
  if args.dataset == 'mpii':
    from hgjax.datasets import mpii
    return mpii.HgjaxMpii(on_bad_example=args.on_bad_example, crop_margin=args.crop_margin,
                          crop_pixels=args.crop_pixels, num_workers=args.num_workers, **common)
  if args.dataset == 'coco':
    from hgjax.datasets import coco
    return coco.HgjaxCoco(on_bad_example=args.on_bad_example, num_workers=args.num_workers,
                          **common)
  return HgjaxSynthetic(num_train=args.num_train, num_validation=args.num_validation,
                        image_size=args.image_size, seed=args.seed, **common)


def parse_args(argv):
  p = argparse.ArgumentParser(prog='python -m hgjax.datasets.build', description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('dataset', choices=('mpii', 'coco', 'synthetic'))
  p.add_argument('--manual_dir', help='the downloaded dataset (layouts in data/README.md)')
  p.add_argument('--data_dir', default='data', help='tfds data_dir to write (default: data)')
  p.add_argument('--on_bad_example', default='error', choices=bad_input.POLICIES)
  p.add_argument('--overwrite', action='store_true', help='rebuild an existing dataset')
  p.add_argument('--num_workers', type=int, default=0, help='decoding threads (0 = all cores)')
  p.add_argument('--crop_margin', type=float, default=1.75,
                 help='mpii: stored square / hourglass box side (<= 0: whole images)')
  p.add_argument('--crop_pixels', type=int, default=256,
                 help='mpii: at most this many px per hourglass box side (0: full resolution)')
  p.add_argument('--num_train', type=int, default=1000, help='synthetic: train examples')
  p.add_argument('--num_validation', type=int, default=200, help='synthetic: validation')
  p.add_argument('--image_size', type=int, default=128, help='synthetic: image side in px')
  p.add_argument('--seed', type=int, default=0, help='synthetic: generator seed')
  args = p.parse_args(argv)
  if args.dataset != 'synthetic':
    if not args.manual_dir:
      p.error(f'{args.dataset} needs --manual_dir (the downloaded files, see data/README.md)')
    if not Path(args.manual_dir).is_dir():
      p.error(f'--manual_dir {args.manual_dir} is not a directory')
  return args


def main(argv=None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
  builder = make_builder(args)
  mode = (tfds.download.GenerateMode.FORCE_REDOWNLOAD if args.overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=args.manual_dir, download_mode=mode))
  sizes = ', '.join(f'{name}: {info.num_examples}' for name, info in builder.info.splits.items())
  print(f'{builder.name} written to {builder.data_dir} ({sizes})')
  for note, n in sorted(getattr(builder, 'notes', {}).items()):
    print(f'note: {n} x {note}')
  bad = getattr(builder, 'bad', None)
  if bad is not None and bad.report():
    print(bad.report())
  return 0


if __name__ == '__main__':
  sys.exit(main())
