"""Articulated 2D figures for the synthetic pose data: a planar kinematic skeleton and its drawing.

A figure is sampled directly in image pixels (0-based, pixel centres at integers, y down). Its
joints are the 16 MPII joints in MPII order followed by nose, l_eye, r_eye, l_ear, r_ear
(`FIGURE_JOINTS`, 21 joints); `COCO_FROM_FIGURE` picks the 17 COCO joints from them.

Appearance encodes the body side: the person's left limbs are drawn in warm hues (red to
yellow), the right limbs in cool hues (cyan to blue), so left/right is decidable from the image,
as it is on real people from context. The head shows a face (eyes, nose) when turned towards the
camera and only hair when turned away.
"""

import colorsys
import math

import cv2
import numpy as np

from hgjax import skeleton

FIGURE_JOINTS = skeleton.MPII_JOINTS + ('nose', 'l_eye', 'r_eye', 'l_ear', 'r_ear')
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 16, 17, 18, 19, 20
COCO_FROM_FIGURE = np.array([16, 17, 18, 19, 20, 13, 12, 14, 11, 15, 10, 3, 2, 4, 1, 5, 0])
LEFT_HUES = (-0.04, 0.14)   # hue range (fraction of the colour circle): red, orange, yellow
RIGHT_HUES = (0.50, 0.68)   # cyan, azure, blue
# Head-box width / head-segment length. The diagonal of the axis-aligned box of an ellipse does
# not depend on its rotation; with this width 0.6 x diagonal = 0.75 x segment length, the
# relation the MPII validation head boxes satisfy (measured on the shared MPII subset).
HEAD_WIDTH = 0.75

SHIFT = 4   # cv2 fixed-point bits: shapes are placed at 1/16 px, so pixels follow float labels
_ONE = float(1 << SHIFT)
_SKIN = ((255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36),
         (92, 58, 30))
# Lengths and widths as fractions of the standing height (head top to sole), after
# anthropometric tables (Drillis & Contini) but with the head segment, neck and shoulder width
# of MPII's annotation convention (medians on the shared MPII subset: head segment / torso 0.57,
# / thigh 0.70, / upper arm 1.03, / thorax-to-neck 4.4), which PCKh thresholds are tied to.
_LENGTH = dict(head=0.165, neck=0.038, torso=0.27, upper_arm=0.18, forearm=0.15, hand=0.07,
               thigh=0.245, shin=0.245, foot=0.10, shoulder=0.10, hip=0.075)
_WIDTH = dict(upper_arm=0.06, forearm=0.05, hand=0.045, thigh=0.09, shin=0.07, foot=0.05,
              neck=0.06, shoulder=0.035, hip=0.05, depth=0.08)
_L_HAND, _R_HAND, _L_FOOT, _R_FOOT = 21, 22, 23, 24   # extra points after the 21 joints
# (side sign, hue range, shoulder, elbow, wrist, hip, knee, ankle, hand end, foot end)
_SIDES = ((1, LEFT_HUES, 13, 14, 15, 3, 4, 5, _L_HAND, _L_FOOT),
          (-1, RIGHT_HUES, 12, 11, 10, 2, 1, 0, _R_HAND, _R_FOOT))


class Draws:
  """Scalar random draws from a Generator, fetched in blocks (deterministic given the Generator).

  An example needs ~200 scalar draws; a Generator scalar call costs ~1-2 us, a draw from a
  prefetched block ~0.1 us. Array draws go to `.rng` directly.
  """

  def __init__(self, rng: np.random.Generator):
    self.rng, self._uniform, self._normal = rng, [], []

  def uniform(self, low=0.0, high=1.0):
    if not self._uniform:
      self._uniform = self.rng.random(128).tolist()
    return low + (high - low) * self._uniform.pop()

  def normal(self, mean=0.0, sd=1.0):
    if not self._normal:
      self._normal = self.rng.standard_normal(32).tolist()
    return mean + sd * self._normal.pop()

  def integers(self, low, high):
    """An int in [low, high)."""
    return min(high - 1, low + int(self.uniform() * (high - low)))

  def sign(self):
    return 1.0 if self.uniform() < 0.5 else -1.0


class Figure:
  """A sampled figure.

  joints: float64 [21, 2] (x, y) pixels, `FIGURE_JOINTS` order.
  hidden: bool [21], face points on the far side of the head (not annotatable: COCO v=0).
  strokes: drawing operations, back to front, for `draw_strokes`.
  """

  def __init__(self, joints, hidden, strokes):
    self.joints, self.hidden, self.strokes = joints, hidden, strokes


