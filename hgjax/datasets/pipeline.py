"""grain input pipelines: training iterators of numpy batches, checkpointable.

Every source is a `grain.MapDataset` of examples (decode + augment, deterministic per index);
the training pipeline shuffles it with the config seed, repeats, gives process p block p of
every global batch, batches and prefetches with host threads. The iterator's state is saved
in checkpoints, so a resumed run sees exactly the batches an uninterrupted run would have seen.

Augmentation varies by epoch: a source's `random_map` seeds element i from (seed, i), and
element g of `source.shuffle(seed).repeat()` in epoch e = g // N (N stored examples) reads
source element e * N + perm_e(g mod N) (grain's shuffle draws a new permutation per epoch and
passes the epoch on; the source reads stored example i mod N). So stored example j is
augmented from (seed, e * N + j): a new augmentation in every epoch, the same in every run and
on every process (tests/test_pipeline_epochs.py).

Batch layout (numpy): image uint8 [B, H, W, 3]; keypoints float32 [B, P, K, 3] (x, y, v) in
input pixels; for multi-person data also mask float32 [B, h, w] (1 = supervise).
"""

import grain

from hgjax import datasets


def train_source(config) -> grain.MapDataset:
  """The (unshuffled, unbatched) training examples of `config.dataset`."""
  return datasets.dataset_for(config).train_source(config)


def train_iterator(config, process_index: int, process_count: int):
  """Infinite, checkpointable iterator of this process's share of each global batch."""
  batch = config.train.batch_size
  if batch % process_count:
    raise ValueError(f'config.train.batch_size={batch} is not divisible by the '
                     f'{process_count} processes')
  local = batch // process_count
  # One global permutation per epoch; process p reads block p of every global batch, so the
  # assembled global batch is the one a single process would read, in the same order.
  # reseed_each_epoch (grain's default, explicit here): a new permutation and a new
  # augmentation of every example in each epoch (see the module docstring).
  stream = train_source(config).shuffle(seed=config.seed).repeat(reseed_each_epoch=True)

  def global_example(i):
    return stream[(i // local) * batch + process_index * local + i % local]

  ds = grain.MapDataset.range(len(stream) // process_count).map(global_example)
  ds = ds.batch(local, drop_remainder=True)
  options = grain.ReadOptions(num_threads=config.train.num_workers,
                              prefetch_buffer_size=config.train.prefetch)
  return iter(ds.to_iter_dataset(options))
