"""Preview contact sheets of the synthesizer: aligned originals above their masked versions, and for a
built-in mask one row per nose coverage level (``low``, ``medium``, ``high``, top to bottom), so the levels
can be compared face by face."""

from __future__ import annotations

import dataclasses

import numpy as np


def contact_sheet_png(*rows: list) -> bytes:
    """PNG of rows of equally sized RGB tiles (the first row on top)."""
    import cv2

    sheet = np.vstack([np.hstack(row) for row in rows])
    return cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))[1].tobytes()


def coverage_rows(spec, seed: int, dataset: str, originals: list, indices: list, colors, own: list) -> list[list]:
    """The masked rows of a preview: ``[own]`` (the run's masked tiles) for a template or the legacy renderer;
    for a built-in mask one row per level of :data:`frmask.synth.shapes.COVERAGE_LEVELS`, the run's own level
    taken from ``own`` and the others drawn on the aligned ``originals`` (image ``indices``, RGB ``colors``)
    exactly as a run at that level would draw them."""
    from frmask.synth.benchmark import prepare_template, render_one, render_state, template_kind
    from frmask.synth.shapes import COVERAGE_LEVELS

    if spec.legacy or template_kind(spec) != "builtin":
        return [own]
    rows = []
    for level in COVERAGE_LEVELS:
        if level == (spec.coverage or "high"):
            rows.append(own)
            continue
        other = dataclasses.replace(spec, coverage=level)
        state = render_state(other, seed, dataset, prepare_template(other))
        rows.append([render_one(state, image, i, c)[0] for image, i, c in zip(originals, indices, colors)])
    return rows
