"""Draw the masks of a whole batch at once with torch, on any device (the training GPU, or the CPU).

The same pipeline as :mod:`frmask.synth.render`, per sample: the template level chosen by
:func:`~frmask.synth.render.place_template` is sampled bilinearly through the sample's homography
(``torch.nn.functional.grid_sample``, zeros outside the template, as ``cv2.warpPerspective`` with a constant
border), un-premultiplied into coverage ``alpha`` and luminance ``shade``, coloured and blended:
``out = rint(image * (1 - alpha) + alpha * min(color * shade, 255))``. Samples are grouped by
(template, level); each group is one ``grid_sample`` call over one image of the prepared template.

Agreement with the CPU renderer: sampling positions are rounded to 1/32 pixel, as OpenCV's warp does, so the
two differ only by float32 rounding (the CPU computes the luminance in float64), which can move a blended
value across a rounding boundary: measured on real faces, a mean absolute difference well under 0.01 and a
maximum of a few levels of 255 at the mask's edges (``tests/test_torch_render.py`` states the bounds).
"""

from __future__ import annotations

import numpy as np

from frmask.synth.render import _ALPHA_FLOOR, LUMA_WEIGHTS, template_level

__all__ = ["BatchMaskRenderer"]

_SUBPIXEL = 32  # OpenCV's INTER_TAB_SIZE: warp coordinates are rounded to 1/32 pixel


class BatchMaskRenderer:
    """Masks for batches of aligned images, drawn with torch on ``device``.

    ``templates``: the :class:`~frmask.synth.template.MaskTemplate` objects that sample ``kind`` k indexes (the
    very objects the CPU renderer uses, so their prepared levels are shared). Template levels are copied to
    the device on first use and kept.
    """

    def __init__(self, templates, device="cpu"):
        import torch

        self.templates = tuple(templates)
        if not self.templates:
            raise ValueError("BatchMaskRenderer needs at least one template")
        self.device = torch.device(device)
        self._levels: dict = {}

    def _level(self, kind: int, level: int):
        """(device float32 (1, 4, h, w) premultiplied RGBA, float64 3x3 template -> level map, luma median)."""
        import torch

        key = (kind, level)
        if key not in self._levels:
            image, to_level, median = template_level(self.templates[kind], level)
            tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(self.device)
            self._levels[key] = (tensor, to_level, float(median))
        return self._levels[key]

    def layers(self, kinds, levels, homographies, colors, size=(112, 112)):
        """``(alpha, paint)`` of N masks: float32 (N, 1, H, W) coverage and (N, 3, H, W) ``alpha * min(color *
        shade, 255)``, on the device.

        ``kinds``, ``levels``: int (N,) template index and level (from ``place_template``); ``homographies``:
        float64 (N, 3, 3) template -> output pixels; ``colors``: (N, 3) in 0..255, in the images' channel
        order. Any array-likes (numpy or torch, any device).
        """
        import torch
        import torch.nn.functional as F

        width, height = int(size[0]), int(size[1])
        kinds = torch.as_tensor(kinds).to("cpu", torch.int64)
        levels = torch.as_tensor(levels).to("cpu", torch.int64)
        n = len(kinds)
        hom = torch.as_tensor(homographies).to(self.device, torch.float64)
        colors = torch.as_tensor(colors).to(self.device, torch.float32)
        if hom.shape != (n, 3, 3) or colors.shape != (n, 3) or levels.shape != (n,):
            raise ValueError(f"{n} masks need (N, 3, 3) homographies, (N, 3) colours and (N,) levels; got "
                             f"{tuple(hom.shape)}, {tuple(colors.shape)}, {tuple(levels.shape)}")
        alpha = torch.zeros((n, 1, height, width), dtype=torch.float32, device=self.device)
        paint = torch.zeros((n, 3, height, width), dtype=torch.float32, device=self.device)
        if n == 0:
            return alpha, paint
        ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64, device=self.device),
                                torch.arange(width, dtype=torch.float64, device=self.device), indexing="ij")
        pixels = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones_like(xs).reshape(-1)])  # (3, H*W)
        groups = torch.stack([kinds, levels], 1).unique(dim=0).tolist()  # sorted: the same order every time
        for kind, level in groups:
            if not 0 <= kind < len(self.templates):
                raise ValueError(f"mask kind {kind} is not one of the {len(self.templates)} templates")
            rows = torch.nonzero((kinds == kind) & (levels == level)).reshape(-1).to(self.device)
            image, to_level, median = self._level(kind, level)
            # output pixel -> template level pixel: to_level @ H^-1 (what warpPerspective inverts)
            inverse = torch.as_tensor(to_level, dtype=torch.float64, device=self.device) @ torch.linalg.inv(hom[rows])
            mapped = inverse @ pixels  # (g, 3, H*W)
            xy = mapped[:, :2] / mapped[:, 2:]
            xy = torch.round(xy * _SUBPIXEL) / _SUBPIXEL
            lh, lw = image.shape[-2:]
            scale = torch.tensor([2.0 / lw, 2.0 / lh], dtype=torch.float64, device=self.device)[None, :, None]
            grid = ((xy + 0.5) * scale - 1.0).to(torch.float32)  # align_corners=False: pixel centres
            grid = grid.transpose(1, 2).reshape(1, len(rows) * height, width, 2)
            warped = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            warped = warped.reshape(4, len(rows), height, width).transpose(0, 1)  # (g, 4, H, W) premultiplied
            a = warped[:, 3:4].clamp(0.0, 1.0)
            a = torch.where(a < _ALPHA_FLOOR, torch.zeros_like(a), a)
            covered = a > 0
            safe = torch.where(covered, a, torch.ones_like(a))
            weights = torch.as_tensor(LUMA_WEIGHTS, dtype=torch.float32, device=self.device).reshape(1, 3, 1, 1)
            luma = (warped[:, :3] * weights).sum(1, keepdim=True) / (safe * np.float32(median))
            shade = torch.where(covered, luma, torch.ones_like(luma)).clamp_min(0.0)
            tint = (colors[rows][:, :, None, None] * shade).clamp_max(255.0)
            alpha[rows] = a
            paint[rows] = tint * a
        return alpha, paint

    def blend(self, images, alpha, paint, flips=None):
        """``rint(images * (1 - alpha) + paint)`` as float32 (B, 3, H, W) values 0..255: ``images`` uint8 (or
        float) (B, 3, H, W) on the device; ``alpha``/``paint`` from :meth:`layers` for the same B samples (zero
        where a sample has no mask), mirrored left-right first where ``flips`` (bool (B,)) is true, for images
        that were flipped after decoding (the mask is drawn in the aligned frame)."""
        import torch

        if flips is not None:
            flips = torch.as_tensor(flips, device=self.device).to(torch.bool).reshape(-1, 1, 1, 1)
            alpha = torch.where(flips, alpha.flip(-1), alpha)
            paint = torch.where(flips, paint.flip(-1), paint)
        out = images.to(torch.float32) * (1.0 - alpha) + paint
        return torch.round(out)
