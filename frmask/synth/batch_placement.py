"""Many jittered template placements at once: :class:`~frmask.synth.render.JitterPlacer` for a whole batch.

:class:`BatchPlacer` fits one homography per sample (template anchors -> shifted landmarks) for N samples in a
few numpy operations on stacked arrays instead of N ``cv2.findHomography`` calls, and picks each sample's
template level as :func:`~frmask.synth.render.place_template` does.

The fit minimises the same objective as ``cv2.findHomography(src, dst, 0)`` for five or more points: the sum
of squared reprojection errors in output pixels, ``H[2, 2] = 1``. It starts from the normalised direct linear
transform (the eigenvector of the smallest eigenvalue of ``A^T A``, points centred and scaled isotropically)
and takes :data:`GAUSS_NEWTON_STEPS` Gauss-Newton steps in float64 (the dst scaling is isotropic, so the
normalised problem has the same minimiser). OpenCV refines the same start with
Levenberg-Marquardt and stops at its own tolerance, so the two homographies differ by about 1e-6 relative
(this fit reaches a reprojection error no larger than OpenCV's; ``tests/test_batch_placement.py`` checks
both on drawn jitters), well below the 1/32-pixel rounding of the warp's sampling positions. Each
sample's result depends on that sample alone (per-sample arithmetic on stacked arrays, no reduction across
samples), so it does not change with the batch it comes in.
"""

from __future__ import annotations

import math

import numpy as np

from frmask.synth.render import JitterPlacer, _prepared

__all__ = ["GAUSS_NEWTON_STEPS", "BatchPlacer", "fit_homographies"]

GAUSS_NEWTON_STEPS = 6


def _normaliser(points: np.ndarray) -> np.ndarray:
    """(..., 3, 3) similarity taking (..., n, 2) ``points`` to centroid 0 and mean distance sqrt(2)."""
    centre = points.mean(axis=-2)
    scale = math.sqrt(2.0) / np.linalg.norm(points - centre[..., None, :], axis=-1).mean(axis=-1)
    t = np.zeros(points.shape[:-2] + (3, 3))
    t[..., 0, 0] = t[..., 1, 1] = scale
    t[..., :2, 2] = -scale[..., None] * centre
    t[..., 2, 2] = 1.0
    return t


