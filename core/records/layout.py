"""The names of a run record's files (DESIGN.md, "Run records")."""
from __future__ import annotations

MANIFEST, SCORES, CODES, CHECKPOINT, BEST = "manifest.json", "scores.parquet", "codes.safetensors", "checkpoint.pt", "best.png"
#: the native stimuli (float32, the generator's own resolution and channels): what analyses read
STIMULI = "stimuli.safetensors"
#: PNG text keys that mark a record's PNG as a preview and name its native stimulus in STIMULI
PREVIEW_KEY, STIMULUS_KEY = "actmax-preview", "actmax-stimulus"
LOCK = ".actmax.lock"
CHECKPOINT_VERSION = 2
#: spec entries that name parts (None there means the run was built from a live object)
PART_KEYS = ("generator", "generators", "scorer", "optimizers", "ascent")
#: files a record may hold (removed by ``overwrite``; other files in the folder are left alone)
RECORD_FILES = (MANIFEST, SCORES, CODES, STIMULI, CHECKPOINT, BEST, "best.csv", "trajectory.png", "targets.csv",
                "reference_images.safetensors", "screen.parquet", "screen.csv", "unit_stats.parquet",
                "unit_stats.csv", "screen_summary.png", "images", "parts")
