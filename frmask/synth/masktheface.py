"""MaskTheFace mask templates: RGBA images with six anchors ``mask_a`` .. ``mask_f`` in ``masks.cfg``.

MaskTheFace (Anwar & Raychowdhury, 2020) places its anchors on points derived from dlib's 68 landmarks:
``mask_b`` in the middle of the nose bridge; ``mask_a``/``mask_c`` where the eye line, moved down by the
nose length, meets the face outline (image-left, image-right; about nose-tip height); ``mask_e`` on the
chin; ``mask_d``/``mask_f`` where the eye line, moved down to the bottom lip, meets the jaw outline.

Two ways to place them on a face, chosen by the ``landmarks`` option of
:func:`frmask.synth.folder.synth_folder` and :func:`frmask.synth.benchmark.synth_bin`:

* from the face's own 68 landmarks, computed as MaskTheFace does
  (:func:`frmask.faces.landmarks68.masktheface_anchors`; needs ``pip install frmask[landmarks68]``). Image
  folders do this by default when the extra is installed (the landmarks are found on the face aligned at
  224x224); aligned ``.bin`` benchmarks only when asked (``landmarks="68"``, found on the 112 crop);
* otherwise at a fixed position in the ArcFace 112x112 frame (:data:`FRAME_ANCHORS_112`, estimated by eye
  on frontal MFR2 and LFW faces), which the 5-point alignment carries to any face: an approximation for
  frontal faces. (Measured with the 68-point path on 98 aligned MFR2 faces, the means are a (16, 74),
  b (56, 62), c (94, 74), d (23, 98), e (55, 114), f (87, 99): the estimate puts ``mask_a``/``mask_c``
  about 11 px higher.)

The ``_left``/``_right`` variants of the templates are meant for turned faces and are loaded all the same
(:func:`frmask.faces.landmarks68.face_turn_angle` gives MaskTheFace's criterion for choosing them).
"""

from __future__ import annotations

import configparser
from pathlib import Path

import numpy as np

from frmask.synth.template import MaskTemplate, TemplateError

ANCHOR_NAMES = ("mask_a", "mask_b", "mask_c", "mask_d", "mask_e", "mask_f")

# Estimated positions of MaskTheFace's six anchor points in the ArcFace 112x112 frame (x, y).
FRAME_ANCHORS_112 = {
    "mask_a": (17.0, 62.5),   # face outline, image-left, at nose-bridge height
    "mask_b": (56.0, 61.0),   # nose bridge (the middle of dlib points 27-30)
    "mask_c": (95.0, 62.5),   # face outline, image-right
    "mask_d": (24.0, 101.0),  # jaw outline, image-left
    "mask_e": (56.0, 119.0),  # chin
    "mask_f": (88.0, 101.0),  # jaw outline, image-right
}


def _config_path(source) -> Path:
    path = Path(source)
    cfg = path / "masks.cfg" if path.is_dir() else path
    if not cfg.is_file():
        raise TemplateError(f"{cfg}: no MaskTheFace masks.cfg here")
    return cfg


def read_masks_cfg(source) -> dict[str, tuple[str, dict]]:
    """Parse ``masks.cfg`` (a file, or the folder holding it): name -> (template file name, anchors).

    Sections without a template (MaskTheFace's ``empty`` and ``inpaint`` modes) are skipped. Errors name
    the file and section.
    """
    cfg_path = _config_path(source)
    parser = configparser.ConfigParser()
    try:
        parser.read(cfg_path, encoding="utf-8")
    except configparser.Error as exc:
        raise TemplateError(f"{cfg_path}: not a readable masks.cfg: {exc}") from None
    out = {}
    for name in parser.sections():
        section = parser[name]
        if "template" not in section:
            continue
        anchors = {}
        for key in ANCHOR_NAMES:
            if key not in section:
                raise TemplateError(f"{cfg_path} [{name}]: missing anchor {key}")
            try:
                x, y = (float(v) for v in section[key].split(","))
            except ValueError:
                raise TemplateError(f"{cfg_path} [{name}]: {key} = {section[key]!r} is not 'x, y'") from None
            anchors[key] = (x, y)
        out[name] = (Path(section["template"].strip()).name, anchors)
    if not out:
        raise TemplateError(f"{cfg_path}: no mask templates defined")
    return out


def masktheface_names(source) -> list[str]:
    """The mask names defined in a MaskTheFace folder's masks.cfg."""
    return list(read_masks_cfg(source))


def masktheface_template(source, name: str = "surgical") -> MaskTemplate:
    """Load one MaskTheFace template by name from its folder (``masks.cfg`` and ``templates/*.png``)."""
    import cv2

    cfg_path = _config_path(source)
    table = read_masks_cfg(cfg_path)
    if name not in table:
        raise TemplateError(f"{cfg_path}: no mask named {name!r}; it defines {', '.join(table)}")
    file_name, anchors = table[name]
    folder = cfg_path.parent
    candidates = [folder / "templates" / file_name, folder / file_name]
    image_path = next((p for p in candidates if p.is_file()), None)
    if image_path is None:
        raise TemplateError(f"{cfg_path} [{name}]: template image {file_name} not found in {folder / 'templates'}")
    bgra = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
    if bgra is None:
        raise TemplateError(f"{image_path}: not a readable image")
    if bgra.ndim != 3 or bgra.shape[2] != 4:
        raise TemplateError(f"{image_path}: a mask template needs an alpha channel (RGBA), got shape {bgra.shape}")
    rgba = np.ascontiguousarray(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA))
    return MaskTemplate(name=f"masktheface:{name}", rgba=rgba, anchors=anchors)