def _apply(t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Similarities (..., 3, 3) applied to points (..., n, 2) (no projective part)."""
    return points * t[..., None, 0:1, 0] + t[..., None, :2, 2]


def fit_homographies(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """float64 (N, 3, 3) homographies, ``H[2, 2] = 1``, taking the template points ``src`` (n, 2) to each
    sample's ``dst[i]`` (N, n, 2), n >= 5, least squares in reprojection error (see the module notes). No
    degeneracy checks: the caller makes sure the points are in general position (non-finite rows come back
    non-finite)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ts, td = _normaliser(src), _normaliser(dst)
    x, y = _apply(ts, src).T  # (n,) each, shared by every sample
    uv = _apply(td, dst)
    u, v = uv[..., 0], uv[..., 1]  # (N, n)
    n_samples, n = u.shape
    one = np.ones(n)
    # DLT: rows [x y 1 0 0 0 -ux -uy -u] and [0 0 0 x y 1 -vx -vy -v] per point
    a = np.empty((n_samples, 2 * n, 9))
    a[:, :n, 0:3] = np.stack([x, y, one], 1)
    a[:, :n, 3:6] = 0.0
    a[:, :n, 6:9] = -u[..., None] * np.stack([x, y, one], 1)
    a[:, n:, 0:3] = 0.0
    a[:, n:, 3:6] = np.stack([x, y, one], 1)
    a[:, n:, 6:9] = -v[..., None] * np.stack([x, y, one], 1)
    _, vectors = np.linalg.eigh(np.einsum("sij,sik->sjk", a, a))
    h = vectors[:, :, 0]
    h = h[:, :8] / h[:, 8:9]
    for _ in range(GAUSS_NEWTON_STEPS):
        w = h[:, 6:7] * x + h[:, 7:8] * y + 1.0
        pu = (h[:, 0:1] * x + h[:, 1:2] * y + h[:, 2:3]) / w
        pv = (h[:, 3:4] * x + h[:, 4:5] * y + h[:, 5:6]) / w
        jac = np.zeros((n_samples, 2 * n, 8))
        jac[:, :n, 0], jac[:, :n, 1], jac[:, :n, 2] = x / w, y / w, 1.0 / w
        jac[:, n:, 3], jac[:, n:, 4], jac[:, n:, 5] = x / w, y / w, 1.0 / w
        jac[:, :n, 6], jac[:, :n, 7] = -pu * x / w, -pu * y / w
        jac[:, n:, 6], jac[:, n:, 7] = -pv * x / w, -pv * y / w
        residual = np.concatenate([pu - u, pv - v], axis=1)
        normal = np.einsum("sij,sik->sjk", jac, jac)
        gradient = np.einsum("sij,si->sj", jac, residual)
        h = h - np.linalg.solve(normal, gradient[..., None])[..., 0]
    hn = np.concatenate([h, np.ones((n_samples, 1))], axis=1).reshape(n_samples, 3, 3)
    homography = np.linalg.solve(td, hn) @ ts  # td^-1 hn ts: back to pixels
    return homography / homography[:, 2:3, 2:3]


class BatchPlacer:
    """``placer(jitters)`` for N samples at once: ``(homographies float64 (N, 3, 3), levels int64 (N,))``, row i
    what ``JitterPlacer(template, landmarks, size, max_shift)(jitters[i])`` gives, up to the fit's rounding
    (module notes). Rows outside the placer's safe range (shifts over ``max_shift``), non-finite fits and fits
    that fold the template go through the :class:`~frmask.synth.render.JitterPlacer` one by one (its checks and
    errors)."""

    def __init__(self, placer: JitterPlacer):
        self.placer = placer
        prepared = _prepared(placer.template)
        self._corners = prepared.corners
        self._centre = placer._src.mean(axis=0)
        self._top = math.floor(math.log2(max(prepared.shape)))

    def __call__(self, jitters) -> tuple[np.ndarray, np.ndarray]:
        jitters = np.asarray(jitters, np.float64)
        src, dst0 = self.placer._src, self.placer._dst
        if jitters.ndim != 3 or jitters.shape[1:] != dst0.shape:
            raise ValueError(f"jitters must be (N, {dst0.shape[0]}, 2), got {jitters.shape}")
        n = len(jitters)
        homographies = np.empty((n, 3, 3))
        levels = np.zeros(n, np.int64)
        fast = np.all(np.abs(jitters) <= self.placer.max_shift, axis=(1, 2)) & (len(src) >= 5)
        if fast.any():
            fitted = fit_homographies(src, dst0 + jitters[fast])
            w = self._corners @ fitted[:, 2, :2].transpose() + fitted[:, 2, 2]  # (4, N): the horizon side
            good = np.all(np.isfinite(fitted), axis=(1, 2)) & (np.all(w > 0, axis=0) | np.all(w < 0, axis=0))
            rows = np.flatnonzero(fast)
            fast[rows[~good]] = False
            homographies[rows[good]] = fitted[good]
            for row, det in zip(rows[good], self._jacobian_dets(fitted[good])):
                minification = 1.0 / math.sqrt(max(abs(float(det)), 1e-300))
                k = max(0, math.floor(math.log2(minification))) if minification > 1 else 0
                levels[row] = min(k, self._top)
        for row in np.flatnonzero(~fast):
            homographies[row], levels[row] = self.placer(jitters[row])
        return homographies, levels

    def _jacobian_dets(self, h: np.ndarray) -> np.ndarray:
        """Determinant of each homography's Jacobian at the anchors' centroid (as render._jacobian)."""
        x, y = self._centre
        w = h[:, 2, 0] * x + h[:, 2, 1] * y + h[:, 2, 2]
        u = h[:, 0, 0] * x + h[:, 0, 1] * y + h[:, 0, 2]
        v = h[:, 1, 0] * x + h[:, 1, 1] * y + h[:, 1, 2]
        j00 = (h[:, 0, 0] * w - u * h[:, 2, 0]) / w**2
        j01 = (h[:, 0, 1] * w - u * h[:, 2, 1]) / w**2
        j10 = (h[:, 1, 0] * w - v * h[:, 2, 0]) / w**2
        j11 = (h[:, 1, 1] * w - v * h[:, 2, 1]) / w**2
        return j00 * j11 - j01 * j10
