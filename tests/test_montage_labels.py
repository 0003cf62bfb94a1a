"""Labelled montages: a caption under every tile (generation; unit and pole) and a title strip."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from actmax.core.montage_labels import STRIP
from actmax.core.records import save_montage


def test_captions_and_title_add_strips_and_ink(tmp_path):
    images = torch.full((5, 1, 96, 96), 0.5)
    save_montage(images, tmp_path / "plain.png", nrow=3)
    save_montage(images, tmp_path / "labelled.png", nrow=3, labels=[f"gen {i}" for i in range(5)], title="gabor")
    plain = np.asarray(Image.open(tmp_path / "plain.png"))
    labelled = np.asarray(Image.open(tmp_path / "labelled.png"))
    assert labelled.shape == (plain.shape[0] + 2 * STRIP + STRIP + 2, plain.shape[1])
    first_caption = labelled[STRIP + 2 + 2 + 96: STRIP + 2 + 2 + 96 + STRIP, 2:98]
    assert (first_caption < 128).any() and (labelled[:STRIP, :] < 128).any()     # text drawn
    assert np.array_equal(labelled[STRIP + 2 + 2: STRIP + 2 + 98, 2:98], plain[2:98, 2:98])   # tiles kept
    with pytest.raises(ValueError, match="2 labels for 5 montage tiles"):
        save_montage(images, tmp_path / "bad.png", labels=["a", "b"])


def test_synthesis_montage_names_unit_and_pole(tmp_path):
    import actmax

    actmax.synthesize("pixel:size=16", "model:n=2,size=16", units=[0, 1], ascent="ascent:steps=2",
                      out_dir=tmp_path / "s", progress=False)
    montage = np.asarray(Image.open(tmp_path / "s" / "images" / "montage.png"))
    tile = 96 + 2
    assert montage.shape[0] == 2 * (tile + STRIP) + 2      # two rows of tiles (units), each with its captions
