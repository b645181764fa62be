"""Pictures for TensorBoard and `hgjax.predict`: skeletons drawn on images, heatmap panels."""

import cv2
import numpy as np


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, color, edges) -> np.ndarray:
  """Draws keypoints [K, 2 or 3] (pixels; a third column <= 0 hides a joint) on a copy."""
  out = np.ascontiguousarray(image.copy())
  kp = np.asarray(keypoints, np.float32)
  shown = kp[:, 2] > 0 if kp.shape[1] > 2 else np.ones(len(kp), bool)
  r = max(1, out.shape[0] // 128)
  for a, b in edges:
    if shown[a] and shown[b]:
      cv2.line(out, tuple(int(round(v)) for v in kp[a, :2]),
               tuple(int(round(v)) for v in kp[b, :2]), color, r, cv2.LINE_AA)
  for j in np.flatnonzero(shown):
    cv2.circle(out, tuple(int(round(v)) for v in kp[j, :2]), r + 1, color, -1, cv2.LINE_AA)
  return out


def heatmap_panel(heatmaps: np.ndarray, size: int) -> np.ndarray:
  """heatmaps [h, w, K] -> uint8 [size, size, 3]: max over joints, colour-mapped."""
  m = np.clip(heatmaps.max(axis=-1), 0, 1)
  m = cv2.resize((m * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
  return cv2.applyColorMap(m, cv2.COLORMAP_JET)[..., ::-1]
