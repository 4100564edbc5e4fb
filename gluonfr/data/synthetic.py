"""Procedural "faces": the project's built-in training and verification data.

Real face sets (MS1M, CASIA-WebFace) cannot be shipped, so the demo, the tests and the
benchmarks use faces drawn with cv2. Each **identity** is a random parametric face: head shape,
skin tone, eye spacing / size / iris colour, brows, nose, mouth, ears, hair colour and style,
facial hair, glasses and a mole. Each **image** of it is a nuisance draw: yaw / pitch / roll,
scale and shift, expression (smile, open mouth, raised brows, blink), lighting direction,
brightness and colour cast, background, clothing, partial occlusion, blur and sensor noise.
The faces sit roughly on the arcface 5-point template, like aligned insightface crops.

The nuisance is tuned so that raw pixels say little about identity (cosine similarity of raw
or mean-centred pixels verifies pairs far below 75% accuracy; see
:func:`pixel_verification_accuracy`), while a network that learns the geometry and colours
separates unseen identities well.

Determinism: identity ``i`` depends only on ``(seed, i)`` and its image ``j`` only on
``(seed, i, j)``; the held-out verification identities come from a separate random stream, so
they never coincide with training identities and do not change with ``num_identities``.
"""
import math
import os

import cv2
import numpy as np
from tqdm import tqdm

from .image import encode_jpeg
from .recordio import RecordWriter
from .verification_bin import pack_bin

__all__ = ["sample_identity", "sample_nuisance", "render_face", "render_identity_image",
           "make_dataset", "verification_pairs", "pixel_verification_accuracy"]

_TRAIN_STREAM, _VAL_STREAM = 0, 1
_SCALE = 2           # draw at 2x and downsample: anti-aliased features at 112 px
_SHIFT = 4           # cv2 fixed-point bits for sub-pixel drawing
_FIX = _SCALE * (1 << _SHIFT)

# RGB palettes (identity traits)
_HAIR = np.array([[20, 16, 14], [45, 30, 20], [85, 55, 30], [130, 85, 45], [190, 150, 90],
                  [225, 200, 140], [150, 60, 25], [120, 120, 120], [215, 215, 210],
                  [60, 40, 70]], dtype=np.float64)
_HAIR_P = np.array([.2, .2, .15, .1, .08, .07, .06, .06, .04, .04])
_IRIS = np.array([[60, 35, 20], [100, 65, 35], [60, 110, 170], [80, 130, 90], [110, 110, 120],
                  [30, 20, 15]], dtype=np.float64)
_SKIN_LIGHT = np.array([250, 220, 195], dtype=np.float64)
_SKIN_DARK = np.array([85, 55, 38], dtype=np.float64)


def _rng(*key):
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in key]))


def sample_identity(rng):
    """Draw the parameters of one face identity (a dict of numbers and RGB colours)."""
    u = rng.uniform
    tone = u(0, 1) ** 1.2
    skin = _SKIN_LIGHT + (_SKIN_DARK - _SKIN_LIGHT) * tone + rng.normal(0, [10, 8, 8])
    skin[0] = max(skin[0], skin[1] + 5)  # keep skin reddish-to-yellow, not green/blue
    hair = _HAIR[rng.choice(len(_HAIR), p=_HAIR_P)] + rng.normal(0, 10, 3)
    return {
        "skin": np.clip(skin, 30, 255),
        "face_w": u(29, 41), "face_h": u(46, 57), "face_p": u(1.9, 3.2),
        "jaw": u(0.62, 0.95), "face_cy": u(62, 68),
        "eye_dx": u(15.0, 20.5), "eye_y": u(48, 55), "eye_w": u(5.0, 8.0), "eye_h": u(2.4, 4.2),
        "eye_tilt": u(-0.18, 0.18), "iris": _IRIS[rng.integers(len(_IRIS))]
        + rng.normal(0, 8, 3), "iris_r": u(0.45, 0.7),
        "brow_dy": u(6.5, 12.0), "brow_w": u(1.4, 4.2), "brow_len": u(0.9, 1.5),
        "brow_arch": u(-1.0, 3.5), "brow_tilt": u(-0.25, 0.25),
        "brow": hair * u(0.55, 0.9),
        "nose_y": u(67, 77), "nose_w": u(4.5, 9.5), "nose_len": u(10, 20),
        "mouth_y": u(85, 96), "mouth_w": u(10, 18), "lip": u(1.5, 4.5),
        "lip_col": np.clip(skin * u(0.55, 0.8) + np.array([u(20, 60), 0, 0]), 0, 255),
        "ear": u(5, 10), "ear_y": u(55, 68),
        "hair": np.clip(hair, 0, 255), "hairline": u(18, 40), "hair_vol": u(0, 10),
        "hair_style": int(rng.choice(5, p=[.12, .38, .2, .18, .12])),  # bald/short/bob/long/bangs
        "part": u(-12, 12),
        "beard": int(rng.choice(3, p=[.7, .15, .15])),  # none / moustache / full beard
        "glasses": bool(u() < 0.18), "glasses_col": rng.uniform(0, 200, 3),
        "mole": bool(u() < 0.5), "mole_xy": (u(-22, 22), u(60, 95)),
        "blush": u(0, 0.25),
    }