def _dir(angle):
  """Unit vector, as complex x + iy, at `angle` radians clockwise from image-up (y points down:
  0 up, pi/2 right, pi down)."""
  return complex(math.sin(angle), -math.cos(angle))


def hsv(h, s, v):
  """RGB tuple (floats 0-255) of hue h (wrapped), saturation s and value v in [0, 1]."""
  return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def side_colour(draws, hues):
  """A random clothing colour from a hue range (`LEFT_HUES` or `RIGHT_HUES`)."""
  return hsv(draws.uniform(*hues), draws.uniform(0.55, 1.0), draws.uniform(0.45, 1.0))


def _scaled(colour, f, add=0.0):
  return tuple(min(255.0, c * f + add) for c in colour)


def _sample_pose(d, height):
  """Joint angles within human limits. Returns 25 points as complex x + iy pixels (21 joints,
  then hand and foot ends; pelvis at the origin) and the geometry the drawing needs."""
  u, normal = d.uniform, d.normal
  length = lambda name, sd=0.06: _LENGTH[name] * height * math.exp(normal(0.0, sd))
  fore = lambda: 1.0 if u() < 0.7 else u(0.55, 1.0)   # out-of-plane foreshortening
  # Body yaw: 0 faces the camera (the person's left on image right), pi shows the back.
  r = u()
  yaw = normal(0, 0.35) if r < 0.55 else (math.pi + normal(0, 0.35) if r < 0.8 else u(-3.2, 3.2))
  cw, sw = math.cos(yaw), math.sin(yaw)
  rot = normal(0, 0.22) if u() < 0.8 else u(-1.2, 1.2)   # trunk lean/roll; sometimes bent over
  perp = _dir(rot + math.pi / 2)
  p = [0j] * 25
  p[7] = length('torso') * _dir(rot)                             # thorax; pelvis (6) at origin
  neck_angle = rot + u(-0.35, 0.35)                              # neck +-20 deg
  p[8] = p[7] + length('neck', 0.1) * _dir(neck_angle)
  head_angle = neck_angle + u(-0.3, 0.3)
  head_len = length('head', 0.07)
  p[9] = p[8] + head_len * _dir(head_angle)
  shoulder, hip = length('shoulder', 0.04), length('hip', 0.04)   # half widths, joint centres
  for side, _, sh, el, wr, hp, kn, an, hand, foot in _SIDES:
    screen = 1.0 if side * cw >= 0 else -1.0   # this side's outward direction on screen
    p[sh] = p[7] + side * cw * shoulder * perp - 0.02 * height * _dir(rot)
    p[hp] = side * cw * hip * perp
    # Shoulder: from slightly across the body (-30 deg) through hanging (0) to overhead (170).
    abd = normal(0.25, 0.3) if u() < 0.6 else u(-0.5, 3.0)
    a_ua = rot + math.pi - screen * abd
    a_fa = a_ua + u(0.0, 2.5) * d.sign()                        # elbow flexion 0-145 deg
    p[el] = p[sh] + length('upper_arm') * fore() * _dir(a_ua)
    p[wr] = p[el] + length('forearm') * fore() * _dir(a_fa)
    p[hand] = p[wr] + length('hand') * _dir(a_fa + normal(0, 0.3))
    # Hip: mostly near standing, sometimes raised up to ~90 deg in projection.
    abd = normal(0.08, 0.12) if u() < 0.7 else u(-0.4, 1.6)
    a_th = rot + math.pi - screen * abd
    flex = abs(normal(0, 0.25)) if u() < 0.65 else u(0.0, 2.4)   # knee flexion 0-135 deg
    # Seen from the side the shin folds backwards; seen from the front the bend is ambiguous.
    a_sh = a_th + (math.copysign(1.0, sw) if abs(sw) > 0.5 else d.sign()) * flex
    p[kn] = p[hp] + length('thigh') * fore() * _dir(a_th)
    p[an] = p[kn] + length('shin') * fore() * _dir(a_sh)
    p[foot] = p[an] + 0.04 * height * _dir(a_sh) + length('foot') * sw * perp
  p[6] = 0.5 * (p[2] + p[3])
  # Face points on the head ellipse turned by the head yaw: azimuth phi (0 nose, +pi/2 left ear)
  # projects to lateral offset sin(phi + yaw) and depth cos(phi + yaw) (> 0: towards us).
  head_yaw = yaw + normal(0, 0.3)
  hu, hv = _dir(head_angle), _dir(head_angle + math.pi / 2)
  hc, half_w = 0.5 * (p[8] + p[9]), 0.5 * HEAD_WIDTH * head_len
  depth = [0.0] * 21
  for k, phi, up, rad in ((NOSE, 0.0, -0.1, 0.8), (L_EYE, 0.45, 0.06, 0.8),
                          (R_EYE, -0.45, 0.06, 0.8), (L_EAR, 1.57, 0.0, 0.9),
                          (R_EAR, -1.57, 0.0, 0.9)):
    p[k] = hc + up * head_len * hu + rad * half_w * math.sin(phi + head_yaw) * hv
    depth[k] = math.cos(phi + head_yaw)
  geometry = dict(cw=cw, sw=sw, perp=perp, up=_dir(rot), shoulder=shoulder, hip=hip,
                  head_len=head_len, head_angle=head_angle, head_yaw=head_yaw, depth=depth)
  return p, geometry


