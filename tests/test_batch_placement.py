"""frmask.synth.batch_placement: batch-wise homography fits against cv2.findHomography (JitterPlacer)."""

from __future__ import annotations

import numpy as np

from frmask.synth.batch_placement import BatchPlacer, fit_homographies
from frmask.synth.render import JitterPlacer
from frmask.train.masks import _PLACERS, MaskAugment, _frame_landmarks


def _reprojection_error(src, dst, homographies):
    p = np.c_[src, np.ones(len(src))] @ homographies.transpose(0, 2, 1)
    return ((p[..., :2] / p[..., 2:] - dst) ** 2).sum(axis=(1, 2))


def _jitters(aug, kind, n):
    draws = [d for d in (aug.draw(5, "fit", i) for i in range(8 * n)) if d.kind == kind][:n]
    return np.stack([d.jitter for d in draws])


def test_batch_fit_matches_cv2_and_reaches_its_error():
    aug = MaskAugment(prob=1.0, jitter=3.0).prepare()
    for kind in range(len(aug.specs)):
        jitters = _jitters(aug, kind, 40)
        placer = JitterPlacer(aug.templates()[kind], _frame_landmarks(), (112, 112), 3.0)
        want = [placer(j) for j in jitters]
        got_h, got_levels = BatchPlacer(placer)(jitters)
        want_h = np.stack([w[0] for w in want])
        assert got_levels.tolist() == [w[1] for w in want]
        relative = np.abs(got_h - want_h).max(axis=(1, 2)) / np.abs(want_h).max(axis=(1, 2))
        assert relative.max() < 1e-5, relative.max()
        dst = placer._dst + jitters
        # the same least-squares objective: never worse than OpenCV's (which stops at its tolerance)
        assert np.all(_reprojection_error(placer._src, dst, got_h)
                      <= _reprojection_error(placer._src, dst, want_h) + 1e-9)


def test_batch_fit_rows_do_not_depend_on_the_batch():
    aug = MaskAugment(prob=1.0, jitter=3.0).prepare()
    jitters = _jitters(aug, 0, 12)
    aug.placement(next(d for d in (aug.draw(5, "fit", i) for i in range(50)) if d.kind == 0))
    placer = _PLACERS[aug.specs[0]]
    all_h, all_levels = BatchPlacer(placer)(jitters)
    for i in (0, 5, 11):
        one_h, one_level = BatchPlacer(placer)(jitters[i:i + 1])
        assert np.array_equal(one_h[0], all_h[i]) and one_level[0] == all_levels[i]
    part = fit_homographies(placer._src, placer._dst + jitters[3:7])
    assert np.array_equal(part, fit_homographies(placer._src, placer._dst + jitters)[3:7])


def test_out_of_range_shifts_take_the_checked_path():
    aug = MaskAugment(prob=1.0, jitter=3.0).prepare()
    aug.placement(next(d for d in (aug.draw(5, "fit", i) for i in range(50)) if d.kind == 0))
    placer = _PLACERS[aug.specs[0]]
    jitters = _jitters(aug, 0, 3)
    jitters[1] *= 2.0  # beyond max_shift: JitterPlacer's own (checked) result, exactly
    got_h, got_levels = BatchPlacer(placer)(jitters)
    want_h, want_level = placer(jitters[1])
    assert np.array_equal(got_h[1], want_h) and got_levels[1] == want_level


def test_placements_without_jitter_are_the_fixed_placement():
    aug = MaskAugment(prob=1.0, jitter=0.0).prepare()
    kinds = np.array([2, 0, 2, 1])
    homographies, levels = aug.placements(kinds, np.zeros((4, aug.anchor_count, 2)))
    for row, kind in enumerate(kinds):
        want_h, want_level = aug.placement(next(d for d in (aug.draw(1, "z", i) for i in range(80))
                                                if d.kind == kind))
        assert np.array_equal(homographies[row], want_h) and levels[row] == want_level