def sample_nuisance(rng, strength=1.0):
    """Draw one image's nuisance variation; ``strength`` scales the geometric and photometric
    ranges (1 = the calibrated default)."""
    u, s = rng.uniform, float(strength)
    bg_kind = int(rng.integers(4))
    return {
        "yaw": u(-0.45, 0.45) * s, "pitch": u(-0.25, 0.25) * s, "roll": u(-14, 14) * s,
        "scale": 1 + u(-0.1, 0.1) * s, "tx": u(-5, 5) * s, "ty": u(-5, 5) * s,
        "smile": u(-0.4, 1.0), "open": max(0.0, u(-0.6, 1.0)), "brow_up": u(-1.5, 3.0),
        "blink": u(0.2, 1.15) if u() < 0.25 else 1.0,
        "light_dir": u(0, 2 * math.pi), "light_amp": u(0, 0.55) * s,
        "gain": 1 + u(-0.35, 0.3) * s, "cast": 1 + rng.uniform(-0.14, 0.14, 3) * s,
        "gamma": math.exp(u(-0.35, 0.35) * s),
        "bg_kind": bg_kind, "bg": rng.uniform(0, 255, (2, 3)), "bg_angle": u(0, 2 * math.pi),
        "bg_seed": int(rng.integers(1 << 31)),
        "shirt": rng.uniform(0, 255, 3),
        "occlude": u() < 0.35 * min(1.0, s),
        "occ_kind": int(rng.integers(4)), "occ_col": rng.uniform(0, 255, 3),
        "occ_pos": (u(0, 1), u(0, 1)), "occ_size": u(0.25, 0.5),
        "blur": u(0, 1.4) * s if u() < 0.5 else 0.0,
        "noise": u(0, 7) * s,
        "glasses_on": u() < 0.85,
    }


# -- drawing helpers ------------------------------------------------------------------------
def _p(x, y):
    return (int(round(x * _FIX)), int(round(y * _FIX)))


def _poly(points):
    return np.round(np.asarray(points) * _FIX).astype(np.int32).reshape(-1, 1, 2)


def _col(c):
    return tuple(min(255.0, max(0.0, float(v))) for v in c)


class _Face:
    """Project face-frame points (x right, y down, z towards the camera) through yaw/pitch."""

    def __init__(self, ident, nz):
        self.cx, self.cy = 56.0, ident["face_cy"]
        self.cyaw, self.syaw = math.cos(nz["yaw"]), math.sin(nz["yaw"])
        self.cpit, self.spit = math.cos(nz["pitch"]), math.sin(nz["pitch"])

    def __call__(self, x, y, z=0.0):
        dx, dy = x - self.cx, y - self.cy
        px = self.cx + dx * self.cyaw + z * self.syaw
        py = self.cy + dy * self.cpit - z * self.spit
        return px, py


def _superellipse(w, h, p, jaw, n=48):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = np.sign(c) * np.abs(c) ** (2 / p) * w
    y = np.sign(s) * np.abs(s) ** (2 / p) * h
    lower = y > 0  # narrow the jaw towards the chin
    x[lower] *= 1 - (1 - jaw) * (y[lower] / h) ** 1.5
    return x, y


_GRIDS = {}


def _unit_grid(size):
    """Pixel-centre coordinates in [-0.5, 0.5) as float32 (x, y) grids, cached per size."""
    if size not in _GRIDS:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
        _GRIDS[size] = (xx, yy)
    return _GRIDS[size]