def sample_figure(draws: Draws, height: float, center) -> Figure:
  """Samples the pose, proportions and colours of one figure.

  height: standing height (head top to sole) in pixels. center: (x, y) pixel position of the
  centre of the figure's joint bounding box.
  """
  d = draws
  p, g = _sample_pose(d, height)
  xs, ys = [z.real for z in p[:21]], [z.imag for z in p[:21]]
  shift = complex(center[0] - 0.5 * (min(xs) + max(xs)), center[1] - 0.5 * (min(ys) + max(ys)))
  p = [z + shift for z in p]
  build = d.uniform(0.8, 1.3)
  wid = lambda name: max(1, round(_WIDTH[name] * height * build))
  skin = _scaled(_SKIN[d.integers(0, len(_SKIN))], d.uniform(0.85, 1.1))
  hair = hsv(d.uniform(0.0, 0.12), d.uniform(0.3, 0.9), d.uniform(0.05, 0.5))
  shirt = hsv(d.uniform(), d.uniform(0.0, 0.7), d.uniform(0.2, 1.0))
  limbs = {}
  for side, hues, sh, el, wr, hp, kn, an, hand, foot in _SIDES:
    upper, lower = side_colour(d, hues), side_colour(d, hues)
    limbs[side] = (
        [('capsule', p[hp], p[kn], wid('thigh'), upper),
         ('capsule', p[kn], p[an], wid('shin'), lower),
         ('capsule', p[an], p[foot], wid('foot'), _scaled(lower, 0.35))],
        [('capsule', p[sh], p[el], wid('upper_arm'), upper),
         ('capsule', p[el], p[wr], wid('forearm'), lower),
         ('capsule', p[wr], p[hand], wid('hand'), skin)])
  # Torso: cross-sections at shoulder and hip level are ellipses (half width, depth) turned by
  # the yaw, so the outline narrows in side view instead of collapsing.
  cw, sw, perp = g['cw'], g['sw'], g['perp']
  depth = _WIDTH['depth'] * height * build
  ws = math.hypot((g['shoulder'] + wid('shoulder')) * cw, depth * sw) * perp
  wh = math.hypot((g['hip'] + wid('hip')) * cw, depth * sw) * perp
  ms = 0.5 * (p[12] + p[13])
  seat = p[6] - 0.04 * height * g['up']   # the hip line is not the body's lower edge
  torso = (ms + ws, seat + wh, seat - wh, ms - ws)
  near = 1 if sw < 0 else -1   # the left side is nearer when its depth -sin(yaw) is positive
  side_view = abs(sw) > 0.5    # then the far arm hides behind the torso
  strokes = limbs[-near][0] + limbs[near][0]
  if side_view:
    strokes += limbs[-near][1]
  strokes.append(('poly', torso, shirt))
  if not side_view:
    strokes += limbs[-near][1]
  strokes += limbs[near][1]
  strokes.append(('capsule', p[7], p[8], wid('neck'), _scaled(skin, 0.9)))
  strokes += _head_strokes(p, g, skin, hair)
  joints = np.array([(z.real, z.imag) for z in p[:21]])
  return Figure(joints, np.array(g['depth']) < -0.2, strokes)


def _head_strokes(p, g, skin, hair):
  """Ears, head ellipse (hair colour), face ellipse turned towards the viewer, eyes and nose."""
  head_len, angle, yaw, depth = g['head_len'], g['head_angle'], g['head_yaw'], g['depth']
  hu, hv = _dir(angle), _dir(angle + math.pi / 2)
  centre = 0.5 * (p[8] + p[9])
  # (across, along) the head axis; the margin keeps head_top on the drawn head at small sizes
  axes = (0.5 * HEAD_WIDTH * head_len + 0.5, 0.5 * head_len + 1.0)
  deg = math.degrees(angle)
  strokes = []
  for k in (L_EAR, R_EAR):
    if depth[k] > -0.2:
      strokes.append(('ellipse', p[k], (0.12 * head_len, 0.16 * head_len), deg,
                      _scaled(skin, 0.8)))
  strokes.append(('ellipse', centre, axes, deg, hair))
  facing = math.cos(yaw)
  if facing > -0.3:   # face: a skin ellipse shifted towards the face direction, below the hair
    fc = centre - 0.08 * head_len * hu + 0.35 * axes[0] * math.sin(yaw) * hv
    fa = (axes[0] * (0.55 + 0.35 * max(facing, 0.0)), axes[1] * 0.8)
    strokes.append(('ellipse', fc, fa, deg, skin))
  radius = max(0.8, 0.06 * head_len)
  for k in (L_EYE, R_EYE):
    if depth[k] > 0.15:
      strokes.append(('dot', p[k], radius, (25.0, 20.0, 20.0)))
  if depth[NOSE] > 0.0:
    strokes.append(('dot', p[NOSE], radius * 1.2, _scaled(skin, 0.6)))
  return strokes


