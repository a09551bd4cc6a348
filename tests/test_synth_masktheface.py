"""MaskTheFace templates: masks.cfg parsing, loading, placement in the ArcFace frame, errors."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from frmask.synth.benchmark import frame_landmarks
from frmask.synth.masktheface import masktheface_names, masktheface_template, read_masks_cfg
from frmask.synth.render import warp_template
from frmask.synth.template import TemplateError

MTF = Path(__file__).resolve().parents[2] / "shared" / "data" / "masktheface"


@pytest.fixture(scope="module")
def folder():
    if not (MTF / "masks.cfg").is_file():
        pytest.skip(f"MaskTheFace templates not found at {MTF}")
    return MTF


def test_every_template_loads(folder):
    names = masktheface_names(folder)
    assert len(names) == 21 and "surgical_blue" in names and "empty" not in names
    for name in names:
        t = masktheface_template(folder, name)
        assert t.landmarks == ("mask_a", "mask_b", "mask_c", "mask_d", "mask_e", "mask_f")
        assert t.rgba.shape[2] == 4 and t.rgba[..., 3].any()


@pytest.mark.parametrize("name", ["surgical", "surgical_blue", "N95", "KN95", "cloth"])
def test_frontal_templates_cover_nose_and_mouth_not_eyes(folder, name):
    w = warp_template(masktheface_template(folder, name), frame_landmarks())
    a = w.alpha
    assert a[74:80, 50:62].mean() > 0.95  # below the nose tip (56, 71.7)
    assert a[88:97, 40:72].mean() > 0.95  # mouth
    for x, y in ((38.3, 51.7), (73.5, 51.5)):  # eyes
        assert a[int(y) - 3:int(y) + 4, int(x) - 3:int(x) + 4].max() < 0.05  # within 3 px of the eye centre


def test_cfg_errors(tmp_path):
    with pytest.raises(TemplateError, match="no MaskTheFace masks.cfg"):
        read_masks_cfg(tmp_path)
    (tmp_path / "masks.cfg").write_text("[m]\ntemplate: masks/templates/m.png\nmask_a: 1, 2\n")
    with pytest.raises(TemplateError, match=r"\[m\]: missing anchor mask_b"):
        read_masks_cfg(tmp_path)
    anchors = "".join(f"mask_{c}: {x}, {y}\n" for c, (x, y) in zip("abcdef", [(0, 5), (10, 0), (19, 5),
                                                                                (0, 15), (10, 19), (19, 15)]))
    (tmp_path / "masks.cfg").write_text("[m]\ntemplate: masks/templates/m.png\n" + anchors)
    with pytest.raises(TemplateError, match="template image m.png not found"):
        masktheface_template(tmp_path, "m")
    (tmp_path / "templates").mkdir()
    cv2.imwrite(str(tmp_path / "templates" / "m.png"), np.full((20, 20, 3), 200, np.uint8))
    with pytest.raises(TemplateError, match="needs an alpha channel"):
        masktheface_template(tmp_path, "m")
    with pytest.raises(TemplateError, match="no mask named 'x'"):
        masktheface_template(tmp_path, "x")
    rgba = np.full((20, 20, 4), 200, np.uint8)
    cv2.imwrite(str(tmp_path / "templates" / "m.png"), rgba)
    assert masktheface_template(tmp_path, "m").name == "masktheface:m"
    far = anchors.replace("mask_c: 19, 5", "mask_c: 40, 5")
    (tmp_path / "masks.cfg").write_text("[m]\ntemplate: masks/templates/m.png\n" + far)
    with pytest.raises(TemplateError, match="anchor 'mask_c' at \\(40.0, 5.0\\) lies outside"):
        masktheface_template(tmp_path, "m")