def _background(nz, size):
    """Plain, gradient, smooth-texture or cluttered background (float32 RGB)."""
    kind = nz["bg_kind"]
    c0, c1 = nz["bg"]
    if kind == 0:
        return np.full((size, size, 3), c0, dtype=np.float32)
    xx, yy = _unit_grid(size)
    g = np.random.default_rng(nz["bg_seed"])
    if kind == 1:
        t = xx * math.cos(nz["bg_angle"]) + yy * math.sin(nz["bg_angle"]) + 0.5
    else:  # smooth random texture at a random scale
        cells = int(g.integers(3, 12))
        t = cv2.resize(g.uniform(0, 1, (cells, cells)).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_CUBIC)
    t = np.clip(t, 0, 1)[:, :, None]
    img = (c0 * (1 - t) + c1 * t).astype(np.float32)
    if kind == 3:  # clutter: random blobs and bars behind the head
        k = size / 112 * (1 << _SHIFT)
        for _ in range(int(g.integers(3, 9))):
            col = tuple(float(v) for v in g.uniform(0, 255, 3))
            x, y = g.uniform(0, 112, 2)
            if g.uniform() < 0.5:
                cv2.circle(img, (int(x * k), int(y * k)), int(g.uniform(4, 20) * k), col, -1,
                           cv2.LINE_AA, _SHIFT)
            else:
                w, h = g.uniform(3, 40, 2)
                cv2.rectangle(img, (int(x * k), int(y * k)), (int((x + w) * k),
                              int((y + h) * k)), col, -1, cv2.LINE_AA, _SHIFT)
    return img