def head_box(joints) -> np.ndarray:
  """Axis-aligned head box [[x1, y1], [x2, y2]] (float64 [2, 2]) from joints [>=10, 2].

  It bounds the ellipse on the head segment (upper_neck to head_top) with axes the segment
  length and HEAD_WIDTH x length, so it contains both joints, and 0.6 x its diagonal is
  0.75 x the segment length at any head rotation, as in the MPII annotations.
  """
  neck, top = joints[8], joints[9]
  a = 0.5 * (top - neck)                                 # half axis along the head
  b = HEAD_WIDTH * np.array([-a[1], a[0]])               # half axis across the head
  half = np.sqrt(a * a + b * b)
  centre = 0.5 * (neck + top)
  return np.stack([centre - half, centre + half])


def fix(z):
  """Pixel position (complex x + iy) -> cv2 fixed-point point for drawing with shift=SHIFT."""
  return round(z.real * _ONE), round(z.imag * _ONE)


def draw_strokes(image: np.ndarray, label: np.ndarray, strokes, label_id: int) -> None:
  """Draws strokes in place: shaded RGB onto image uint8 [H, W, 3], the silhouette as
  `label_id` onto label uint8 [H, W]. Positions are complex x + iy pixels.

  'capsule' (z0, z1, width_px, colour): a limb with an outline and a highlight on the side lit
  from the top left; 'poly' (corners, colour): a shaded convex polygon; 'ellipse' (centre,
  (axis across, axis along), angle_deg, colour): an outlined ellipse; 'dot' (centre, radius,
  colour): a disc that leaves the label alone (eyes, nose).
  """
  s, l8, aa = SHIFT, cv2.LINE_8, cv2.LINE_AA
  for kind, *args in strokes:
    if kind == 'capsule':
      z0, z1, width, colour = args
      a, b = fix(z0), fix(z1)
      # Anti-aliasing only on the silhouette edge; inner edges fall on the outline anyway.
      cv2.line(image, a, b, _scaled(colour, 0.45), width + 2, aa, s)
      cv2.line(image, a, b, colour, width, l8, s)
      along = z1 - z0
      normal = 1j * along / (abs(along) + 1e-9)
      if normal.real + normal.imag > 0:   # put the highlight on the side facing the top left
        normal = -normal
      off = 0.2 * width * normal
      cv2.line(image, fix(z0 + off), fix(z1 + off), _scaled(colour, 1.15, 40),
               max(1, width // 3), l8, s)
      cv2.line(label, a, b, label_id, width + 2, l8, s)
    elif kind == 'poly':
      corners, colour = args
      pts = np.array([fix(z) for z in corners], np.int32)
      cv2.fillConvexPoly(image, pts, colour, aa, s)
      centre = sum(corners) / len(corners)
      lift = 0.1 * max(abs(z - centre) for z in corners) * (1 + 1j)
      inner = np.array([fix(centre + 0.55 * (z - centre) - lift) for z in corners], np.int32)
      cv2.fillConvexPoly(image, inner, _scaled(colour, 1.1, 25), l8, s)
      cv2.polylines(image, [pts], True, _scaled(colour, 0.45), 1, aa, s)
      cv2.fillConvexPoly(label, pts, label_id, l8, s)
    elif kind == 'ellipse':
      centre, (across, along), deg, colour = args
      c, axes = fix(centre), fix(complex(across, along))
      cv2.ellipse(image, c, axes, deg, 0, 360, colour, -1, aa, s)
      cv2.ellipse(image, c, axes, deg, 0, 360, _scaled(colour, 0.5), 1, aa, s)
      cv2.ellipse(label, c, axes, deg, 0, 360, label_id, -1, l8, s)
    else:  # dot
      centre, radius, colour = args
      cv2.circle(image, fix(centre), round(radius * _ONE), colour, -1, aa, s)
