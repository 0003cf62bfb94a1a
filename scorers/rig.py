"""A real neuron (or several recording channels) through an exchange folder.

Protocol ``actmax-rig/1``. For every block of images actmax writes, into ``EXCHANGE``::

    block_0007/manifest.json        {"protocol": "actmax-rig/1", "block": 7, "session": "...",
                                     "images": [{"id": "b0007_i000", "file": "b0007_i000.png"}, ...],
                                     "n_channels": 2 or null, "reissue_of": 5 or null, "created": ...}
    block_0007/b0007_i000.png ...   8-bit grey or RGB PNGs, in manifest order

The folder is staged under a hidden name and renamed into place, so the acquisition side
never sees a half-written block. The acquisition side shows the images and writes
**one** responses file into the block folder (write it under another name and rename it,
so actmax never reads half a file):

* ``responses.json``: ``{"block": 7, "responses": {"b0007_i000": [ch0, ch1, ...], ...}}``
  (a bare number counts as one channel), or ``{"ids": [...], "responses": [[...], ...]}``;
* ``responses.csv``: a header ``image_id,<channel names...>`` and one row per image;
  several rows of one id (repeated presentations) are averaged.

Policy for problems (each block outcome is logged to ``EXCHANGE/rig_log.jsonl`` and kept in
:attr:`RigScorer.events`):

1. **Late**: no responses file within ``timeout`` seconds -> the block is marked
   ``ABANDONED`` (a responses file that arrives later is ignored) and its images are shown
   again in a new block.
2. **Malformed block**: a file that cannot be parsed (re-read once after ``settle``
   seconds), a wrong block number, ids that are not in the manifest, or a wrong number of
   channels -> the whole block is marked ``REJECTED.json`` (with the reason) and shown again
   in a new block.
3. **Partly missing**: ids missing from the file, or NaN/inf in a channel actmax uses ->
   the valid responses are kept and only those images are shown again in a new block.
4. Every re-show counts against ``retries`` (per call); when they run out, one clear
   :class:`RigTimeoutError` or :class:`RigResponseError` lists what happened to each block.
   ``retries=0`` turns every problem into an immediate error.

Safety: the exchange folder is an interface to another program, so actmax trusts nothing in
it. Every file is opened with ``O_NOFOLLOW`` (a symbolic link is refused, never followed),
must be a regular file owned by this user with a single link (a hard link to another file is
refused), and a responses file may not exceed ``max_response_bytes`` (16 MiB by default). JSON
nested too deeply and a CSV field over the csv module's 128 KB limit are malformed blocks
(rejected and shown again, policy 2). Reasons in ``REJECTED.json`` and the log describe what was
wrong (a type, a length, a line number) and never quote the file's content. Writes (markers, the log) go through a
descriptor of the real block folder, so a folder swapped for a symlink is refused
(:class:`RigExchangeError`) instead of being written through.

Units are the ``channels`` actmax reads (default: all ``n_channels``). Not differentiable.
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from actmax.core.registry import scorers
from actmax.scorers.base import Scorer, to_size

PROTOCOL = "actmax-rig/1"
MANIFEST = "manifest.json"
RESPONSE_FILES = ("responses.json", "responses.csv")
ABANDONED, REJECTED, ACCEPTED = "ABANDONED", "REJECTED.json", "ACCEPTED"
LOG_FILE = "rig_log.jsonl"
_BLOCK_RE = re.compile(r"^block_(\d+)$")
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class RigError(RuntimeError):
    """The rig did not deliver usable responses (see the message for each block's fate)."""


class RigTimeoutError(RigError, TimeoutError, ValueError):
    """No responses arrived in time, and the retries are used up."""


class RigResponseError(RigError, ValueError):
    """Responses arrived but were malformed or incomplete, and the retries are used up."""


class RigExchangeError(RigError, ValueError):
    """The exchange folder holds something actmax refuses to touch (a symlink, another user's file)."""


class _Malformed(Exception):
    """A responses file that must be rejected as a whole (reason in the message)."""


@dataclass
class BlockOutcome:
    block: int
    event: str            # accepted | partial | timeout | rejected
    reason: str = ""
    ids: int = 0


def block_name(block: int) -> str:
    return f"block_{block:04d}"


def image_to_png_bytes(image: np.ndarray) -> bytes:
    """(C, H, W) float in [0, 1] -> 8-bit PNG bytes (grey for C=1, RGB for C=3)."""
    from PIL import Image

    arr = np.clip(np.rint(np.asarray(image, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    pil = Image.fromarray(arr[0], mode="L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), mode="RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def read_exchange_file(path: str | Path, max_bytes: int = MAX_RESPONSE_BYTES) -> bytes:
    """The bytes of a file in the exchange folder: no symlinks, regular files of this user only, size capped.

    Problems raise ``_Malformed`` (the block is rejected; no content is echoed).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Malformed(f"{path.name} is a symbolic link (refused)") from None
        raise _Malformed(f"{path.name} cannot be opened ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Malformed(f"{path.name} is not a regular file (refused)")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise _Malformed(f"{path.name} is owned by uid {st.st_uid}, not by this user (refused)")
        if st.st_nlink > 1:   # a hard link to another file of this user: its content is never read
            raise _Malformed(f"{path.name} has {st.st_nlink} hard links (refused: write a new file, then rename it)")
        if st.st_size > max_bytes:
            raise _Malformed(f"{path.name} is too large ({st.st_size} bytes > {max_bytes})")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise _Malformed(f"{path.name} is too large (> {max_bytes} bytes)")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _open_dir(folder: Path) -> int:
    """A descriptor of ``folder`` itself (not of a symlink's target), owned by this user."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW)
    except OSError as exc:
        why = "is a symbolic link" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else f"cannot be opened ({exc.strerror})"
        raise RigExchangeError(f"rig exchange: {folder} {why}; refusing to write there") from None
    st = os.fstat(fd)
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        os.close(fd)
        raise RigExchangeError(f"rig exchange: {folder} is owned by uid {st.st_uid}, not by this user; "
                               "refusing to write there")
    return fd


def read_png(path: str | Path) -> np.ndarray:
    """A PNG written by actmax -> (C, H, W) float32 in [0, 1] (opened without following symlinks)."""
    from PIL import Image

    try:
        data = read_exchange_file(path, max_bytes=64 * 1024 * 1024)
    except _Malformed as exc:
        raise RigExchangeError(f"rig exchange: {exc}") from None
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("L") if im.mode in ("L", "I", "I;16", "1", "P") else im.convert("RGB"))
    arr = arr.astype(np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a file under a temporary name, then rename it into place (readers never see half a file).

    Both happen through a descriptor of the real parent folder: a parent that is a symlink,
    or not owned by this user, is refused; an existing symlink at ``path`` is replaced, not followed.
    """
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    dfd = _open_dir(path.parent)
    try:
        tmp = f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
    finally:
        os.close(dfd)


def append_line(path: Path, line: str) -> None:
    """Append one line to a log in the exchange folder (no symlinks, this user's regular file only)."""
    path = Path(path)
    dfd = _open_dir(path.parent)
    try:
        try:
            fd = os.open(path.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o666, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise RigExchangeError(f"rig exchange: {path} is a symbolic link; refusing to write through it") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
                raise RigExchangeError(f"rig exchange: {path} is not a regular file of this user; refusing to write")
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def _describe(value: object) -> str:
    """What a value from the exchange folder is, without echoing its content into markers or logs."""
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    if isinstance(value, (list, dict)):
        return f"a {type(value).__name__} of {len(value)} entries"
    if isinstance(value, (int, float, bool)) or value is None:
        return repr(value)
    return type(value).__name__


def parse_responses(path: Path, *, block: int | None = None,
                    max_bytes: int = MAX_RESPONSE_BYTES) -> dict[str, list[float]]:
    """A responses file -> {image id: [channel values]} (raises _Malformed with the reason)."""
    text = read_exchange_file(path, max_bytes).decode()
    if path.suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _Malformed(f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
        except (RecursionError, MemoryError):
            raise _Malformed(f"{path.name} is nested too deeply to be a responses file") from None
        if not isinstance(doc, dict) or "responses" not in doc:
            raise _Malformed(f"{path.name} must be a JSON object with a 'responses' entry")
        if block is not None and "block" in doc and doc["block"] != block:
            raise _Malformed(f"{path.name} is for another block ({_describe(doc['block'])}), not block {block}")
        resp = doc["responses"]
        if isinstance(resp, dict):
            items = list(resp.items())
        elif isinstance(resp, list) and isinstance(doc.get("ids"), list) and len(doc["ids"]) == len(resp):
            items = list(zip(doc["ids"], resp))
        else:
            raise _Malformed(f"{path.name}: 'responses' must map ids to values, or be a list matching 'ids'")
        out: dict[str, list[float]] = {}
        for key, value in items:
            values = value if isinstance(value, list) else [value]
            try:
                out[str(key)] = [float("nan") if v is None else float(v) for v in values]
            except (TypeError, ValueError):
                raise _Malformed(f"{path.name}: non-numeric response (entry {len(out) + 1}: {_describe(value)})") from None
        return out
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:   # e.g. a field over the csv module's 128 KB limit
        raise _Malformed(f"{path.name} is not a readable CSV ({str(exc).split(' (')[0]})") from None
    rows = [r for r in rows if r and any(cell.strip() for cell in r)]
    if not rows:
        raise _Malformed(f"{path.name} is empty")
    header = [h.strip() for h in rows[0]]
    if header[0].lower() not in ("image_id", "id", "image"):
        raise _Malformed(f"{path.name}: the first CSV column must be 'image_id', got {_describe(header[0])}")
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise _Malformed(f"{path.name}: line {n} has {len(row)} fields, the header has {len(header)}")
        try:
            values = np.array([float(v) if v.strip() not in ("", "nan", "NaN", "NA") else np.nan for v in row[1:]])
        except ValueError:
            raise _Malformed(f"{path.name}: line {n} has a non-numeric value") from None
        key = row[0].strip()
        sums[key] = sums.get(key, 0.0) + values
        counts[key] = counts.get(key, 0) + 1
    return {k: (sums[k] / counts[k]).tolist() for k in sums}


@scorers.register("rig")
class RigScorer(Scorer):
    """A recorded neuron: images go out as PNG blocks, responses come back through a folder."""

    differentiable = False

    def __init__(self, exchange: str | Path, n_channels: int | None = None,
                 channels: int | Sequence[int] | None = None, image_size: int | None = None,
                 timeout: float = 60.0, poll: float = 0.1, retries: int = 2, settle: float = 0.3,
                 session: str | None = None, max_response_bytes: int = MAX_RESPONSE_BYTES) -> None:
        super().__init__()
        if n_channels is None and channels is None:
            raise ValueError("rig: give n_channels (what the rig records) and/or channels (what actmax reads)")
        if n_channels is not None and n_channels < 1:
            raise ValueError(f"rig: n_channels must be >= 1, got {n_channels}")
        chans = list(range(n_channels)) if channels is None else (
            [int(channels)] if isinstance(channels, int) else [int(c) for c in channels])
        if not chans or min(chans) < 0 or (n_channels is not None and max(chans) >= n_channels):
            raise ValueError(f"rig: channels {chans} do not fit n_channels={n_channels}")
        if timeout <= 0 or poll <= 0 or retries < 0 or settle < 0 or max_response_bytes < 1:
            raise ValueError("rig: need timeout > 0, poll > 0, retries >= 0, settle >= 0, max_response_bytes >= 1")
        self.exchange = Path(exchange)
        self.exchange.mkdir(parents=True, exist_ok=True)
        st = self.exchange.stat()
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise RigExchangeError(f"rig: the exchange folder {self.exchange} is owned by uid {st.st_uid}, "
                                   "not by this user")
        self.max_response_bytes = int(max_response_bytes)
        self.n_channels, self.channels = n_channels, chans
        self.units = len(chans)
        self.image_size = image_size
        self.timeout, self.poll, self.retries, self.settle = float(timeout), float(poll), int(retries), float(settle)
        self.session = session or uuid.uuid4().hex[:12]
        self.events: list[BlockOutcome] = []
        self._next_block = self._last_block() + 1

    @property
    def unit_names(self) -> list[str]:
        return [f"channel{c}" for c in self.channels]

    def _last_block(self) -> int:
        last = 0
        for p in self.exchange.iterdir():
            m = _BLOCK_RE.match(p.name)
            if m:   # symlinks and files count too: never reuse a name someone else put there
                last = max(last, int(m.group(1)))
        return last

    # -- one block ----------------------------------------------------------------------------
    def write_block(self, images: np.ndarray, *, reissue_of: int | None = None) -> tuple[int, list[str]]:
        """Write images (B, C, H, W) in [0, 1] as the next block; returns (block, image ids)."""
        block = max(self._next_block, self._last_block() + 1)
        self._next_block = block + 1
        final = self.exchange / block_name(block)
        stage = self.exchange / f".{block_name(block)}.{uuid.uuid4().hex[:6]}.tmp"
        stage.mkdir()
        ids, entries = [], []
        for i, img in enumerate(images):
            image_id = f"b{block:04d}_i{i:03d}"
            name = f"{image_id}.png"
            atomic_write(stage / name, image_to_png_bytes(img))
            ids.append(image_id)
            entries.append({"id": image_id, "file": name})
        manifest = {"protocol": PROTOCOL, "block": block, "session": self.session, "images": entries,
                    "n_channels": self.n_channels, "reissue_of": reissue_of, "created": time.time()}
        atomic_write(stage / MANIFEST, json.dumps(manifest, indent=1))
        os.replace(stage, final)
        return block, ids

    def _response_file(self, folder: Path) -> Path | None:
        if folder.is_symlink() or not folder.is_dir():
            raise RigExchangeError(f"rig exchange: {folder} is no longer a real folder (a symlink or removed); "
                                   "refusing to read or write there")
        for name in RESPONSE_FILES:
            p = folder / name
            if os.path.lexists(p):   # a symlink counts as present: it is then refused, not followed
                return p
        return None

    def _read(self, path: Path, block: int) -> dict[str, list[float]]:
        try:
            return parse_responses(path, block=block, max_bytes=self.max_response_bytes)
        except (_Malformed, UnicodeDecodeError, OSError):
            time.sleep(self.settle)                     # maybe caught mid-write: read once more
            try:
                return parse_responses(path, block=block, max_bytes=self.max_response_bytes)
            except UnicodeDecodeError as exc:
                raise _Malformed(f"{path.name} is not UTF-8 text (at byte {exc.start})") from None

    def _wait(self, block: int) -> Path | None:
        folder = self.exchange / block_name(block)
        deadline = time.monotonic() + self.timeout
        while True:
            found = self._response_file(folder)
            if found is not None:
                if self.settle:
                    time.sleep(min(self.settle, 0.05))
                return found
            if time.monotonic() >= deadline:
                return None
            time.sleep(self.poll)

    def _log(self, outcome: BlockOutcome) -> None:
        self.events.append(outcome)
        line = json.dumps({"time": time.time(), "session": self.session, **outcome.__dict__})
        append_line(self.exchange / LOG_FILE, line)

    def _validate(self, parsed: dict[str, list[float]], ids: list[str]) -> tuple[dict[int, np.ndarray], list[int], str]:
        """Whole-block checks (raise _Malformed); returns accepted rows, indices to re-show, reason."""
        known = set(ids)
        unknown = [k for k in parsed if k not in known]
        if unknown:
            raise _Malformed(f"{len(unknown)} unknown image id(s) (not in this block's manifest)")
        widths = {len(v) for v in parsed.values()}
        if self.n_channels is not None:
            wrong = sorted(w for w in widths if w != self.n_channels)
            if wrong:
                raise _Malformed(f"wrong channel count: got {wrong[0]} values per image, expected n_channels="
                                 f"{self.n_channels}")
        elif widths and min(widths) <= max(self.channels):
            raise _Malformed(f"wrong channel count: got {min(widths)} values per image, channel "
                             f"{max(self.channels)} is needed")
        accepted: dict[int, np.ndarray] = {}
        missing, nonfinite = [], []
        for i, image_id in enumerate(ids):
            if image_id not in parsed:
                missing.append(i)
                continue
            row = np.asarray(parsed[image_id], dtype=np.float64)[self.channels]
            if not np.all(np.isfinite(row)):
                nonfinite.append(i)
                continue
            accepted[i] = row
        reasons = []
        if missing:
            reasons.append(f"{len(missing)} id(s) missing, e.g. {ids[missing[0]]}")
        if nonfinite:
            reasons.append(f"NaN/inf for {len(nonfinite)} image(s), e.g. {ids[nonfinite[0]]}")
        return accepted, sorted(missing + nonfinite), "; ".join(reasons)

    # -- scoring --------------------------------------------------------------------------------
    def respond(self, images: torch.Tensor) -> torch.Tensor:
        x = images.detach().float().cpu()
        if self.image_size is not None:
            x = to_size(x, self.image_size)
        pixels = x.numpy()
        result = np.full((pixels.shape[0], self.units), np.nan)
        pending = list(range(pixels.shape[0]))
        reshows, history, previous = 0, [], None
        while pending:
            block, ids = self.write_block(pixels[pending], reissue_of=previous)
            folder = self.exchange / block_name(block)
            path = self._wait(block)
            if path is None:
                path = self._response_file(folder)      # one last look before giving the block up
            if path is None:
                atomic_write(folder / ABANDONED, f"no responses within {self.timeout} s\n")
                outcome = BlockOutcome(block, "timeout", f"no responses within {self.timeout:g} s", len(ids))
                problem: type[RigError] = RigTimeoutError
            else:
                try:
                    accepted, again, reason = self._validate(self._read(path, block), ids)
                except _Malformed as exc:
                    atomic_write(folder / REJECTED, json.dumps({"reason": str(exc)}))
                    outcome = BlockOutcome(block, "rejected", str(exc), len(ids))
                    problem = RigResponseError
                else:
                    for i, row in accepted.items():
                        result[pending[i]] = row
                    atomic_write(folder / ACCEPTED, f"{len(accepted)} of {len(ids)} images\n")
                    if not again:
                        self._log(BlockOutcome(block, "accepted", "", len(ids)))
                        return torch.as_tensor(result, dtype=torch.float32, device=images.device)
                    outcome = BlockOutcome(block, "partial", reason, len(ids))
                    problem = RigResponseError
                    pending = [pending[i] for i in again]
            self._log(outcome)
            history.append(f"block {outcome.block}: {outcome.event} ({outcome.reason})")
            if reshows >= self.retries:
                raise problem(f"rig at {self.exchange}: no usable responses for {len(pending)} image(s) after "
                              f"{reshows} re-show(s) (retries={self.retries}): " + "; ".join(history))
            reshows += 1
            previous = block
        return torch.as_tensor(result, dtype=torch.float32, device=images.device)  # pragma: no cover

    def stop_responder(self) -> None:
        """Ask a responder watching this folder to exit (writes ``EXCHANGE/STOP``)."""
        atomic_write(self.exchange / "STOP", "stop\n")


def pending_blocks(exchange: str | Path) -> list[int]:
    """Blocks that have a manifest but no responses file and no outcome marker yet."""
    out = []
    root = Path(exchange)
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        m = _BLOCK_RE.match(p.name)
        if not m or not (p / MANIFEST).is_file():
            continue
        if any((p / n).exists() for n in RESPONSE_FILES + (ABANDONED, REJECTED, ACCEPTED)):
            continue
        out.append(int(m.group(1)))
    return out

