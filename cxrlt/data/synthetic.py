"""Synthetic long-tailed, multi-label chest X-rays written in the CXR-LT 2026 on-disk format.

A newcomer can then run the whole pipeline on a laptop CPU with no data to download. Labels keep
the real training counts' order, compressed to a chosen imbalance, with clinically plausible
co-occurrence; each finding leaves its own mark on the image (some obvious, some subtle), so a
model has something real to learn. Images are 16-bit PNGs that use 12 bits and the CSV has the
real columns, so the data goes through the same loading path as PadChest.

Drawing works in normalised coordinates: x to the image right, y down, both in [-1, 1], the
patient facing the viewer as on a PA film (the patient's right lung is on the image left).
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from PIL import Image

from cxrlt.data.labels import (
    CXR_LT_2026_CLASSES,
    CXR_LT_2026_META_COLUMNS,
    CXR_LT_2026_TRAIN_COUNTS,
)

GENERATOR_VERSION = 1  # part of the cache key: bump when the drawing or sampling changes

_FINDINGS = CXR_LT_2026_CLASSES[1:]
_COUNTS = np.array(CXR_LT_2026_TRAIN_COUNTS[1:], float)
# Expected findings per image. The real data has 0.93 with 34% Normal, but there Normal is not
# exactly "no finding"; here it is, and 1.12 findings put Normal near 35% (1.47 labels per image).
_FINDINGS_PER_IMAGE = 1.12
# Clinical groups whose findings occur together, with the loading of each group's factor.
_GROUPS = (
    (0.45, ("cardiomegaly", "pleural effusion", "aortic elongation", "aortic atheromatosis",
            "vascular hilar enlargement")),
    (0.6, ("Support Devices", "central venous catheter", "sternotomy")),
    (0.65, ("Pneumothorax", "Hydropneumothorax", "Subcutaneous Emphysema")),
    (0.6, ("Emphysema", "hyperinflated lung", "bronchiectasis")),
    (0.6, ("vertebral degenerative changes", "Kyphosis")),
    (0.4, ("aortic elongation", "aortic atheromatosis", "vertebral degenerative changes",
           "Kyphosis")),  # age
    (0.4, ("atelectasis", "hypoexpansion", "hemidiaphragm elevation", "pleural effusion")),
)  # fmt: skip
_ILLNESS = 0.1  # loading of the factor every finding shares: how ill the patient is
_PATIENT_SHARE = 0.5  # share of the latent variance that one patient's images have in common
_MIN_POSITIVES = 3  # per finding, whatever the set size
# Seed-sequence tags, so that labels, patients, metadata and images use independent streams.
_LABELS, _PATIENTS, _META, _IMAGES, _NORMAL, _VIEWS = range(6)
_HILUM = (0.19, -0.05)  # |x|, y of the hila: vessel markings fan out from here


def _loadings() -> np.ndarray:
    """(29, 1 + groups) factor loadings of the findings' latent scores."""
    loadings = np.zeros((len(_FINDINGS), 1 + len(_GROUPS)))
    loadings[:, 0] = _ILLNESS
    for column, (weight, names) in enumerate(_GROUPS, start=1):
        loadings[[_FINDINGS.index(name) for name in names], column] = weight
    return loadings


_LOADINGS = _loadings()
_UNIQUE = np.sqrt(1 - (_LOADINGS**2).sum(axis=1))  # own-noise scale: unit variance per score
_normal_cdf = np.vectorize(NormalDist().cdf, otypes=[float])


# --------------------------------------------------------------------------------------- labels


def _finding_targets(imbalance: float) -> np.ndarray:
    """The 29 findings' prevalences: real counts' order, max / min == imbalance."""
    if imbalance < 1:
        raise ValueError(f"imbalance must be at least 1 (most / least frequent), got {imbalance}")
    alpha = math.log(imbalance) / math.log(_COUNTS.max() / _COUNTS.min())
    shape = (_COUNTS / _COUNTS.max()) ** alpha
    return shape * (_FINDINGS_PER_IMAGE / shape.sum())


def _thresholds(prevalences: np.ndarray) -> np.ndarray:
    """Latent score above which a finding is positive, so its marginal hits its prevalence."""
    return np.array([NormalDist().inv_cdf(1 - p) for p in prevalences])


def _normal_share(findings: np.ndarray) -> float:
    """P(no finding): the scores are independent given the shared factors, so average over them."""
    factors = np.random.default_rng(_NORMAL).standard_normal((2048, _LOADINGS.shape[1]))
    z = (_thresholds(findings) - factors @ _LOADINGS.T) / _UNIQUE
    return float(_normal_cdf(z).prod(axis=1).mean())


def finding_prevalences(imbalance: float) -> np.ndarray:
    """Marginal prevalence per class (30,): index 0 is Normal, then the 29 findings.

    Findings keep the real training counts' order, compressed in log space:
    p_c = k * (n_c / n_max) ** alpha, with alpha such that max(p) / min(p) over the 29 findings
    (Normal excluded) equals ``imbalance`` exactly, and k such that an image carries 1.12
    findings on average. Counting Normal (the most frequent class) the most / least ratio is
    several times larger: 3.3 times the requested one at imbalance 100.
    Normal is not sampled: its entry is the expected share of images with no finding under
    the co-occurrence model (a fixed-seed estimate, about a third).
    """
    findings = _finding_targets(imbalance)
    return np.concatenate([[_normal_share(findings)], findings])


def _patient_index(n_images: int, seed: int) -> np.ndarray:
    """Patient number of each image: most have one image, some two or three (shuffled)."""
    rng = np.random.default_rng([_PATIENTS, seed])
    sizes = rng.choice([1, 2, 3], size=n_images, p=[0.7, 0.2, 0.1])
    return rng.permutation(np.repeat(np.arange(n_images), sizes)[:n_images])


