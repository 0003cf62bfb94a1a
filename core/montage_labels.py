"""Labels on montage previews: a caption under every tile (generation, unit and pole) and a title.

The montage grid (torchvision's ``make_grid`` layout: tiles of ``tile`` px with ``padding`` between)
is re-laid out with a text strip under each row of tiles and one above the grid, drawn with PIL's
built-in bitmap font (no font files, identical bytes on every machine).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from actmax.core.errors import InputError

__all__ = ["label_grid"]

STRIP = 12   # px of text under each row of tiles (PIL's default bitmap font is ~11 px high)


def label_grid(arr: np.ndarray, *, n: int, nrow: int, tile: Sequence[int], padding: int,
               labels: Sequence[str] | None, title: str | None) -> np.ndarray:
    """``arr`` (H, W[, 3]) uint8 montage of ``n`` tiles -> the same tiles with captions (and a title)."""
    from PIL import Image, ImageDraw, ImageFont

    if labels is not None and len(labels) != n:
        raise InputError(f"{len(labels)} labels for {n} montage tiles")
    th, tw = int(tile[0]), int(tile[1])
    cols, rows = min(nrow, n), -(-n // nrow)
    strip = STRIP if labels is not None else 0
    top = STRIP + 2 if title else 0
    grey = arr.ndim == 2
    mode = "L" if grey else "RGB"
    out = Image.new(mode, (arr.shape[1], top + arr.shape[0] + rows * strip), 255 if grey else (255, 255, 255))
    src = Image.fromarray(arr)
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default()
    ink = 0 if grey else (0, 0, 0)
    for r in range(rows):   # each row of tiles (with its top padding), then its caption strip
        y0 = r * (th + padding)
        band = src.crop((0, y0, arr.shape[1], min(arr.shape[0], y0 + th + padding)))
        out.paste(band, (0, top + y0 + r * strip))
        if labels is None:
            continue
        for c in range(cols):
            i = r * nrow + c
            if i >= n:
                break
            x = padding + c * (tw + padding)
            text = _fit(draw, str(labels[i]), font, tw)
            draw.text((x + 1, top + y0 + r * strip + padding + th), text, fill=ink, font=font)
    if rows and padding:   # the bottom padding of the grid
        out.paste(src.crop((0, arr.shape[0] - padding, arr.shape[1], arr.shape[0])),
                  (0, top + arr.shape[0] - padding + rows * strip))
    if title:
        draw.text((padding + 1, 1), _fit(draw, title, font, arr.shape[1] - 2 * padding), fill=ink, font=font)
    return np.asarray(out)


def _fit(draw, text: str, font, width: int) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` px."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "..", font=font) > width:
        text = text[:-1]
    return text + ".."