def render_face(ident, nz, size=112):
    """Render one identity under one nuisance draw; returns (size, size, 3) uint8 RGB."""
    big = 112 * _SCALE
    layer = np.zeros((big, big, 3), np.uint8)
    mask = np.zeros((big, big), np.uint8)
    aa = cv2.LINE_AA
    f = _Face(ident, nz)
    skin = ident["skin"]
    hair = _col(ident["hair"])
    style = ident["hair_style"]
    fw, fh = ident["face_w"], ident["face_h"]

    def fill(points, color, to_mask=True):
        pts = _poly(points)
        cv2.fillPoly(layer, [pts], _col(color), aa, _SHIFT)
        if to_mask:
            cv2.fillPoly(mask, [pts], 255, aa, _SHIFT)

    def ellipse(x, y, ax, ay, angle, color, to_mask=False, thickness=-1):
        args = (_p(x, y), _p(max(ax, 0.3), max(ay, 0.3)), angle, 0, 360)
        cv2.ellipse(layer, *args, _col(color), thickness, aa, _SHIFT)
        if to_mask:
            cv2.ellipse(mask, *args, 255, thickness, aa, _SHIFT)

    # shoulders and neck (clothing colour is nuisance)
    fill([(8, 112), (20, 100), (92, 100), (104, 112)], nz["shirt"])
    nx0, ny0 = f(56, f.cy + fh * 0.6)
    fill([(nx0 - fw * 0.45, ny0), (nx0 + fw * 0.45, ny0), (nx0 + fw * 0.5, 104),
          (nx0 - fw * 0.5, 104)], skin * 0.85)
    # long hair behind the head
    hx, hy = f(56, f.cy - 4, -6)
    if style in (2, 3):
        length = 28 if style == 2 else 50
        fill([(hx - fw - 6 - ident["hair_vol"], hy - 10), (hx + fw + 6 + ident["hair_vol"],
              hy - 10), (hx + fw + 8, hy + length), (hx - fw - 8, hy + length)], hair)
    # ears, at the side facing away from the yaw only partly visible
    for side in (-1, 1):
        ex, ey = f(56 + side * fw * 0.98, ident["ear_y"], -8)
        ellipse(ex, ey, ident["ear"] * 0.55 * (1 + 0.6 * side * f.syaw), ident["ear"], 0,
                skin * 0.93, to_mask=True)
    # head
    xs, ys = _superellipse(fw, fh, ident["face_p"], ident["jaw"])
    zs = 10 * np.sqrt(np.clip(1 - (xs / fw) ** 2, 0, 1)) - 6
    fill([f(56 + x, f.cy + y, z) for x, y, z in zip(xs, ys, zs)], skin)
    # cheeks
    if ident["blush"] > 0.05:
        for side in (-1, 1):
            cx, cy = f(56 + side * fw * 0.55, ident["nose_y"] + 4, 4)
            x0, y0 = max(int((cx - 8) * _SCALE), 0), max(int((cy - 6) * _SCALE), 0)
            x1, y1 = min(int((cx + 8) * _SCALE) + 1, big), min(int((cy + 6) * _SCALE) + 1, big)
            if x1 <= x0 or y1 <= y0:
                continue
            roi = layer[y0:y1, x0:x1]
            over = roi.copy()
            cv2.ellipse(over, _p(cx - x0 / _SCALE, cy - y0 / _SCALE), _p(7, 5), 0, 0, 360,
                        _col(skin * [1.0, .7, .7]), -1, aa, _SHIFT)
            roi[:] = cv2.addWeighted(over, ident["blush"], roi, 1 - ident["blush"], 0)
    # eyes
    openness = nz["blink"]
    for side in (-1, 1):
        ex, ey = f(56 + side * ident["eye_dx"], ident["eye_y"], 6)
        ew = ident["eye_w"] * (1 + 0.35 * side * f.syaw)
        eh = ident["eye_h"] * min(openness, 1.1)
        tilt = math.degrees(-side * ident["eye_tilt"])
        if eh > 0.8:
            ellipse(ex, ey, ew, eh, tilt, (245, 245, 240))
            # iris clipped to the sclera, drawn in a small window around the eye
            r = ident["eye_h"] * ident["iris_r"] * 2.0
            x0, y0 = int((ex - ew - 2) * _SCALE), int((ey - ew - 2) * _SCALE)
            x1, y1 = int((ex + ew + 2) * _SCALE) + 1, int((ey + ew + 2) * _SCALE) + 1
            x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, big), min(y1, big)
            if x1 > x0 and y1 > y0:
                wx, wy = x0 / _SCALE, y0 / _SCALE
                eye_mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
                cv2.ellipse(eye_mask, _p(ex - wx, ey - wy), _p(ew, eh), tilt, 0, 360, 255, -1,
                            aa, _SHIFT)
                iris = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)
                ix = ex + 0.25 * ew * f.syaw - wx
                cv2.circle(iris, _p(ix, ey - wy), int(r * _FIX), _col(ident["iris"]), -1, aa,
                           _SHIFT)
                cv2.circle(iris, _p(ix, ey - wy), int(r * 0.45 * _FIX), (15, 12, 12), -1, aa,
                           _SHIFT)
                inside = (eye_mask > 127) & (iris.max(axis=2) > 0)
                layer[y0:y1, x0:x1][inside] = iris[inside]
        # upper lid line
        cv2.ellipse(layer, _p(ex, ey), _p(ew * 1.05, max(eh, 0.6)), tilt, 190, 350,
                    (40, 30, 28), max(1, int(_SCALE * 0.9)), aa, _SHIFT)
        # brow
        bl = ew * ident["brow_len"]
        by = ey - ident["brow_dy"] - nz["brow_up"]
        ang = side * ident["brow_tilt"]
        pts = []
        for t in np.linspace(-1, 1, 9):
            px = ex + t * bl
            py = by - ident["brow_arch"] * (1 - t * t) + ang * t * bl * side
            pts.append((px, py))
        cv2.polylines(layer, [_poly(pts)], False, _col(ident["brow"]),
                      max(1, int(round(ident["brow_w"] * _SCALE))), aa, _SHIFT)
    # glasses
    if ident["glasses"] and nz["glasses_on"]:
        gcol = _col(ident["glasses_col"])
        centres = [f(56 + s * ident["eye_dx"], ident["eye_y"], 9) for s in (-1, 1)]
        for (gx, gy) in centres:
            cv2.ellipse(layer, _p(gx, gy), _p(ident["eye_w"] + 4, ident["eye_h"] + 4), 0, 0, 360,
                        gcol, _SCALE, aa, _SHIFT)
        cv2.line(layer, _p(centres[0][0] + ident["eye_w"] + 4, centres[0][1]),
                 _p(centres[1][0] - ident["eye_w"] - 4, centres[1][1]), gcol, _SCALE, aa, _SHIFT)
    # nose
    ntx, nty = f(56, ident["nose_y"], 14)
    nbx, nby = f(56, ident["nose_y"] - ident["nose_len"], 9)
    shade = _col(skin * 0.78)
    cv2.line(layer, _p(nbx + 2, nby), _p(ntx + 1.5, nty - 2), shade, _SCALE, aa, _SHIFT)
    nw = ident["nose_w"]
    ellipse(ntx, nty - 1, nw * 0.55, 2.5, 0, skin * 0.92)
    for side in (-1, 1):
        ellipse(ntx + side * nw * 0.45, nty + 1.0, 1.6, 1.0, 0, skin * 0.45)
    # mouth
    mw = ident["mouth_w"]
    mx, my = f(56, ident["mouth_y"], 8)
    smile, opening = nz["smile"] * 3.0, nz["open"] * 6.0
    ts = np.linspace(-1, 1, 13)
    bulge = (1 - ts * ts) ** 0.7
    mid_top_y = my + smile * (0.5 - ts * ts)  # corners rise when smiling
    mid_bot_y = mid_top_y + opening * (1 - ts * ts)
    xs_m = mx + ts * mw
    upper = list(zip(xs_m, mid_top_y - ident["lip"] * bulge - 0.3))
    mid_top = list(zip(xs_m, mid_top_y))
    mid_bot = list(zip(xs_m, mid_bot_y))
    lower = list(zip(xs_m, mid_bot_y + ident["lip"] * 1.2 * bulge + 0.3))
    if opening > 0.8:
        fill(mid_top + mid_bot[::-1], (70, 20, 25), to_mask=False)
        teeth = [(x, y) for x, y in mid_top] + [(x, y + min(2.2, opening * 0.4))
                                                for x, y in mid_top[::-1]]
        fill(teeth, (235, 230, 220), to_mask=False)
    fill(upper + mid_top[::-1], ident["lip_col"], to_mask=False)
    fill(mid_bot + lower[::-1], ident["lip_col"] * 1.08, to_mask=False)
    # facial hair
    if ident["beard"] == 1:
        fill([(mx - mw * 0.9, my - ident["lip"] - 0.5), (mx, my - ident["lip"] - 4),
              (mx + mw * 0.9, my - ident["lip"] - 0.5), (mx, my - ident["lip"] - 1.5)], hair,
             to_mask=False)
    elif ident["beard"] == 2:
        over = layer.copy()
        sel = ys > fh * 0.15
        pts = [f(56 + x, f.cy + y, z) for x, y, z in zip(xs[sel], ys[sel], zs[sel])]
        cv2.fillPoly(over, [_poly(pts + [(mx + mw, my + 2), (mx - mw, my + 2)])], hair, aa,
                     _SHIFT)
        cv2.addWeighted(over, 0.8, layer, 0.2, 0, dst=layer)
        fill(upper + mid_top[::-1], ident["lip_col"], to_mask=False)
        fill(mid_bot + lower[::-1], ident["lip_col"] * 1.08, to_mask=False)
    # mole
    if ident["mole"]:
        mx_, my_ = f(56 + ident["mole_xy"][0], ident["mole_xy"][1], 6)
        ellipse(mx_, my_, 1.1, 1.1, 0, skin * 0.35)
    # hair on top
    if style != 0:
        top = f.cy - fh - 2 - ident["hair_vol"]
        line = ident["hairline"]
        xs_h = np.linspace(-1, 1, 15)
        cap = [f(56 + t * (fw + 3 + ident["hair_vol"] * 0.5),
                 top + (fh * 0.55) * (1 - math.sqrt(max(0.0, 1 - t * t))), -2) for t in xs_h]
        front = [f(56 + t * (fw + 1) + ident["part"] * (1 - abs(t)) * 0.3,
                   line + 8 * t * t + (4 if style == 4 else 0) * (1 - t * t), 4)
                 for t in xs_h[::-1]]
        side_len = {1: 8, 2: 22, 3: 30, 4: 14}[style]
        left = [f(56 - fw - 2, line + side_len, -2)]
        right = [f(56 + fw + 2, line + side_len, -2)]
        fill(cap + right + front + left, hair)
    # pose: roll, scale and shift of the whole head, then composite over the background
    rot = cv2.getRotationMatrix2D((56 * _SCALE, 66 * _SCALE), nz["roll"], nz["scale"])
    rot[:, 2] += (nz["tx"] * _SCALE, nz["ty"] * _SCALE)
    layer = cv2.warpAffine(layer, rot, (big, big), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(mask, rot, (big, big), flags=cv2.INTER_LINEAR)
    # composite and light at the output resolution: 4x fewer pixels than the drawing
    layer = cv2.resize(layer, (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    img = _background(nz, size)
    alpha = mask.astype(np.float32)[:, :, None] * (1 / 255.0)
    img = img * (1 - alpha) + layer.astype(np.float32) * alpha
    # lighting: directional ramp, gain, colour cast, gamma
    xx, yy = _unit_grid(size)
    ramp = xx * math.cos(nz["light_dir"]) + yy * math.sin(nz["light_dir"])
    img *= (1 + nz["light_amp"] * 2 * ramp)[:, :, None]
    img *= (nz["gain"] * nz["cast"]).astype(np.float32)
    img = 255.0 * (np.clip(img, 0, 255) / 255.0) ** nz["gamma"]
    # occlusion (hand / scarf / hat / sunglasses band)
    if nz["occlude"]:
        k_out = size / 112 * (1 << _SHIFT)

        def _o(x, y):
            return (int(round(x * k_out)), int(round(y * k_out)))

        col = _col(nz["occ_col"])
        k, (ox, oy), sz = nz["occ_kind"], nz["occ_pos"], nz["occ_size"]
        if k == 0:
            cv2.ellipse(img, _o(20 + 72 * ox, 40 + 50 * oy), _o(40 * sz, 28 * sz),
                        360 * ox, 0, 360, col, -1, aa, _SHIFT)
        elif k == 1:
            cv2.rectangle(img, _o(0, 84 + 10 * oy), _o(112, 112), col, -1, aa, _SHIFT)
        elif k == 2:
            cv2.rectangle(img, _o(0, 0), _o(112, 22 + 14 * oy), col, -1, aa, _SHIFT)
        else:
            y0 = ident["eye_y"] - 5 + 4 * oy
            cv2.rectangle(img, _o(12, y0), _o(100, y0 + 10), col, -1, aa, _SHIFT)
    out = img
    if nz["blur"] > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), nz["blur"] * size / 112)
    if nz["noise"] > 0:
        noise = np.random.default_rng(nz["bg_seed"] + 1).standard_normal(out.shape, np.float32)
        out = out + noise * np.float32(nz["noise"])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def render_identity_image(seed, identity, image, stream=_TRAIN_STREAM, size=112, strength=1.0):
    """Image ``image`` of identity ``identity`` (deterministic); (size, size, 3) uint8 RGB."""
    ident = sample_identity(_rng(seed, stream, identity))
    nz = sample_nuisance(_rng(seed, stream, identity, image + 1), strength)
    return render_face(ident, nz, size)


def verification_pairs(num_pairs, num_identities, seed=0, folds=10):
    """LFW-like pair list ``[(id_a, img_a, id_b, img_b, issame)]`` over ``num_identities``.

    Half the pairs are same-identity. The list is split into ``folds`` consecutive blocks,
    each holding its same pairs first and then its different pairs (LFW's ``pairs.txt``
    order), so 10-fold cross-validation sees balanced folds.
    """
    if num_pairs < 2 or num_pairs % 2:
        raise ValueError(f"num_pairs must be even and >= 2, got {num_pairs}")
    if num_identities < 2:
        raise ValueError(f"need at least 2 verification identities, got {num_identities}")
    rng = _rng(seed, _VAL_STREAM, 1 << 30)
    half = num_pairs // 2
    folds = max(1, min(int(folds), half))
    same = np.array_split(np.arange(half), folds)
    diff = np.array_split(np.arange(half), folds)
    next_img = np.zeros(num_identities, dtype=np.int64)

    def take(i):
        next_img[i] += 1
        return int(next_img[i] - 1)

    pairs = []
    for s_blk, d_blk in zip(same, diff):
        for _ in s_blk:
            i = int(rng.integers(num_identities))
            pairs.append((i, take(i), i, take(i), True))
        for _ in d_blk:
            i, j = (int(x) for x in rng.choice(num_identities, 2, replace=False))
            pairs.append((i, take(i), j, take(j), False))
    return pairs


def _render_job(args):
    seed, stream, identity, image, size, strength, quality = args
    img = render_identity_image(seed, identity, image, stream, size, strength)
    return encode_jpeg(np.ascontiguousarray(img[:, :, ::-1]), quality)


def _imap(jobs, num_workers, desc):
    it = tqdm(jobs, desc=desc, unit="img", leave=False)
    if num_workers and num_workers > 0:
        import multiprocessing as mp

        with mp.get_context("spawn" if os.name == "nt" else "fork").Pool(num_workers) as pool:
            yield from pool.imap(_render_job, it, chunksize=32)
    else:
        for job in it:
            yield _render_job(job)


def make_dataset(out_dir, num_identities, images_per_identity, num_pairs, seed=0,
                 num_val_identities=None, image_size=112, quality=95, strength=1.0,
                 header=True, bin_name="synth_val.bin", num_workers=0):
    """Write a procedural face dataset: a training rec and a held-out verification ``.bin``.

    Parameters
    ----------
    out_dir : str
        Receives ``train.rec``, ``train.idx``, ``property`` and ``bin_name``.
    num_identities, images_per_identity : int
        Training identities 0..N-1 and images of each.
    num_pairs : int
        Verification pairs (even; half same, half different, LFW-like fold order).
    seed : int
        Everything is a deterministic function of the seed.
    num_val_identities : int, optional
        Unseen identities the pairs are drawn from (default ``max(10, num_pairs // 4)``).
    image_size : int
        Side of the square images.
    quality : int
        JPEG quality in the rec and the ``.bin``.
    strength : float
        Scale of the nuisance variation (1 = calibrated default; lower is easier).
    header : bool
        insightface's indexed layout (True) or a headerless rec.
    bin_name : str
        File name of the verification set.
    num_workers : int
        Rendering processes (0 = this process); the output does not depend on it.

    Returns
    -------
    dict
        ``root``, ``rec``, ``idx``, ``property``, ``bin`` paths and the counts.
    """
    out_dir = os.fspath(out_dir)
    if num_identities < 1 or images_per_identity < 1:
        raise ValueError("num_identities and images_per_identity must be positive")
    size = int(image_size)
    if num_val_identities is None:
        num_val_identities = max(10, num_pairs // 4)
    jobs = [(seed, _TRAIN_STREAM, i, j, size, strength, quality)
            for i in range(num_identities) for j in range(images_per_identity)]
    with RecordWriter(out_dir, image_size=(size, size), header=header) as writer:
        for (_, _, i, _, _, _, _), buf in zip(jobs, _imap(jobs, num_workers, "train faces")):
            writer.add(i, buf)
    pairs = verification_pairs(num_pairs, num_val_identities, seed)
    val_jobs = []
    for ia, ja, ib, jb, _ in pairs:
        val_jobs.append((seed, _VAL_STREAM, ia, ja, size, strength, quality))
        val_jobs.append((seed, _VAL_STREAM, ib, jb, size, strength, quality))
    encoded = list(_imap(val_jobs, num_workers, "verification faces"))
    bin_path = os.path.join(out_dir, bin_name)
    pack_bin(((encoded[2 * k], encoded[2 * k + 1], p[4]) for k, p in enumerate(pairs)),
             bin_path)
    return {"root": out_dir, "rec": writer.paths["rec"], "idx": writer.paths["idx"],
            "property": writer.paths["property"], "bin": bin_path,
            "num_identities": num_identities, "num_images": writer.num_images,
            "num_pairs": num_pairs, "num_val_identities": num_val_identities}


def pixel_verification_accuracy(images, issame, centre=True):
    """Best-threshold accuracy of cosine similarity between raw pixels of each pair.

    A difficulty check needing no training: with ``centre`` each image's mean is removed
    first (so the score is a correlation, blind to global brightness). Chance is 0.5.
    """
    x = np.asarray(images.asnumpy() if hasattr(images, "asnumpy") else images, np.float64)
    x = x.reshape(len(x), -1)
    if centre:
        x = x - x.mean(axis=1, keepdims=True)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    sim = (x[0::2] * x[1::2]).sum(axis=1)
    issame = np.asarray(issame, dtype=bool)
    best = 0.0
    for thr in np.unique(sim):
        best = max(best, float(np.mean((sim >= thr) == issame)))
    return best