def _latent(n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws of the 29 correlated standard-normal finding scores (the Gaussian copula)."""
    factors = rng.standard_normal((n, _LOADINGS.shape[1]))
    return factors @ _LOADINGS.T + rng.standard_normal((n, len(_FINDINGS))) * _UNIQUE


def sample_labels(n_images: int, *, imbalance: float = 100.0, seed: int = 0) -> np.ndarray:
    """(n_images, 30) uint8. Deterministic for a seed.

    Each finding's latent score mixes a shared illness factor, its clinical groups' factors and
    its own noise (a Gaussian copula); one patient's images share half of it, as follow-up
    films do. A finding is positive when its score passes the threshold that gives its target
    prevalence, and Normal exactly when no finding is. A finding that would get fewer than 3
    positives (small sets, high imbalance) also takes its highest-scoring images, so that every
    class can be trained and scored.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    rng = np.random.default_rng([_LABELS, seed])
    patients = _patient_index(n_images, seed)
    shared = _latent(patients.max() + 1, rng)[patients]
    scores = math.sqrt(_PATIENT_SHARE) * shared
    scores += math.sqrt(1 - _PATIENT_SHARE) * _latent(n_images, rng)
    findings = scores > _thresholds(_finding_targets(imbalance))
    for c in np.flatnonzero(findings.sum(axis=0) < _MIN_POSITIVES):
        findings[np.argsort(scores[:, c])[-_MIN_POSITIVES:], c] = True
    return np.column_stack([~findings.any(axis=1), findings]).astype(np.uint8)


# ------------------------------------------------------------------------------------- drawing


@dataclass
class _Anatomy:
    """One image's body geometry; findings that change anatomy edit it before rendering."""

    lung_x: float  # lateral centre of each lung's outline ellipse (mirrored)
    lung_w: float  # its half width
    lung_top: float  # y of the apices
    # float32 arrays, edited in place, so that drawing stays in float32 (twice as fast)
    base: np.ndarray  # (2,) y of the costophrenic angles, [image left, image right]
    dome: np.ndarray  # (2,) y of the diaphragm dome tops
    heart: np.ndarray  # centre x, centre y, half width, half height
    knob: np.ndarray  # aortic knob: x, y, radius
    hilum: np.ndarray  # radius, density
    spine_x: float
    spine_bend: float  # lateral bowing of the spine
    rib_top: float  # y of the first posterior rib at the spine
    rib_gap: float
    lung_dark: float  # how much darker air-filled lung is than soft tissue
    markings: float  # strength of the vessel markings
    bubble: float  # gastric air bubble radius (0: none)
    collapse: np.ndarray = field(default_factory=lambda: np.ones(2, np.float32))  # PTX: kept
    rib_break: tuple[int, int, float, float] | None = None  # rib, side, |x| of break, shift


def _sample_anatomy(rng: np.random.Generator) -> _Anatomy:
    u = rng.uniform(-1, 1, 16).tolist()  # a fixed number of draws, whatever the findings
    right_dome = 0.24 + 0.04 * u[3]
    f32 = np.float32
    return _Anatomy(
        lung_x=0.40 + 0.02 * u[0],
        lung_w=0.36 + 0.02 * u[1],
        lung_top=-0.76 + 0.03 * u[2],
        base=f32([0.45 + 0.04 * u[4], 0.47 + 0.04 * u[4]]),
        dome=f32([right_dome, right_dome + 0.05 + 0.02 * u[5]]),
        heart=f32([0.1 + 0.02 * u[6], 0.14 + 0.02 * u[7], 0.31 + 0.02 * u[8], 0.23]),
        knob=f32([0.11 + 0.01 * u[9], -0.36 + 0.02 * u[10], 0.055]),
        hilum=f32([0.055, 0.08]),
        spine_x=0.01 * u[11],
        spine_bend=0.008 * u[12],
        rib_top=-0.76 + 0.02 * u[13],
        rib_gap=0.11 + 0.006 * u[14],
        lung_dark=0.34 + 0.03 * u[15],
        markings=0.14,
        bubble=float(rng.uniform(0.03, 0.07) if rng.random() < 0.7 else 0.0),
    )


@dataclass
class _Scene:
    """What overlays need: the image's coordinates and its rendered anatomy."""

    X: np.ndarray
    Y: np.ndarray
    px: float  # one pixel in normalised units
    a: _Anatomy
    lungs: np.ndarray  # (2, H, W) lung outlines above the diaphragm, [image left, image right]
    fields: np.ndarray  # (2, H, W) their air-filled parts, not hidden by the mediastinum
    middle: np.ndarray  # (H, W) mediastinum, heart and aortic knob


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    centres = ((np.arange(size, dtype=np.float32) + 0.5) / size) * 2 - 1
    return centres[None, :].repeat(size, 0), centres[:, None].repeat(size, 1)


def _soft(f: np.ndarray, width: float) -> np.ndarray:
    """Smooth step from 0 (f << 0) to 1 (f >> 0)."""
    return 0.5 + 0.5 * np.tanh(f / width)


def _line(dist: np.ndarray, width: float, px: float) -> np.ndarray:
    """Cross-section of a thin line, widened to a pixel at low resolution, keeping its ink."""
    wide = math.hypot(width, px / 2)
    return (width / wide) * np.exp(-((dist / wide) ** 2))


def _spot(s: _Scene, x: float, y: float, r: float) -> np.ndarray:
    """A soft-edged disc, anti-aliased when smaller than a pixel."""
    wide = math.hypot(r, s.px / 2)
    return (r / wide) ** 2 * np.exp(-((((s.X - x) ** 2 + (s.Y - y) ** 2) / wide**2) ** 2))


def _dist(s: _Scene, x: float, y: float) -> np.ndarray:
    return np.sqrt((s.X - x) ** 2 + (s.Y - y) ** 2)  # np.hypot is several times slower


def _curve(s: _Scene, points: list[list[float]], width: float, n: int = 12) -> np.ndarray:
    """A thin line along a smooth Bezier curve with these (x, y) control points."""
    t = np.linspace(0, 1, n)[:, None]
    path = np.array(points, float)
    while len(path) > 1:  # de Casteljau: repeated linear interpolation
        path = [(1 - t) * p + t * q for p, q in zip(path[:-1], path[1:], strict=True)]
    return _line(_polyline_distance(s.X, s.Y, path[0]), width, s.px)


def _polyline_distance(X: np.ndarray, Y: np.ndarray, path: ArrayLike) -> np.ndarray:
    dist = np.full(X.shape, np.inf, np.float32)
    points = np.asarray(path).tolist()
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:], strict=True):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((X - x0) * dx + (Y - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        ex, ey = X - x0 - t * dx, Y - y0 - t * dy
        np.minimum(dist, ex * ex + ey * ey, out=dist)
    return np.sqrt(dist)


def _dome_y(X: np.ndarray, side: int, a: _Anatomy) -> np.ndarray:
    """The diaphragm under one lung: highest at its dome, down to the costophrenic angle."""
    i = (side + 1) // 2
    lateral = a.lung_x + a.lung_w
    curve = (a.base[i] - a.dome[i]) / (lateral - 0.38) ** 2
    d = side * X - 0.38
    return a.dome[i] + curve * np.maximum(d, 0.55 * d) ** 2  # flatter under the heart


def _lung(X: np.ndarray, Y: np.ndarray, side: int, a: _Anatomy) -> np.ndarray:
    """Soft mask of one lung field: an ellipse (apex, lateral wall) above its diaphragm.

    The outline's edge is soft (the lung thins towards the chest wall), the diaphragm sharp.
    """
    height = (1.25 - a.lung_top) / 2
    outline = (
        1 - ((side * X - a.lung_x) / a.lung_w) ** 2 - ((Y - a.lung_top - height) / height) ** 2
    )
    return _soft(outline - 0.05, 0.1) * _soft(_dome_y(X, side, a) - Y, 0.01)


def _scene(X: np.ndarray, Y: np.ndarray, px: float, a: _Anatomy) -> _Scene:
    hx, hy, hw, hh = a.heart
    u = (X - hx) * 0.94 + (Y - hy) * 0.34  # the heart's long axis points down to its apex
    v = (Y - hy) * 0.94 - (X - hx) * 0.34
    heart = _soft(1 - (u / hw) ** 2 - (v / hh) ** 2, 0.08)
    knob = _soft(1 - ((X - a.knob[0]) ** 2 + (Y - a.knob[1]) ** 2) / a.knob[2] ** 2, 0.2)
    column = _soft(0.11 + 0.03 * _soft(Y + 0.1, 0.15) - np.abs(X - 0.005), 0.01)
    middle = np.maximum(column, np.maximum(heart, knob))
    lungs = np.stack([_lung(X, Y, side, a) for side in (-1, 1)])
    return _Scene(X, Y, px, a, lungs, lungs * (1 - middle), middle)


def _shrunk(s: _Scene, side: int, scale: float, cx: float, cy: float) -> np.ndarray:
    """The lung outline of one side shrunk by ``scale`` towards (side * cx, cy)."""
    return _lung(side * cx + (s.X - side * cx) / scale, cy + (s.Y - cy) / scale, side, s.a)


def _spine_x(Y: np.ndarray, a: _Anatomy) -> np.ndarray:
    return a.spine_x + a.spine_bend * (1 - Y**2)


def _ribs(s: _Scene) -> np.ndarray:
    """Ten posterior ribs (arching, then down to the lateral wall) and fainter anterior ribs.

    Ribs are evenly spaced along the vertical, so one periodic pattern draws them all.
    """
    a, X, Y = s.a, s.X, s.Y
    t = (np.abs(X - _spine_x(Y, a)) - 0.05) / 0.72  # 0 at the spine, 1 at the lateral wall
    phase = (Y - a.rib_top + 0.1 * t - 0.38 * t**2) / a.rib_gap  # k at the centre of rib k
    rib = np.rint(phase)
    offset = (phase - rib) * a.rib_gap
    if a.rib_break is not None:  # fracture: the lateral part is shifted, and a gap opens
        k, side, where, shift = a.rib_break
        broken = rib == k
        offset = offset - shift * broken * _soft(side * X - where, 0.004)
        offset = offset + broken * np.exp(-(((side * X - where) / 0.01) ** 2))  # rib moved away
    z = (offset / (0.016 + 0.008 * t)) ** 2
    posterior = np.exp(-z * z) * _soft(phase + 0.5, 0.05) * _soft(9.5 - phase, 0.05)
    front = (Y - a.rib_top - 0.28 - 0.35 * (1 - t)) / a.rib_gap
    anterior = np.exp(-(((front - np.rint(front)) * a.rib_gap / 0.022) ** 2))
    anterior = anterior * _soft(t - 0.4, 0.05) * _soft(7.5 - front, 0.05) * _soft(front + 0.5, 0.05)
    fade = _soft(t, 0.03) * _soft(1.03 - t, 0.03) * (0.4 + 0.6 * s.fields.sum(axis=0))
    return fade * (0.075 * posterior + 0.03 * anterior)


def _spine(s: _Scene) -> np.ndarray:
    """Vertebral column: bright bodies, darker discs, pedicles as small ovals."""
    a, Y = s.a, s.Y
    offset = np.abs(s.X - _spine_x(Y, a))
    phase = (Y - a.rib_top) / (a.rib_gap * 0.9)
    phase = phase - np.floor(phase) - 0.5  # -0.5..0.5 within a vertebra
    bodies = _soft(np.cos(2 * np.pi * phase) + 0.7, 0.15)
    pedicles = np.exp(-(((offset - 0.035) / 0.012) ** 2) - (phase / 0.18) ** 2)
    return _soft(0.055 - offset, 0.006) * (0.015 + 0.025 * bodies) + 0.02 * pedicles


def _markings(s: _Scene, tables: np.ndarray, phases: list[float]) -> np.ndarray:
    """Vessel markings: wavy streaks fanning out from each hilum, fading to the periphery.

    ``tables`` (2 sides, 2 families, k) hold the streaks' strength by angle, for two crossing
    families; both sides are drawn at once in mirrored coordinates.
    """
    dx, dy = np.abs(s.X) - _HILUM[0], s.Y - _HILUM[1]
    r = np.sqrt(dx * dx + dy * dy)
    angle = np.arctan2(dy, dx)
    n = tables.shape[2]
    # each side's table, wrapped by two entries (float32 mod may round up to n), one after the other
    wrapped = np.concatenate([tables, tables[:, :, :2]], axis=2).transpose(1, 0, 2).reshape(2, -1)
    first = (s.X > 0) * (n + 2)
    streaks = np.zeros_like(r)
    for table, phase, bend in zip(wrapped, phases, (0.6, -0.4), strict=True):
        turn = (angle + bend * r + 0.12 * np.sin(9 * r + phase)) / (2 * np.pi)
        turn = (turn - np.floor(turn)) * n  # periodic, and np.mod is slow
        below = np.floor(turn)
        i, frac = below.astype(np.intp) + first, turn - below  # linear interpolation
        streaks += table[i] * (1 - frac) + table[i + 1] * frac
    return streaks * np.exp(-r / 0.35) * _soft(r - 0.05, 0.02)


def _render(s: _Scene, tables: np.ndarray, phases: list[float]) -> np.ndarray:
    """Attenuation map of the normal anatomy (air ~0, soft tissue ~0.5, bone and metal more)."""
    a, X, Y = s.a, s.X, s.Y
    shoulders = -0.97 + 0.3 * np.clip(np.abs(X) / 0.9, 0, 1) ** 2
    body = _soft(0.9 - 0.04 * Y - np.abs(X), 0.03) * _soft(Y - shoulders, 0.04)
    att = 0.04 + 0.46 * body
    vessels = a.markings * (1 - s.middle) * _markings(s, tables, phases)
    for i, side in enumerate((-1, 1)):
        kept = _shrunk(s, side, a.collapse[i], *_HILUM) if a.collapse[i] < 1 else s.lungs[i]
        air = s.fields[i] * (1.25 - 0.25 * kept)  # pneumothorax: darker where the lung left
        air = a.lung_dark * air * (1 - 0.2 * _soft(Y, 0.25))  # bases under more soft tissue
        att += kept * vessels - air
        hilum = ((X - side * _HILUM[0]) ** 2 + (Y - _HILUM[1]) ** 2) / a.hilum[0] ** 2
        att += a.hilum[1] * np.exp(-hilum)
    trachea = _soft(0.026 - np.abs(X - 0.005), 0.006) * _soft(-0.3 - Y, 0.02)
    carina = [[-0.13, -0.14], [0.005, -0.3], [0.13, -0.14]]  # main bronchi
    bronchi = _line(_polyline_distance(X, Y, carina), 0.012, s.px)
    clavicle_u = (np.abs(X) - 0.06) / 0.56
    clavicle_y = -0.57 - 0.1 * clavicle_u + 0.025 * np.sin(2 * np.pi * clavicle_u)
    clavicles = _soft(clavicle_u, 0.02) * _soft(1 - clavicle_u, 0.03)
    clavicles = clavicles * np.exp(-((((Y - clavicle_y) / 0.028) ** 2) ** 2))
    humeri = np.exp(-((((np.abs(X) - 0.95) ** 2 + (Y + 0.72) ** 2) / 0.14**2) ** 2))
    bubble = _spot(s, 0.4, a.dome[1] + 0.1, a.bubble) * _soft(a.dome[1] + 0.1 - Y, 0.01)
    att += _ribs(s) + _spine(s) + 0.15 * clavicles + 0.1 * humeri
    return att - 0.1 * (trachea + 0.6 * bronchi) - 0.25 * bubble


def draw_chest(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One image, (size, size) uint16 with values in 12-bit range.

    ``labels`` is one row of ``sample_labels`` (30 zeros and ones; Normal is not drawn, it is
    the absence of the rest). The rng draws the same numbers whatever the labels, and each
    finding draws from its own child stream, so an image with and without a finding differ
    only by that finding's signature (and the image's size only changes its resolution).
    """
    view = rng.uniform(-1, 1, 4).tolist()  # scale, shift x, shift y, rotation
    a = _sample_anatomy(rng)
    tables = rng.random((2, 2, 96), dtype=np.float32) ** 5  # a few bright angles: main vessels
    phases = rng.uniform(0, 2 * np.pi, 2).tolist()
    finding_seeds = rng.integers(0, 2**63, len(_FINDINGS))
    exposure = rng.uniform([250, 2700, 0.85], [600, 3300, 1.15])  # offset, gain, gamma
    waves = rng.uniform(-1, 1, (3, 4)).tolist()
    noise = rng.standard_normal((size, size), dtype=np.float32)

    X0, Y0 = _grid(size)
    scale, angle = 1 + 0.05 * view[0], 0.04 * view[3]
    cos, sin = math.cos(angle), math.sin(angle)
    X = (cos * X0 + sin * Y0) / scale + 0.03 * view[1]
    Y = (cos * Y0 - sin * X0) / scale + 0.03 * view[2]
    active = [
        (name, np.random.default_rng(seed))
        for name, seed, on in zip(_FINDINGS, finding_seeds, np.asarray(labels)[1:], strict=True)
        if on
    ]
    for name, child in active:
        if name in _MODIFIERS:
            _MODIFIERS[name](a, child)
    scene = _scene(X, Y, 2 / size / scale, a)
    att = _render(scene, tables, phases)
    for name, child in active:
        if name in _OVERLAYS:
            att += _OVERLAYS[name](scene, child)

    for fx, fy, phase, amp in waves:  # smooth exposure non-uniformity
        att += 0.012 * amp * np.cos(np.pi * (1.5 * fx * X + 1.5 * fy * Y) + 3 * phase)
    att = _blur(att + 0.008 * noise)
    offset, gain, gamma = exposure
    pixels = offset + gain * np.exp(gamma * np.log(np.maximum(att, 1e-4)))  # fast att ** gamma
    return np.clip(np.rint(pixels), 0, 4095).astype(np.uint16)


def _blur(image: np.ndarray) -> np.ndarray:
    """Slight separable [1, 2, 1] / 4 blur: detector unsharpness."""
    p = np.pad(image, 1, mode="edge")
    rows = (p[:-2] + 2 * p[1:-1] + p[2:]) / 4
    return (rows[:, :-2] + 2 * rows[:, 1:-1] + rows[:, 2:]) / 4


# ------------------------------------------------------------------------------------ findings
# Modifiers change the anatomy before it is drawn; overlays add attenuation after. A finding
# may have both; each uses its own rng, so its draws do not disturb the rest of the image.


def _side(rng: np.random.Generator) -> int:
    return int(rng.choice((-1, 1)))


def _sides(rng: np.random.Generator) -> tuple[int, ...]:
    """One side or both."""
    return ((-1,), (1,), (-1, 1))[rng.integers(3)]


def _lung_point(s: _Scene, rng: np.random.Generator, side: int) -> tuple[float, float]:
    """A point safely inside one lung field (not behind the heart or below the dome)."""
    x = side * rng.uniform(0.2, 0.6)
    y = rng.uniform(s.a.lung_top + 0.25, min(s.a.dome) - 0.12)
    return x, y


def _aortic_elongation(a: _Anatomy, rng: np.random.Generator) -> None:
    a.knob += (rng.uniform(0.03, 0.06), -rng.uniform(0.02, 0.05), 0)
    a.knob[2] *= rng.uniform(1.3, 1.6)


def _cardiomegaly(a: _Anatomy, rng: np.random.Generator) -> None:
    a.heart[2:] *= (rng.uniform(1.25, 1.45), rng.uniform(1.05, 1.15))
    a.heart[0] += 0.03


def _pleural_effusion(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Bright basal fluid with a meniscus rising towards the lateral wall."""
    out = np.zeros_like(s.X)
    for side in _sides(rng):
        i = (side + 1) // 2
        level = s.a.base[i] - rng.uniform(0.1, 0.4)
        lateral = np.clip((side * s.X - 0.1) / 0.65, 0, 1)
        fluid = _soft(s.Y - level + 0.14 * lateral**2, 0.02)
        out += s.a.lung_dark * rng.uniform(0.8, 1.0) * fluid * s.fields[i]
    return out


def _cluster(rng: np.random.Generator, n: int, spread: float, r: float) -> list[list[float]]:
    """n (dx, dy, radius) triples scattered around a centre, radii around r."""
    return (rng.normal(0, 1, (n, 3)) * [spread, spread, r / 5] + [0, 0, r]).tolist()


def _lung_spots(
    s: _Scene,
    rng: np.random.Generator,
    most: int,
    brightness: tuple[float, float],
    radius: tuple[float, float],
) -> np.ndarray:
    """1 to ``most`` round spots at random lung points."""
    out = np.zeros_like(s.X)
    for _ in range(rng.integers(1, most + 1)):
        x, y = _lung_point(s, rng, _side(rng))
        out += rng.uniform(*brightness) * _spot(s, x, y, rng.uniform(*radius))
    return out


def _nodule(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """One or two small round opacities in the lungs."""
    return _lung_spots(s, rng, 2, (0.1, 0.2), (0.02, 0.04))


def _atelectasis(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Plate-like band: a short, nearly horizontal line in the lower zone."""
    side = _side(rng)
    x, y = side * rng.uniform(0.3, 0.55), s.a.dome[(side + 1) // 2] - rng.uniform(0.08, 0.2)
    angle, length = rng.uniform(-0.35, 0.2), rng.uniform(0.2, 0.35)
    u = (s.X - x) * math.cos(angle) + (s.Y - y) * math.sin(angle)
    v = (s.Y - y) * math.cos(angle) - (s.X - x) * math.sin(angle)
    band = _line(v, rng.uniform(0.01, 0.02), s.px) * _soft(length / 2 - np.abs(u), 0.03)
    return rng.uniform(0.15, 0.25) * band


def _pleural_thickening(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Bright rim along the upper lateral pleura (one side or both)."""
    out = np.zeros_like(s.X)
    for side in _sides(rng):
        rim = s.lungs[(side + 1) // 2] - _shrunk(s, side, rng.uniform(0.9, 0.94), 0.4, 0.0)
        upper = (1 - s.middle) * _soft(0.2 - s.Y, 0.1)
        out += s.a.lung_dark * rng.uniform(0.6, 0.9) * np.clip(rim, 0, 1) * upper
    return out


def _aortic_atheromatosis(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Calcified rim on the upper lateral edge of the aortic knob."""
    x, y, r = s.a.knob
    rim = _line(_dist(s, x, y) - r, 0.006, s.px)
    arc = _soft(0.3 - (s.Y - y) / r, 0.2) * _soft((s.X - x) / r + 0.2, 0.2)
    return rng.uniform(0.3, 0.5) * rim * arc


def _support_devices(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """ECG electrodes and leads, endotracheal tube, nasogastric tube, pacemaker."""
    kinds = rng.random(4) < [0.7, 0.3, 0.3, 0.25]
    kinds[0] |= not kinds.any()
    out = np.zeros_like(s.X)
    draws = rng.uniform(-1, 1, (4, 4)).tolist()  # drawn whatever the kinds, one per electrode
    for k, (u, v, du, dv) in enumerate(draws):
        if kinds[0] and k < 3:
            x, y = 0.55 * u, 0.5 * v - 0.1
            ring = _line(_dist(s, x, y) - 0.03, 0.006, s.px)
            lead = [[x, y], [x + 0.3 * du, 0.5 * (y + 1)], [x + 0.5 * dv, 1.1]]  # to the edge
            out += 0.45 * ring + 0.4 * _spot(s, x, y, 0.01) + 0.3 * _curve(s, lead, 0.004)
    if kinds[1]:  # endotracheal tube: two parallel walls down the trachea, tip above the carina
        tip = -0.45 + 0.08 * draws[3][0]
        walls = sum(_line(np.abs(s.X - 0.005 - dx), 0.004, s.px) for dx in (-0.018, 0.018))
        out += 0.3 * walls * _soft(tip - s.Y, 0.005)
    if kinds[2]:  # nasogastric tube down the oesophagus into the stomach
        stomach = s.a.dome[1] + 0.12
        path = [[-0.01, -1.1], [0.02, -0.2], [0.05, stomach + 0.05], [0.3, stomach]]
        out += 0.3 * _curve(s, path, 0.006)
    if kinds[3]:  # pacemaker box under the left clavicle, lead into the right ventricle
        box = _soft(0.07 - np.abs(s.X - 0.5), 0.01) * _soft(0.045 - np.abs(s.Y + 0.5), 0.01)
        path = [[0.45, -0.5], [0.1, -0.5], [-0.02, 0.0], [0.15, 0.35]]
        out += 0.8 * box + 0.4 * _curve(s, path, 0.006)
    return out


def _alveolar_pattern(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Fluffy, patchy consolidation: a cluster of soft blobs inside one lung."""
    side = _side(rng)
    cx, cy = _lung_point(s, rng, side)
    patches = np.zeros_like(s.X)
    for dx, dy, r in _cluster(rng, rng.integers(5, 10), 0.09, 0.08):
        patches += np.exp(-(_dist(s, cx + dx, cy + dy) ** 2) / r**2)
    return rng.uniform(0.15, 0.3) * (1 - np.exp(-2 * patches)) * s.fields[(side + 1) // 2]


def _fracture(a: _Anatomy, rng: np.random.Generator) -> None:
    shift = rng.uniform(0.02, 0.04) * rng.choice((-1, 1))
    a.rib_break = (int(rng.integers(2, 8)), _side(rng), rng.uniform(0.4, 0.65), shift)


def _hernia(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Hiatal hernia: a round lucency behind the heart with an air-fluid level and a wall."""
    x, y = rng.uniform(-0.02, 0.1), s.a.heart[1] + rng.uniform(-0.02, 0.08)
    r = rng.uniform(0.06, 0.1)
    air = _spot(s, x, y, r) * _soft(y + 0.3 * r - s.Y, 0.006)
    wall = _line(_dist(s, x, y) - r, 0.006, s.px)
    return rng.uniform(0.12, 0.2) * (0.4 * wall - air)


def _emphysema(a: _Anatomy, rng: np.random.Generator) -> None:
    a.lung_dark *= rng.uniform(1.15, 1.3)
    a.markings *= 0.45
    a.dome[:] = a.base - 0.3 * (a.base - a.dome) + 0.03  # flat diaphragm


def _emphysema_bullae(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Thin-walled lucent bullae in the upper zones (not always)."""
    out = np.zeros_like(s.X)
    for _ in range(rng.integers(0, 3)):
        side = _side(rng)
        x, y, r = side * rng.uniform(0.3, 0.55), rng.uniform(-0.6, -0.35), rng.uniform(0.06, 0.11)
        wall = _line(_dist(s, x, y) - r, 0.004, s.px)
        out += 0.12 * wall - 0.06 * _spot(s, x, y, r)
    return out


def _azygos_lobe(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Fine curved fissure in the right upper lung ending in a teardrop (the azygos vein)."""
    knot = [-0.09 + 0.02 * rng.uniform(-1, 1), -0.38 + 0.04 * rng.uniform(-1, 1)]
    top = [rng.uniform(-0.4, -0.25), s.a.lung_top + 0.02]
    fissure = _curve(s, [top, [top[0] - 0.04, -0.5], knot], 0.004)
    return rng.uniform(0.15, 0.25) * (fissure + _spot(s, *knot, 0.02))


def _pneumothorax(a: _Anatomy, rng: np.random.Generator) -> None:
    a.collapse[(_side(rng) + 1) // 2] = rng.uniform(0.7, 0.88)


def _pleural_line(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Visceral pleural line at the edge of the collapsed lung (pneumothorax)."""
    out = np.zeros_like(s.X)
    for i, side in enumerate((-1, 1)):
        if s.a.collapse[i] < 1:
            kept = _shrunk(s, side, s.a.collapse[i], *_HILUM)
            out += rng.uniform(0.1, 0.2) * 4 * kept * (1 - kept) * s.fields[i]
    return out


def _hydropneumothorax(a: _Anatomy, rng: np.random.Generator) -> None:
    a.collapse[(_side(rng) + 1) // 2] = rng.uniform(0.6, 0.8)


def _air_fluid_level(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Pleural line plus fluid in the pleural space below a sharp horizontal level."""
    out = _pleural_line(s, rng)
    i = int(np.argmin(s.a.collapse))
    level = s.a.dome[i] - rng.uniform(0.1, 0.3)
    return out + s.a.lung_dark * rng.uniform(0.7, 0.9) * _soft(s.Y - level, 0.004) * s.fields[i]


def _kyphosis(a: _Anatomy, rng: np.random.Generator) -> None:
    a.spine_bend = rng.uniform(0.04, 0.08) * rng.choice((-1, 1))
    a.rib_gap *= 0.95  # crowded vertebrae and ribs


def _mass(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """A larger, lobulated opacity."""
    x, y = _lung_point(s, rng, _side(rng))
    r = rng.uniform(0.07, 0.12)
    lobes = np.zeros_like(s.X)
    for dx, dy, size in _cluster(rng, 3, 0.35 * r, 0.7 * r):
        lobes += _spot(s, x + dx, y + dy, size)
    return rng.uniform(0.2, 0.32) * np.clip(lobes, 0, 1)


def _subcutaneous_emphysema(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Dark streaks of gas along the muscle fibres of the lateral chest wall."""
    out = np.zeros_like(s.X)
    for side in _sides(rng):
        lateral = side * s.X
        wall = _soft(lateral - s.a.lung_x - s.a.lung_w + 0.03, 0.02) * _soft(0.88 - lateral, 0.03)
        angle, period = rng.uniform(0.6, 1.2), rng.uniform(0.03, 0.05)
        phase = (s.X * side * math.cos(angle) + s.Y * math.sin(angle)) / period
        streaks = np.maximum(np.cos(2 * np.pi * phase + rng.uniform(0, 6)), 0) ** 2
        streaks = streaks * streaks
        upper_chest = _soft(0.4 - s.Y, 0.1) * _soft(s.Y + 0.6, 0.05)  # below the shoulders
        out -= rng.uniform(0.12, 0.25) * wall * streaks * upper_chest
    return out


def _pneumoperitoneo(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Free gas: a dark crescent just under a diaphragm dome (usually the right one)."""
    side = -1 if rng.random() < 0.75 else 1
    dome = _dome_y(s.X, side, s.a)
    span = np.clip(1 - ((side * s.X - 0.4) / 0.3) ** 2, 0, 1)
    thick = rng.uniform(0.025, 0.05) * span
    crescent = _soft(s.Y - dome - 0.01, 0.005) * _soft(dome + 0.01 + thick - s.Y, 0.005) * span
    return -rng.uniform(0.2, 0.3) * crescent


def _vascular_hilar_enlargement(a: _Anatomy, rng: np.random.Generator) -> None:
    a.hilum *= (rng.uniform(1.4, 1.8), rng.uniform(1.3, 1.7))


def _vertebral_degenerative(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Osteophytes: small bright spurs at the edges of several lower thoracic discs."""
    out = np.zeros_like(s.X)
    for k in rng.choice(np.arange(3, 11), size=rng.integers(3, 7), replace=False):
        y = s.a.rib_top + s.a.rib_gap * 0.9 * (k + 0.5)
        x = s.a.spine_x + s.a.spine_bend * (1 - y**2) + _side(rng) * rng.uniform(0.06, 0.07)
        out += rng.uniform(0.2, 0.35) * _spot(s, x, y, rng.uniform(0.01, 0.016))
    return out


def _hyperinflated_lung(a: _Anatomy, rng: np.random.Generator) -> None:
    a.base += rng.uniform(0.05, 0.09)
    a.dome += rng.uniform(0.1, 0.15)
    a.heart[2] *= 0.9  # long, narrow heart


def _interstitial_pattern(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Reticular net of fine lines, strongest in the lower and peripheral lungs."""
    angle, period = rng.uniform(0, np.pi), rng.uniform(0.04, 0.06)
    u = (s.X * math.cos(angle) + s.Y * math.sin(angle)) / period
    v = (s.Y * math.cos(angle) - s.X * math.sin(angle)) / period
    phase = rng.uniform(0, 2 * np.pi, 2)
    warp = 0.4 * np.sin(7 * s.X + 5 * s.Y + phase[0]) + 0.3 * np.sin(9 * s.Y - 6 * s.X + phase[1])
    net = np.maximum(np.cos(np.pi * (u + warp)) ** 2, np.cos(np.pi * (v - warp)) ** 2) ** 2
    net = net * net  # thin lines: cos ** 8
    where = s.fields.sum(axis=0) * _soft(s.Y - rng.uniform(-0.4, 0.0), 0.2)
    return rng.uniform(0.05, 0.1) * net * where


def _central_venous_catheter(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """A thin line from the neck or a subclavian vein to the superior vena cava."""
    tip = [-0.05, rng.uniform(-0.25, -0.05)]
    side = _side(rng)
    if rng.random() < 0.5:  # jugular
        path = [[side * 0.2, -1.05], [side * 0.12, -0.62], [-0.06, -0.45], tip]
    else:  # subclavian
        path = [[side * 0.6, -0.66], [side * 0.25, -0.62], [-0.05, -0.55], tip]
    line = rng.uniform(0.25, 0.4) * _curve(s, path, rng.uniform(0.004, 0.007))
    return line + 0.5 * _spot(s, side * 0.45, -0.5, 0.035) if rng.random() < 0.3 else line


def _hypoexpansion(a: _Anatomy, rng: np.random.Generator) -> None:
    lift = rng.uniform(0.08, 0.14)
    a.base -= lift
    a.dome -= lift
    a.lung_w *= 0.95
    a.heart[2] *= 1.08  # a low-volume film makes the heart look wider


def _bronchiectasis(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Clustered ring shadows (thick-walled, dilated bronchi) in a lower zone."""
    side = _side(rng)
    cx, cy = side * rng.uniform(0.25, 0.45), s.a.dome[(side + 1) // 2] - rng.uniform(0.12, 0.25)
    out = np.zeros_like(s.X)
    for dx, dy, r in _cluster(rng, rng.integers(5, 10), 0.05, 0.025):
        out += _line(_dist(s, cx + dx, cy + dy) - r, 0.006, s.px)
    return rng.uniform(0.12, 0.22) * np.clip(out, 0, 1)


def _hemidiaphragm_elevation(a: _Anatomy, rng: np.random.Generator) -> None:
    i = int(rng.integers(2))
    a.dome[i] -= rng.uniform(0.1, 0.18)
    a.base[i] -= rng.uniform(0.06, 0.12)


def _sternotomy(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Cerclage wire loops down the midline, very bright (metal)."""
    x0 = rng.uniform(-0.02, 0.04)
    out = np.zeros_like(s.X)
    for y in np.linspace(-0.5, rng.uniform(0.05, 0.2), rng.integers(4, 7)):
        loop = np.sqrt(((s.X - x0) / 0.03) ** 2 + ((s.Y - y) / 0.014) ** 2) - 1
        out += _line(loop * 0.014, 0.005, s.px) + 0.5 * _spot(s, x0 + 0.032, y, 0.01)
    return 0.7 * np.clip(out, 0, 1.5)


def _calcified_densities(s: _Scene, rng: np.random.Generator) -> np.ndarray:
    """A few very bright tiny dots (calcified granulomas)."""
    return _lung_spots(s, rng, 4, (0.35, 0.6), (0.01, 0.018))


_MODIFIERS = {
    "aortic elongation": _aortic_elongation,
    "cardiomegaly": _cardiomegaly,
    "fracture": _fracture,
    "Emphysema": _emphysema,
    "Hydropneumothorax": _hydropneumothorax,
    "Kyphosis": _kyphosis,
    "Pneumothorax": _pneumothorax,
    "vascular hilar enlargement": _vascular_hilar_enlargement,
    "hyperinflated lung": _hyperinflated_lung,
    "hypoexpansion": _hypoexpansion,
    "hemidiaphragm elevation": _hemidiaphragm_elevation,
}
_OVERLAYS = {
    "pleural effusion": _pleural_effusion,
    "Nodule": _nodule,
    "atelectasis": _atelectasis,
    "pleural thickening": _pleural_thickening,
    "aortic atheromatosis": _aortic_atheromatosis,
    "Support Devices": _support_devices,
    "alveolar pattern": _alveolar_pattern,
    "Hernia": _hernia,
    "Emphysema": _emphysema_bullae,
    "azygos lobe": _azygos_lobe,
    "Hydropneumothorax": _air_fluid_level,
    "Mass": _mass,
    "Pneumothorax": _pleural_line,
    "Subcutaneous Emphysema": _subcutaneous_emphysema,
    "pneumoperitoneo": _pneumoperitoneo,
    "vertebral degenerative changes": _vertebral_degenerative,
    "interstitial pattern": _interstitial_pattern,
    "central venous catheter": _central_venous_catheter,
    "bronchiectasis": _bronchiectasis,
    "sternotomy": _sternotomy,
    "calcified densities": _calcified_densities,
}


# ------------------------------------------------------------------------------------- writing


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(map(str, rng.integers(0, 10, n)))


def _metadata(n_images: int, seed: int) -> pd.DataFrame:
    """PadChest-like ImageID, StudyDate_DICOM and PatientID columns."""
    rng = np.random.default_rng([_META, seed])
    patients = _patient_index(n_images, seed)
    patient_ids = np.array([_digits(rng, 38) for _ in range(patients.max() + 1)])
    first_day = rng.integers(0, 9 * 365, patients.max() + 1)  # PadChest spans 2009-2017
    days = first_day[patients] + rng.integers(0, 720, n_images)
    dates = (pd.Timestamp("2009-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y%m%d")
    letters = np.array(list("0123456789abcdefghijklmnopqrstuvwxyz"))
    image_ids = [
        f"{_digits(rng, 38)}_{''.join(rng.choice(letters, 6))}.png" for _ in range(n_images)
    ]
    columns = (image_ids, list(dates), list(patient_ids[patients]))
    return pd.DataFrame(dict(zip(CXR_LT_2026_META_COLUMNS, columns, strict=True)))


TEST_ANSWERS = "test_labels.csv"
TEST_SEED_OFFSET = 2**40  # test images come from their own streams: new patients, new draws


def _draw_table(
    folder: Path, n_images: int, size: int, imbalance: float, seed: int
) -> pd.DataFrame:
    """Draw ``n_images`` labelled images into ``folder/images``; returns their table."""
    labels = sample_labels(n_images, imbalance=imbalance, seed=seed)
    table = _metadata(n_images, seed)
    for i, (image_id, row) in enumerate(zip(table["ImageID"], labels, strict=True)):
        pixels = draw_chest(row, size, np.random.default_rng([_IMAGES, seed, i]))
        Image.fromarray(pixels).save(folder / "images" / image_id, compress_level=1)  # fast
    table[list(CXR_LT_2026_CLASSES)] = labels
    return table


# Two-view studies: the first film is PA (or AP, as for patients too ill to stand), the second
# a lateral. Labels come from the study's report, so both images carry the study's; each view
# shows a finding only with its projection's probability, the lateral being the weaker witness.
AP_SHARE = 0.3
VISIBLE = {"PA": 0.85, "AP": 0.85, "LATERAL": 0.6}
STUDY_COLUMNS = ("StudyID", "Projection")  # PadChest's names


def _two_view_table(
    folder: Path, n_images: int, size: int, imbalance: float, seed: int
) -> pd.DataFrame:
    """Draw ``n_images`` images of two-view studies (the last study has one when ``n_images``
    is odd) into ``folder/images``; returns their table, StudyID and Projection included."""
    n_studies = (n_images + 1) // 2
    study = np.arange(n_images) // 2
    labels = sample_labels(n_studies, imbalance=imbalance, seed=seed)[study]
    studies = _metadata(n_studies, seed)
    rng = np.random.default_rng([_VIEWS, seed])
    first = np.where(rng.random(n_studies) < AP_SHARE, "AP", "PA")
    projections = np.where(np.arange(n_images) % 2 == 0, first[study], "LATERAL")
    shown = np.array([VISIBLE[p] for p in projections])[:, None]
    visible = rng.random((n_images, len(_FINDINGS))) < shown
    table = studies.iloc[study].reset_index(drop=True)
    table["ImageID"] = [f"{_digits(rng, 38)}_{_digits(rng, 6)}.png" for _ in range(n_images)]
    table[STUDY_COLUMNS[0]] = np.array([_digits(rng, 38) for _ in range(n_studies)])[study]
    table[STUDY_COLUMNS[1]] = projections
    for i, (image_id, row, shown) in enumerate(zip(table["ImageID"], labels, visible, strict=True)):
        drawn = np.concatenate([row[:1], row[1:] * shown])
        pixels = draw_chest(drawn, size, np.random.default_rng([_IMAGES, seed, i]))
        Image.fromarray(pixels).save(folder / "images" / image_id, compress_level=1)
    table[list(CXR_LT_2026_CLASSES)] = labels
    return table


def _write_into(
    folder: Path, n_images: int, size: int, imbalance: float, seed: int, n_test: int, views: int
) -> None:
    (folder / "images").mkdir()
    draw = _two_view_table if views == 2 else _draw_table
    shipped = ["ImageID", *STUDY_COLUMNS] if views == 2 else ["ImageID"]
    draw(folder, n_images, size, imbalance, seed).to_csv(folder / "train.csv", index=False)
    if n_test:
        test = draw(folder, n_test, size, imbalance, seed + TEST_SEED_OFFSET)
        test[shipped].to_csv(folder / "test_task1.csv", index=False)  # as the organisers ship it
        test.to_csv(folder / TEST_ANSWERS, index=False)  # the key real test sets keep secret


def write_synthetic_cxr(
    folder: Path,
    *,
    n_images: int = 2000,
    size: int = 128,
    imbalance: float = 100.0,
    seed: int = 0,
    n_test: int = 0,
    views: int = 1,
) -> Path:
    """Generate into a temporary sibling folder, then rename it to `folder` (atomic: an
    interrupted run never leaves a half-written data set). Returns folder. If folder exists,
    returns it untouched.

    The folder holds ``train.csv`` (ImageID, StudyDate_DICOM, PatientID, then the 30 labels) and
    ``images/<ImageID>``, 16-bit PNGs using 12 bits, like the real CXR-LT 2026 data; with
    ``n_test`` also ``test_task1.csv`` (ImageID only, as the challenge ships it) and the answer
    key ``test_labels.csv``. With ``views=2`` the images are two-view studies (see
    :func:`_two_view_table`) and both CSVs also hold StudyID and Projection.
    """
    folder = Path(folder)
    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        _write_into(tmp, n_images, size, imbalance, seed, n_test, views)
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise  # otherwise a concurrent run finished first: keep its data set
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
