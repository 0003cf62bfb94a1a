"""Screening: streamed top/bottom-k equal a full sort, statistics, image sets, resume, CLI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from actmax.core.apps.analysis import gini
from actmax.core.contracts import ContractError
from actmax.core.errors import RecordError
from actmax.core.apps.natural_images import sample_patches
from actmax.core.registry import scorers
from actmax.core.apps.screen import StreamingScreen, load_screen, open_images, resume_screen, screen

TIES = "callable:fn=tests.helpers.screen_scorers:quantised,units=4"
MODEL = "model:kind=mixed,n=6,size=24,seed=3"


def reference_extremes(resp: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Independent reference: Python's sort on (value, index) keys, per unit."""
    n, u = resp.shape
    tv, ti, bv, bi = (np.zeros((u, k)), np.zeros((u, k), int), np.zeros((u, k)), np.zeros((u, k), int))
    for j in range(u):
        top = sorted(range(n), key=lambda i: (-float(resp[i, j]), i))[:k]
        bot = sorted(range(n), key=lambda i: (float(resp[i, j]), i))[:k]
        tv[j], ti[j], bv[j], bi[j] = resp[top, j], top, resp[bot, j], bot
    return tv, ti, bv, bi


def responses(spec: str, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """All responses at once (the naive approach), in the same batches as the screen (float
    matmuls can differ in the last bit between batch sizes)."""
    s = scorers.create(spec).eval()
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    with torch.no_grad():
        return np.concatenate([s(x[i:i + batch]).numpy() for i in range(0, len(x), batch)])


@pytest.fixture(scope="module")
def patches(tmp_path_factory):
    """3,000 natural patches (N, 1, 24, 24) uint8, saved as .npy."""
    x = (sample_patches(3000, 24, seed=11) * 255 + 0.5).astype(np.uint8)
    path = tmp_path_factory.mktemp("set") / "patches.npy"
    np.save(path, x)
    return x, path


@pytest.mark.parametrize("spec", [TIES, MODEL])
@pytest.mark.parametrize("batch_size", [37, 512])
def test_streamed_extremes_equal_full_sort(patches, spec, batch_size):
    x, path = patches
    k = 9
    resp = responses(spec, x, batch_size).astype(np.float32)
    if spec == TIES:  # the test must exercise ties at the top-k boundary
        assert len(np.unique(resp[:, 0])) < 10
    res = screen(spec, path, k=k, batch_size=batch_size)
    tv, ti, bv, bi = reference_extremes(resp, k)
    np.testing.assert_array_equal(res.top_indices, ti)
    np.testing.assert_array_equal(res.bottom_indices, bi)
    np.testing.assert_array_equal(res.top_values, tv.astype(np.float32))
    np.testing.assert_array_equal(res.bottom_values, bv.astype(np.float32))
    # the long table agrees with the arrays
    t = res.table
    hi = t[(t.unit == 1) & (t.pole == "high")].sort_values("rank")
    np.testing.assert_array_equal(hi["image_index"].to_numpy(), ti[1])
    assert hi["source"].iloc[0] == f"patches.npy[{ti[1, 0]}]"


def test_statistics_match_numpy(patches):
    x, path = patches
    resp = responses(TIES, x).astype(np.float32).astype(np.float64)
    res = screen(TIES, path, k=5, batch_size=100)
    st = res.stats
    np.testing.assert_allclose(st["mean"], resp.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(st["std"], resp.std(0, ddof=1), rtol=1e-9)
    from scipy.stats import skew
    np.testing.assert_allclose(st["skewness"], skew(resp, axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(st["min"], resp.min(0))
    np.testing.assert_allclose(st["max"], resp.max(0))
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        exact = np.quantile(resp, q, axis=0)
        est = st[f"q{int(round(q * 100)):02d}"].to_numpy()
        assert (np.abs(est - exact) <= st["q_error"].to_numpy() + 1e-12).all(), (q, est, exact)
    # Gini from the sketch is within its bound of the exact one; NaN for the signed unit
    for u in range(3):
        assert abs(st["gini"][u] - gini(resp[:, u])) <= st["gini_error"][u] <= 0.005 + 1e-12
    assert np.isnan(st["gini"][3]) and resp[:, 3].min() < 0


def test_quantiles_have_the_ddsketch_relative_accuracy(patches):
    from ddsketch import DDSketch

    x, path = patches
    resp = responses(MODEL, x, 256).astype(np.float32).astype(np.float64)
    alpha = 0.002
    res = screen(MODEL, path, k=4, batch_size=256, relative_accuracy=alpha)
    st = res.stats
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        name = f"q{int(round(q * 100)):02d}"
        exact = np.quantile(resp, q, axis=0)
        err = np.abs(st[name].to_numpy() - exact)
        assert (err <= st[f"{name}_error"].to_numpy() + 1e-12).all(), (q, err, st[f"{name}_error"])
        assert (err <= alpha * np.abs(exact) * 1.001 + 1e-12).all()                # DDSketch's guarantee
        assert (st[f"{name}_error"] <= alpha / (1 - alpha) * np.abs(st[name]) * 1.001 + 1e-12).all()
    # the same buckets as the ddsketch library's own (scalar) sketch: order statistics agree
    u = 1
    lib = DDSketch(alpha)
    for v in resp[:, u]:
        lib.add(float(v))
    n = len(resp)
    for q in (0.3, 0.5, 0.7):   # library: the value of order statistic floor(q (n - 1)), lower quantile
        r = int(q * (n - 1))
        ours, _ = res.state.quantiles([r / (n - 1)])
        assert ours[u, 0] == pytest.approx(lib.get_quantile_value(q), rel=1e-9)


def _contrast_sorted_patches(n: int, seed: int) -> np.ndarray:
    x = sample_patches(n, 32, seed=seed).astype(np.float32)          # (N, 1, 32, 32) in [0, 1]
    return x[np.argsort(x.reshape(n, -1).std(axis=1), kind="stable")]


@pytest.mark.parametrize("order", ["contrast", "shuffled"])
def test_gini_and_quantiles_within_their_bounds_whatever_the_order(tmp_path, order):
    """Images ordered by contrast broke the old first-batch histogram range (Gini 0.14-0.19 vs exact
    0.05-0.06); the sketch does not depend on the order and its reported bounds hold for every unit."""
    spec = "model:kind=complex,n=4,size=32"
    x = _contrast_sorted_patches(2000, seed=21)
    if order == "shuffled":
        x = x[np.random.default_rng(0).permutation(len(x))]
    np.save(tmp_path / "x.npy", x)
    model = scorers.create(spec).eval()
    with torch.no_grad():
        resp = np.concatenate([model(torch.from_numpy(x[i:i + 100])).numpy() for i in range(0, len(x), 100)])
    resp = resp.astype(np.float32).astype(np.float64)
    assert resp.min() >= 0
    res = screen(spec, tmp_path / "x.npy", k=8, batch_size=100)
    st = res.stats
    exact_gini = np.array([gini(resp[:, u]) for u in range(resp.shape[1])])
    err = np.abs(st["gini"].to_numpy() - exact_gini)
    assert (err <= st["gini_error"].to_numpy()).all(), (st["gini"].to_numpy(), exact_gini, st["gini_error"].to_numpy())
    assert (st["gini_error"] <= 0.005 + 1e-12).all()       # nothing collapsed: the bound is alpha
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        name = f"q{int(round(q * 100)):02d}"
        qerr = np.abs(st[name].to_numpy() - np.quantile(resp, q, axis=0))
        assert (qerr <= st[f"{name}_error"].to_numpy() + 1e-12).all(), (name, qerr, st[f"{name}_error"])
    # the sketch state is the same multiset function for both orders
    y = resp[np.random.default_rng(1).permutation(len(resp))]
    other = StreamingScreen(resp.shape[1], k=8)
    for i in range(0, len(y), 64):
        other.update(y[i:i + 64], i)
    for key in ("pos_counts", "neg_counts", "zero_counts", "pos_top", "pos_low"):
        np.testing.assert_array_equal(getattr(other, key), getattr(res.state, key))


def test_sketch_handles_negatives_zeros_and_a_wide_range():
    rng = np.random.default_rng(3)
    n = 4000
    r = np.stack([rng.normal(size=n), np.where(rng.random(n) < 0.3, 0.0, rng.exponential(size=n)),
                  np.exp(rng.uniform(-40, 5, size=n)), -rng.exponential(size=n)], axis=1)
    s = StreamingScreen(4, k=3, relative_accuracy=0.01, bins=1024)  # unit 2 spans e^45: bucket 0 collapses
    for i in range(0, n, 300):
        s.update(r[i:i + 300], i)
    r = r.astype(np.float32).astype(np.float64)
    qs = np.linspace(0.01, 0.99, 25)
    est, bound = s.quantiles(qs)
    exact = np.quantile(r, qs, axis=0).T
    assert (np.abs(est - exact) <= bound + 1e-12).all()
    g, gb = s.gini()
    assert np.isnan(g[0]) and np.isnan(g[3]) and np.isnan(gb[0])
    for u in (1, 2):
        assert abs(g[u] - gini(r[:, u])) <= gb[u]
    assert gb[1] == pytest.approx(0.01) and gb[2] > 0.01         # the collapsed bucket widens unit 2's bound
    import io
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    buf.seek(0)
    ckpt = StreamingScreen.from_state_dict(torch.load(buf, weights_only=True))
    np.testing.assert_array_equal(ckpt.quantiles(qs)[0], est)


def test_state_memory_does_not_grow_with_images():
    rng = np.random.default_rng(0)
    sizes = []
    for n in (500, 5000):
        s = StreamingScreen(7, k=5, bins=64)
        for start in range(0, n, 250):
            s.update(rng.normal(size=(250, 7)) * (1 + start), start)   # a growing range moves the windows too
        sizes.append(sum(v.nbytes for v in vars(s).values() if isinstance(v, np.ndarray)))
        ckpt = s.state_dict()
        sizes.append(sum(v.nbytes for v in ckpt.values() if isinstance(v, torch.Tensor)))
        assert s.n == n and s.top_values.shape == (7, 5)
    assert sizes[0] == sizes[2] and sizes[1] == sizes[3]


def test_nan_responses_are_a_clear_error():
    s = StreamingScreen(2, k=3)
    bad = np.array([[1.0, 2.0], [np.nan, 0.0]])
    with pytest.raises(ContractError, match="unit 0 on image 11"):
        s.update(bad, 10)


def test_image_folder_recursive_png_jpeg_grey_and_rgb(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    (tmp_path / "a" / "b").mkdir(parents=True)
    grey = (rng.random((20, 20)) * 255).astype(np.uint8)
    rgb = (rng.random((20, 20, 3)) * 255).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "z.png")
    Image.fromarray(rgb).save(tmp_path / "a" / "b" / "c.PNG")
    Image.fromarray(rgb).save(tmp_path / "a" / "m.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    ds = open_images(tmp_path)
    assert [ds.source(i) for i in range(len(ds))] == ["a/b/c.PNG", "a/m.jpg", "z.png"]
    assert ds[2].shape == (1, 20, 20) and ds[0].shape == (3, 20, 20)
    np.testing.assert_allclose(ds[2][0].numpy(), grey / 255.0, atol=1e-6)
    np.testing.assert_allclose(ds[0].numpy(), rgb.transpose(2, 0, 1) / 255.0, atol=1e-6)
    batch = ds.batch([0, 2])  # mixed grey/RGB -> RGB
    assert batch.shape == (2, 3, 20, 20)
    res = screen("model:kind=simple,n=2,size=20", tmp_path, k=2, batch_size=2)
    assert set(res.table["source"]) <= {"a/b/c.PNG", "a/m.jpg", "z.png"}
    Image.fromarray(grey[:10]).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match="different sizes"):
        screen("model:kind=simple,n=2,size=20", tmp_path, k=2, batch_size=8)
    res = screen("model:kind=simple,n=2,size=20", tmp_path, k=2, batch_size=8, size=16)
    assert res.state.n == 4


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_array_layouts_give_the_same_screen(tmp_path, layout, dtype):
    base = (sample_patches(64, 16, channels=3, seed=5) * 255).astype(np.uint8)  # (N, 3, H, W)
    arr = {"NCHW": base, "NHWC": base.transpose(0, 2, 3, 1), "NHW": base[:, 0]}[layout]
    if dtype == "float32":
        arr = arr.astype(np.float32) / 255.0
    np.save(tmp_path / "x.npy", arr)
    np.savez(tmp_path / "x.npz", images=arr)
    a = screen("model:kind=complex,n=3,size=16", tmp_path / "x.npy", k=4, batch_size=10)
    b = screen("model:kind=complex,n=3,size=16", tmp_path / "x.npz", k=4, batch_size=64)
    np.testing.assert_array_equal(a.top_indices, b.top_indices)
    ref_imgs = torch.from_numpy(base[:, :1] if layout == "NHW" else base).float() / 255.0
    ref = reference_extremes(scorers.create("model:kind=complex,n=3,size=16")(ref_imgs).detach().numpy(), 4)
    np.testing.assert_array_equal(a.top_indices, ref[1])


def test_array_errors(tmp_path):
    np.save(tmp_path / "bad.npy", np.full((4, 8, 8), 2.0, np.float32))
    with pytest.raises(ContractError, match=r"\[0, 1\]"):
        screen("model:n=1,size=8", tmp_path / "bad.npy", k=1)
    np.save(tmp_path / "amb.npy", np.zeros((4, 3, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="layout="):
        open_images(tmp_path / "amb.npy")
    assert open_images(tmp_path / "amb.npy", layout="NCHW")[0].shape == (3, 8, 3)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="Python objects"):
        open_images(tmp_path / "obj.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 4, 4), np.uint8), b=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="key="):
        open_images(tmp_path / "two.npz")
    with pytest.raises(FileNotFoundError):
        open_images(tmp_path / "missing")


def _interrupted(spec, path, out, *, crash_batch, **kw):
    """Run a screen that dies in batch ``crash_batch`` (a simulated kill) and leaves its checkpoint."""
    calls = {"n": 0}
    original = StreamingScreen.update

    def dying(self, responses, start):
        calls["n"] += 1
        if calls["n"] == crash_batch:
            raise KeyboardInterrupt("simulated kill")
        return original(self, responses, start)

    StreamingScreen.update = dying
    try:
        with pytest.raises(KeyboardInterrupt):
            screen(spec, path, out_dir=out, **kw)
    finally:
        StreamingScreen.update = original


def test_resume_gives_the_same_result(patches, tmp_path):
    _, path = patches
    kw = dict(k=6, batch_size=128, checkpoint_every=4, bins=128, max_montages=2)
    full = screen(TIES, path, out_dir=tmp_path / "full", **kw)
    _interrupted(TIES, path, tmp_path / "cut", crash_batch=11, **kw)
    assert (tmp_path / "cut" / "checkpoint.pt").exists()
    with pytest.raises(RecordError, match="already holds"):
        screen(TIES, path, out_dir=tmp_path / "cut", **kw)
    resumed = resume_screen(tmp_path / "cut", trust=True)
    np.testing.assert_array_equal(resumed.top_indices, full.top_indices)
    np.testing.assert_array_equal(resumed.bottom_values, full.bottom_values)
    pd.testing.assert_frame_equal(resumed.stats, full.stats)
    pd.testing.assert_frame_equal(resumed.table, full.table)
    t1, s1 = load_screen(tmp_path / "cut")
    pd.testing.assert_frame_equal(s1, full.stats)
    # one lifecycle for every run kind: the final checkpoint is kept, and resuming a finished
    # screen re-verifies the record and returns the same result without running again
    assert (tmp_path / "cut" / "checkpoint.pt").exists()
    again = resume_screen(tmp_path / "cut", trust=True)
    pd.testing.assert_frame_equal(again.table, full.table)


def test_resume_refuses_a_changed_image_set(tmp_path):
    x = (sample_patches(300, 16, seed=2) * 255).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    _interrupted(MODEL, tmp_path / "x.npy", tmp_path / "cut", crash_batch=4, k=3, batch_size=32, checkpoint_every=2)
    np.save(tmp_path / "x.npy", x[:200])
    with pytest.raises(RecordError, match="changed"):
        resume_screen(tmp_path / "cut", trust=True)


def test_cli_screen_and_resume(tmp_path, cli, monkeypatch, capsys):
    from actmax.core.cli import main

    x = (sample_patches(400, 16, seed=4) * 255).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    r = cli("screen", str(tmp_path / "x.npy"), "-s", TIES, "--out", str(tmp_path / "full"), "-k", "4",
            "--batch-size", "50", "--no-progress", "--montages", "1")
    assert r.returncode == 0, r.stderr
    assert "400 images x 4 units" in r.stdout
    for name in ("screen.parquet", "screen.csv", "unit_stats.csv", "screen_summary.png", "images/unit_0000.png"):
        assert (tmp_path / "full" / name).exists(), name
    # crashes in the 6th scorer call -> checkpoint after batch 4 -> `actmax resume` finishes it
    import tests.helpers.screen_scorers as helper
    monkeypatch.setitem(helper._CALLS, "n", 0)
    monkeypatch.setenv("SCREEN_CRASH_AT", "6")
    crash = TIES.replace(":quantised", ":crashing")
    with pytest.raises(SystemExit) as crashed:   # a raising scorer function is one error line, exit 2
        main(["screen", str(tmp_path / "x.npy"), "-s", crash, "--out", str(tmp_path / "cut"), "-k", "4",
              "--batch-size", "50", "--checkpoint-every", "2", "--no-progress"])
    assert crashed.value.code == 2 and "simulated crash" in capsys.readouterr().err
    assert (tmp_path / "cut" / "checkpoint.pt").exists()
    monkeypatch.delenv("SCREEN_CRASH_AT")
    main(["resume", "--trust", str(tmp_path / "cut"), "--no-progress"])
    assert "400 images x 4 units" in capsys.readouterr().out
    a = pd.read_parquet(tmp_path / "full" / "screen.parquet")
    b = pd.read_parquet(tmp_path / "cut" / "screen.parquet")
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(SystemExit) as exc:
        main(["screen", str(tmp_path / "nothing.npy"), "-s", TIES, "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "does not exist" in capsys.readouterr().err
