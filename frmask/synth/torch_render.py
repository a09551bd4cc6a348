"""Draw the masks of a whole batch at once with torch, on any device (the training GPU, or the CPU).

The same pipeline as :mod:`frmask.synth.render`, per sample: the template level chosen by
:func:`~frmask.synth.render.place_template` is sampled bilinearly through the sample's homography
(``torch.nn.functional.grid_sample``, zeros outside the template, as ``cv2.warpPerspective`` with a constant
border), un-premultiplied into coverage ``alpha`` and luminance ``shade``, coloured and blended:
``out = rint(image * (1 - alpha) + alpha * min(color * shade, 255))``. Samples are grouped by
(template, level); each group is one ``grid_sample`` call over one image of the prepared template, restricted
to the window of output pixels that the group's masks can reach (the template's opaque bounding box mapped
through the homographies, plus one pixel each side); outside it ``alpha`` is 0 and the image is left as it is. Images
that were flipped after decoding get the mask mirrored: their pixel ``x`` samples the aligned frame at
``W - 1 - x``.

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
        """(device float32 (4, h, w) premultiplied RGBA, float64 3x3 template -> level map, luma median,
        float64 (4, 3) homogeneous corners of the opaque part's bounding box in level pixels, one pixel out)."""
        import torch

        key = (kind, level)
        if key not in self._levels:
            image, to_level, median = template_level(self.templates[kind], level)
            rows = np.flatnonzero(image[..., 3].any(axis=1))
            cols = np.flatnonzero(image[..., 3].any(axis=0))
            x0, x1, y0, y1 = cols[0] - 1.0, cols[-1] + 1.0, rows[0] - 1.0, rows[-1] + 1.0
            corners = np.array([[x0, y0, 1.0], [x1, y0, 1.0], [x0, y1, 1.0], [x1, y1, 1.0]])
            tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(self.device)
            self._levels[key] = (tensor, to_level, float(median), corners)
        return self._levels[key]

    def masked(self, images, kinds, levels, homographies, colors, flips=None):
        """The N ``images`` with their masks: float32 (N, 3, H, W) values 0..255 (``rint`` of the blend), on
        the device.

        ``images``: uint8 (or float) (N, 3, H, W) on the device, in the channel order of ``colors``;
        ``kinds``, ``levels``: int (N,) template index and level (from ``place_template``); ``homographies``:
        float64 (N, 3, 3) template -> aligned-frame pixels; ``colors``: (N, 3) in 0..255; ``flips``: bool (N,),
        true where the image was mirrored left-right after decoding (the mask is mirrored with it). Any
        array-likes (numpy or torch, any device).
        """
        import torch

        out = images.to(self.device, torch.float32, copy=True)
        self.blend_into(out, torch.arange(len(out)), kinds, levels, homographies, colors, flips)
        return out

    def blend_into(self, out, rows, kinds, levels, homographies, colors, flips=None) -> None:
        """Draw N masks in place into images ``out[rows]``: ``out`` float32 (B, 3, H, W) on the device, values
        0..255; ``rows`` int (N,) (distinct) which images get them; the rest as :meth:`masked`. Only the mask
        windows of those images change."""
        import torch
        import torch.nn.functional as F

        rows_out = torch.as_tensor(rows).to(self.device, torch.int64).reshape(-1)
        n, height, width = len(rows_out), out.shape[-2], out.shape[-1]
        kinds = torch.as_tensor(kinds).to("cpu", torch.int64).reshape(-1)
        levels = torch.as_tensor(levels).to("cpu", torch.int64).reshape(-1)
        hom = torch.as_tensor(homographies).to("cpu", torch.float64)
        colors = torch.as_tensor(colors).to(self.device, torch.float32)
        flips = (torch.zeros(n, dtype=torch.bool) if flips is None else
                 torch.as_tensor(flips).to("cpu", torch.bool).reshape(-1))
        if out.ndim != 4 or out.shape[1] != 3 or out.dtype != torch.float32 or hom.shape != (n, 3, 3) or colors.shape != (n, 3) \
                or kinds.shape != (n,) or levels.shape != (n,) or flips.shape != (n,):
            raise ValueError(f"{n} masks need float32 (B, 3, H, W) images, (N,) kinds, levels and flips, (N, 3, 3) "
                             f"homographies and (N, 3) colours; got {tuple(out.shape)}, {tuple(kinds.shape)}, "
                             f"{tuple(levels.shape)}, {tuple(flips.shape)}, {tuple(hom.shape)}, "
                             f"{tuple(colors.shape)}")
        if n == 0:
            return
        bad = kinds[(kinds < 0) | (kinds >= len(self.templates))]
        if len(bad):
            raise ValueError(f"mask kind {int(bad[0])} is not one of the {len(self.templates)} templates")
        dev = self.device
        inverse_hom = torch.linalg.inv(hom.to(dev))  # aligned frame -> template, on the device
        flips_dev = flips.to(dev)
        mirror = torch.tensor([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
        weights = torch.as_tensor(LUMA_WEIGHTS, dtype=torch.float32, device=self.device).reshape(3, 1, 1, 1)
        groups = torch.stack([kinds, levels], 1).unique(dim=0).tolist()  # sorted: the same order every time
        for kind, level in groups:
            rows = torch.nonzero((kinds == kind) & (levels == level)).reshape(-1)
            image, to_level, median, corners = self._level(kind, level)
            to_level = torch.as_tensor(to_level, dtype=torch.float64)
            # output window: the level's opaque box mapped to output pixels (mirrored where flipped)
            to_out = hom[rows] @ torch.linalg.inv(to_level)
            to_out = torch.where(flips[rows].reshape(-1, 1, 1), mirror @ to_out, to_out)
            box = to_out @ torch.as_tensor(corners).T  # (g, 3, 4)
            box = (box[:, :2] / box[:, 2:]).permute(1, 0, 2).reshape(2, -1)
            x0, y0 = (max(0, int(np.floor(float(v))) - 1) for v in box.min(1).values)
            x1 = min(width, int(np.floor(float(box[0].max()))) + 2)
            y1 = min(height, int(np.floor(float(box[1].max()))) + 2)
            if x0 >= x1 or y0 >= y1:
                continue
            h, w = y1 - y0, x1 - x0
            ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float64, device=dev),
                                    torch.arange(x0, x1, dtype=torch.float64, device=dev), indexing="ij")
            xs, ys = xs.reshape(-1), ys.reshape(-1)
            ones = torch.ones_like(xs)
            pixels = torch.stack([torch.stack([xs, ys, ones]), torch.stack([width - 1.0 - xs, ys, ones])])
            # output pixel -> aligned pixel (mirrored where flipped) -> template level pixel
            rows_dev = rows.to(dev)
            mapped = (to_level.to(dev) @ inverse_hom[rows_dev]) @ pixels[flips_dev[rows_dev].long()]  # (g, 3, h*w)
            xy = mapped[:, :2] / mapped[:, 2:]
            xy = torch.round(xy * _SUBPIXEL) / _SUBPIXEL
            lh, lw = image.shape[-2:]
            scale = torch.tensor([2.0 / lw, 2.0 / lh], dtype=torch.float64, device=dev)[None, :, None]
            grid = ((xy + 0.5) * scale - 1.0).to(torch.float32)  # align_corners=False: pixel centres
            grid = grid.transpose(1, 2).reshape(1, len(rows) * h, w, 2)
            warped = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            warped = warped.reshape(4, len(rows), h, w)  # premultiplied RGBA, channel first
            a = warped[3].clamp_(0.0, 1.0)
            a.masked_fill_(a < _ALPHA_FLOOR, 0.0)
            # shade = luma / alpha / median where covered; where alpha is 0 it is multiplied by 0 (any finite value)
            shade = (warped[:3] * weights).sum(0).div_(a.clamp_min(_ALPHA_FLOOR).mul_(np.float32(median)))
            shade.clamp_min_(0.0)
            paint = (colors[rows_dev].T.reshape(3, -1, 1, 1) * shade).clamp_max_(255.0).mul_(a)
            target = rows_out[rows_dev]
            window = out[target, :, y0:y1, x0:x1].transpose(0, 1)  # (3, g, h, w), a copy
            blended = window.mul_(1.0 - a).add_(paint).round_()
            out[target, :, y0:y1, x0:x1] = blended.transpose(0, 1)
