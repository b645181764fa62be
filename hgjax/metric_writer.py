"""Scalar and image logging: TensorBoard (tensorboardX) and `metrics.jsonl` side by side.

Only process 0 writes. On resume, rows after the restored step are dropped so the JSONL has
exactly one row per logged step across restarts.
"""

import json
from pathlib import Path

import jax
import numpy as np


class MetricWriter:
  """Writes `{'step': s, name: value, ...}` rows to workdir/metrics.jsonl and TensorBoard."""

  def __init__(self, workdir, resume_step: int | None):
    """resume_step: drop rows after this step (a resumed run); None keeps every row."""
    self.enabled = jax.process_index() == 0
    self.path = Path(workdir) / 'metrics.jsonl'
    self._tb = None
    if not self.enabled:
      return
    Path(workdir).mkdir(parents=True, exist_ok=True)
    if self.path.exists() and resume_step is not None:
      rows = [line for line in self.path.read_text().splitlines() if line.strip()]
      kept = [r for r in rows if json.loads(r)['step'] <= resume_step]
      self.path.write_text(''.join(r + '\n' for r in kept))
    from tensorboardX import SummaryWriter  # heavy import, only where logging happens
    self._tb = SummaryWriter(str(workdir), purge_step=resume_step + 1 if resume_step else None)

  def scalars(self, step: int, values: dict) -> None:
    if not self.enabled:
      return
    row = {'step': int(step)}
    row.update({k: float(v) for k, v in values.items()})
    with self.path.open('a') as f:
      f.write(json.dumps(row) + '\n')
    for k, v in values.items():
      self._tb.add_scalar(k, float(v), int(step))
    self._tb.flush()

  def images(self, step: int, name: str, images: np.ndarray) -> None:
    """images: [N, H, W, 3] uint8."""
    if not self.enabled or len(images) == 0:
      return
    self._tb.add_images(name, np.asarray(images), int(step), dataformats='NHWC')
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir) -> list:
  """Rows of workdir/metrics.jsonl as dicts, in file order."""
  path = Path(workdir) / 'metrics.jsonl'
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
