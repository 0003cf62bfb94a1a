"""Analyses against known answers: Gini, activation curves, bidirectional index, trajectories,
LPIPS / feature similarity, MEI-vs-Gabor metrics, and the figures and CLI commands built on them."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from actmax.core.apps import analysis as A
from actmax.core.errors import WeightsError
from actmax.core.registry import scorers


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


# -- Gini -------------------------------------------------------------------------------------
@pytest.mark.parametrize("values, expected", [
    ([1, 1, 1, 1], 0.0), ([0, 0, 0, 5], 0.75), ([1, 2, 3, 4], 0.25), ([4, 1, 3, 2], 0.25),
    ([0, 0, 0, 0], 0.0), ([7], 0.0), ([0, 1], 0.5),
])
def test_gini_of_known_vectors(values, expected):
    assert A.gini(values) == pytest.approx(expected, abs=1e-12)


def test_gini_equals_mean_absolute_difference_form_for_any_order():
    x = np.random.default_rng(3).exponential(size=501)
    mad = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size ** 2 * x.mean())
    assert A.gini(x) == pytest.approx(mad, rel=1e-10)
    assert A.gini(x[::-1]) == pytest.approx(mad, rel=1e-10)


def test_gini_negative_policies():
    x = np.array([-1.0, 0.0, 1.0, 4.0])
    with pytest.raises(ValueError, match="negative"):
        A.gini(x)
    assert A.gini(x, negative="shift") == pytest.approx(A.gini(x + 1.0))
    assert A.gini(x, negative="clip") == pytest.approx(A.gini([0, 0, 1, 4]))
    with pytest.raises(ValueError, match="NaN"):
        A.gini([1.0, np.nan])


def test_gini_binned_matches_exact_values():
    # one value per bin at the bin centre -> exactly the Gini of those centres
    edges = np.array([0.0, 2.0, 4.0, 6.0, 8.0])
    assert A.gini_binned(edges, np.array([1, 1, 1, 1])) == pytest.approx(A.gini([1, 3, 5, 7]))
    x = np.random.default_rng(0).gamma(0.5, size=20000)
    counts, e = np.histogram(x, bins=2000, range=(0, x.max()))
    assert A.gini_binned(e, counts) == pytest.approx(A.gini(x), abs=2e-3)


# -- activation curve and adaptive sampling --------------------------------------------------
def test_activation_curve_and_adaptive_samples_land_on_the_steep_part():
    flat = np.ones(900)
    tail = np.linspace(2.0, 12.0, 100)
    r = np.random.default_rng(1).permutation(np.concatenate([flat, tail]))
    frac, sorted_r = A.activation_curve(r)
    assert frac[0] == 0 and frac[-1] == 1 and (np.diff(sorted_r) >= 0).all()
    picks = A.adaptive_sample(r, 40, seed=7)
    assert len(set(picks.tolist())) == 40
    assert (r[picks] >= 2.0).all()                   # zero steps in the flat part are never drawn
    assert (np.diff(r[picks]) >= 0).all()            # ordered by response
    np.testing.assert_array_equal(picks, A.adaptive_sample(r, 40, seed=7))
    # fewer nonzero steps than samples: all nonzero steps + an even fill
    few = np.concatenate([np.zeros(50), [1.0, 2.0]])
    p = A.adaptive_sample(few, 10)
    assert len(set(p.tolist())) == 10 and {50, 51} <= set(p.tolist())


# -- bidirectional index ---------------------------------------------------------------------
def test_dual_neuron_bidirectional_index_is_known():
    s = scorers.create("model:kind=dual,n=3,size=32,seed=2")
    gain = s.gain.numpy().astype(np.float64)
    with torch.no_grad():
        mx = s.optimal_response("high").numpy()
        mn = s.optimal_response("low").numpy()
    base = A.baseline_response(s)
    bi = A.bidirectional_index(maximum=mx, minimum=mn, baseline=base)
    np.testing.assert_allclose(bi.baseline, gain * softplus(1), rtol=1e-5)
    np.testing.assert_allclose(bi.maximum, gain * softplus(3), rtol=1e-5)
    np.testing.assert_allclose(bi.minimum, gain * softplus(-3), rtol=1e-4)
    e, su = softplus(3) - softplus(1), softplus(1) - softplus(-3)
    np.testing.assert_allclose(bi.ratio, e / su, rtol=1e-4)
    np.testing.assert_allclose(bi.index, su / (e + su), rtol=1e-4)
    np.testing.assert_allclose(bi.bidirectionality, su / e, rtol=1e-4)
    # a simple cell: rate gain * softplus(8 p) / softplus(8), p in [-1, 1]; grey gives p = 0
    simple = scorers.create("model:kind=simple,n=2,size=32")
    with torch.no_grad():
        b2 = A.bidirectional_index(maximum=simple.optimal_response("high").numpy(),
                                   minimum=simple.optimal_response("low").numpy(),
                                   baseline=A.baseline_response(simple))
    k = 8.0
    np.testing.assert_allclose(b2.index, (softplus(0) - softplus(-k)) / (softplus(k) - softplus(-k)), rtol=1e-4)
    np.testing.assert_allclose(b2.ratio, (softplus(k) - softplus(0)) / (softplus(0) - softplus(-k)), rtol=1e-4)


def test_bidirectional_index_edge_cases():
    bi = A.bidirectional_index(maximum=[3.0, 2.0], minimum=[1.0, 2.0], baseline=[1.0, 2.0])
    assert bi.ratio[0] == np.inf and bi.index[0] == 0.0 and np.isnan(bi.index[1])
    with pytest.raises(ValueError, match="outside"):
        A.bidirectional_index(maximum=[3.0], minimum=[1.0], baseline=[5.0])


# -- trajectories ------------------------------------------------------------------------------
def test_time_constant_of_a_synthetic_exponential():
    t = np.arange(40)
    clean = 1.0 - 0.8 * np.exp(-t / 6.5)
    fit = A.fit_time_constant(clean)
    assert fit.tau == pytest.approx(6.5, rel=1e-4) and fit.converged and fit.r2 > 0.9999
    noisy = clean + np.random.default_rng(0).normal(0, 0.01, t.size)
    fit = A.fit_time_constant(noisy)
    assert fit.tau == pytest.approx(6.5, rel=0.08)
    assert fit.y_inf == pytest.approx(1.0, abs=0.02) and fit.y0 == pytest.approx(0.2, abs=0.03)
    ramp = A.fit_time_constant(np.linspace(0, 1, 30))  # still rising linearly: no convergence
    assert not ramp.converged


def test_normalise_trajectory_modes():
    v = np.array([2.0, 3.0, 6.0, 5.0])
    np.testing.assert_allclose(A.normalise_trajectory(v), v / 6.0)
    np.testing.assert_allclose(A.normalise_trajectory(v, mode="range"), (v - 2.0) / 4.0)
    np.testing.assert_allclose(A.normalise_trajectory(v, mode="baseline", baseline=1.0), (v - 1.0) / 5.0)
    with pytest.raises(ValueError):
        A.normalise_trajectory([1.0, 1.0], mode="range")


def test_success_test_matches_scipy_on_the_peak_blocks():
    from scipy.stats import ttest_ind

    rng = np.random.default_rng(5)
    means = [1.0, 1.0, 1.5, 2.5, 3.0, 3.6, 3.2, 3.0]
    blocks = [rng.normal(m, 0.5, 20) for m in means]
    test = A.evolution_success(blocks)
    assert test.peak_block == 5 and test.peak_blocks == (4, 5)
    ref = ttest_ind(np.concatenate([blocks[4], blocks[5]]), np.concatenate([blocks[0], blocks[1]]))
    assert test.p_value == pytest.approx(ref.pvalue) and test.success
    flat = [rng.normal(1.0, 0.5, 20) for _ in range(8)]
    flat_test = A.evolution_success(flat, alpha=0.01)
    assert not flat_test.success and flat_test.p_value > 0.01
    # LEI search: the low pole looks for the minimum
    low = A.evolution_success([-b for b in blocks], pole="low")
    assert low.success and low.peak_block == 5
    assert not A.evolution_success(blocks, pole="low").success


def test_analyze_trajectories_on_a_score_table():
    rng = np.random.default_rng(2)
    rows = []
    for space, tau in (("a", 4.0), ("b", 12.0)):
        for g in range(40):
            m = 10 - 8 * math.exp(-g / tau)
            rows += [{"generation": g, "space": space, "index": i, "score": m + rng.normal(0, 0.05)} for i in range(10)]
    rows += [{"generation": g, "space": "reference", "index": 0, "score": 0.0} for g in range(40)]
    out = A.analyze_trajectories(pd.DataFrame(rows))
    assert list(out["space"]) == ["a", "b"]
    assert out["tau"].to_numpy() == pytest.approx([4.0, 12.0], rel=0.1)
    assert out["success"].all()


# -- image similarity --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    """Randomly initialised torchvision AlexNet weights under the real file name (built locally)."""
    from torchvision.models import alexnet

    torch.manual_seed(0)
    state = alexnet(weights=None).state_dict()
    folder = tmp_path_factory.mktemp("weights")
    path = folder / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    return path, state


def _alexnet_to_lpips_slices(state):
    """torchvision AlexNet ``features.i.*`` -> lpips ``slice<k>.i.*`` (slices start at layers 0, 2, 5, 8, 10)."""
    out = {}
    for key, value in state.items():
        if key.startswith("features."):
            _, index, param = key.split(".")
            k = 1 + sum(int(index) >= start for start in (2, 5, 8, 10))
            out[f"slice{k}.{index}.{param}"] = value
    return out


def test_lpips_with_locally_built_weights_matches_the_lpips_package(alexnet_file, monkeypatch):
    import warnings

    import lpips

    path, state = alexnet_file
    d = A.LPIPSDistance("alex", trunk_weights=str(path))
    torch.testing.assert_close(d.model.net.slice1._modules["0"].weight, state["features.0.weight"])
    torch.testing.assert_close(d.model.net.slice5._modules["10"].bias, state["features.10.bias"])
    rng = torch.Generator().manual_seed(1)
    a, b = torch.rand(3, 3, 64, 64, generator=rng), torch.rand(3, 3, 64, 64, generator=rng)
    with torch.no_grad():
        dab, dba, daa = d(a, b), d(b, a), d(a, a)
    torch.testing.assert_close(dab, dba)
    assert (daa.abs() < 1e-6).all() and (dab > 0).all()
    # the lpips package itself, with the same trunk and its own calibrated linear layers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    ref.net.load_state_dict(_alexnet_to_lpips_slices(state))
    with torch.no_grad():
        torch.testing.assert_close(dab, ref(a * 2 - 1, b * 2 - 1).flatten())
    # the resolver also finds it through $ACTMAX_WEIGHTS_DIR
    monkeypatch.setenv("ACTMAX_WEIGHTS_DIR", str(path.parent))
    assert A.LPIPSDistance("alex").trunk_path == path


def test_lpips_missing_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("ACTMAX_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("ACTMAX_LPIPS_ALEX_WEIGHTS", raising=False)
    with pytest.raises(WeightsError, match="alexnet-owt-7be5be79.pth") as exc:
        A.LPIPSDistance("alex")
    assert "ACTMAX_LPIPS_ALEX_WEIGHTS" in str(exc.value)
    with pytest.raises(WeightsError, match="does not exist"):
        A.LPIPSDistance("alex", trunk_weights=str(tmp_path / "nope.pth"))


def test_feature_cosine_known_answers():
    rng = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, 1, 16, 16, generator=rng), torch.rand(4, 1, 16, 16, generator=rng)
    pix = A.feature_cosine(a, b, features=lambda x: x)
    fa, fb = a.flatten(1).double().numpy(), b.flatten(1).double().numpy()
    np.testing.assert_allclose(pix, (fa * fb).sum(1) / np.linalg.norm(fa, axis=1) / np.linalg.norm(fb, axis=1))
    same = A.feature_cosine(a, a, features="model:kind=mixed,n=6,size=16")
    np.testing.assert_allclose(same, 1.0, atol=1e-12)
    neg = A.feature_cosine(a, b, features=lambda x: x - 0.5)
    np.testing.assert_allclose(A.feature_cosine(a, 1 - a, features=lambda x: x - 0.5), -1.0, atol=1e-12)
    assert (np.abs(neg) < 1).all()


# -- MEI vs Gabor ------------------------------------------------------------------------------
def _analytic_quarter_turn(freq: float, sigma: float) -> float:
    """<g, R90 g> / <g, g> for an isotropic even Gabor on an infinite plane."""
    kk = (2 * math.pi * freq * sigma) ** 2
    return 2 * math.exp(-kk / 2) / (1 + math.exp(-kk))


@pytest.mark.parametrize("theta", [0.0, 0.5, 2.2])
def test_symmetry_indices_of_pure_gabors(theta):
    c, sigma, f = 47.5, 6.0, 0.05
    even = A.gabor_image(96, x0=c, y0=c, sigma=sigma, theta=theta, frequency=f, phase=0.0, amplitude=0.4, offset=0.5)
    odd = A.gabor_image(96, x0=c, y0=c, sigma=sigma, theta=theta, frequency=f, phase=math.pi / 2, amplitude=0.4,
                        offset=0.5)
    a = _analytic_quarter_turn(f, sigma)
    s_even = A.rotational_symmetry(even, folds=(2, 4), center="image")
    s_odd = A.rotational_symmetry(odd, folds=(2, 4), center="image")
    assert s_even[2] == pytest.approx(1.0, abs=1e-9)
    assert s_odd[2] == pytest.approx(-1.0, abs=1e-9)
    assert s_even[4] == pytest.approx((2 * a + 1) / 3, abs=2e-3)
    assert s_odd[4] == pytest.approx(-1 / 3, abs=2e-3)
    # the default centre (energy centroid) finds the same centre
    assert A.rotational_symmetry(even, folds=(2,))[2] == pytest.approx(1.0, abs=1e-6)
    # a radial pattern (concentric rings) is symmetric for every n
    yy, xx = np.mgrid[0:96, 0:96] - c
    rings = 0.5 + 0.3 * np.cos(0.5 * np.hypot(xx, yy)) * np.exp(-(xx ** 2 + yy ** 2) / 800)
    assert min(A.rotational_symmetry(rings, folds=(3, 5, 7), center="image").values()) > 0.98


def _notebook_si_by_hand(img: np.ndarray, n: int, remove_mean: bool) -> float:
    """The seed notebook's recipe written out with loops: a direct DFT (no np.fft), pixels binned by
    floor(angle / (pi/16)) about the shifted DC pixel, mean power per bin, then the n-fold sum."""
    h, w = img.shape
    x = img - img.mean() if remove_mean else img
    cy, cx = h // 2, w // 2
    power: dict[int, list[float]] = {}
    for r in range(h):
        for c in range(w):
            ky, kx = r - cy, c - cx      # fftshift: row r holds frequency r - h // 2
            z = sum(x[a, b] * complex(math.cos(-2 * math.pi * (ky * a / h + kx * b / w)),
                                      math.sin(-2 * math.pi * (ky * a / h + kx * b / w)))
                    for a in range(h) for b in range(w))
            k = math.floor(math.atan2(r - cy, c - cx) / (math.pi / 16))
            power.setdefault(k, []).append(abs(z) ** 2)
    low = min(power)
    num = sum(sum(v) / len(v) * complex(math.cos(2 * n * (k - low) * math.pi / 16), math.sin(2 * n * (k - low) * math.pi / 16))
              for k, v in power.items())
    den = sum(sum(v) / len(v) for v in power.values())
    return abs(num) / den


@pytest.mark.parametrize("remove_mean", [False, True])
def test_spectral_symmetry_index_matches_a_hand_computation(remove_mean):
    img = np.random.default_rng(7).random((5, 6))       # odd height, even width: centre conventions matter
    for n in (1, 2, 3):
        assert A.spectral_symmetry_index(img, n, remove_mean=remove_mean) == pytest.approx(
            _notebook_si_by_hand(img, n, remove_mean), rel=1e-9)


def test_spectral_symmetry_index_known_answers():
    si = A.spectral_symmetry_index
    # a flat power spectrum (an impulse): 32 bins over the full turn cancel, the extra bin at
    # exactly pi is left: 1/33
    d = np.zeros((16, 16))
    d[3, 5] = 1.0
    assert si(d, 1) == pytest.approx(1 / 33, abs=1e-12) and si(d, 2) == pytest.approx(1 / 33, abs=1e-12)
    # white noise (isotropic on average): near 0
    noise = np.random.default_rng(0).normal(size=(64, 64))
    assert si(noise, 1, remove_mean=True) < 0.1 and si(noise, 2, remove_mean=True) < 0.1
    # one grating, any orientation: all power on one line through the origin -> 1 for n = 1 and 2
    yy, xx = np.mgrid[0:32, 0:32]
    for fx, fy in ((4, 0), (3, 3), (0, 5), (2, -5)):
        g = 0.5 + 0.3 * np.cos(2 * np.pi * (fx * xx + fy * yy) / 32)
        assert si(g, 1, remove_mean=True) == pytest.approx(1.0, abs=1e-9)
        assert si(g, 2, remove_mean=True) == pytest.approx(1.0, abs=1e-9)
    # a plaid of two orthogonal gratings is 2-fold (quarto) but not 1-fold (folio)
    plaid = np.cos(2 * np.pi * 4 * xx / 32) + np.cos(2 * np.pi * 4 * yy / 32)
    assert si(plaid, 2, remove_mean=True) == pytest.approx(1.0, abs=1e-9)
    assert si(plaid, 1, remove_mean=True) < 0.3
    # the notebook keeps the DC term: an image with a mean is ~1 whatever its structure; the
    # mean-removed variant is not fooled
    blob = 0.5 + 0.4 * np.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / 18.0)
    assert si(blob, 1) > 0.95 and si(blob, 1, remove_mean=True) < 0.2
    assert si(noise + 3.0, 1) > 0.9 and si(noise + 3.0, 1, remove_mean=True) < 0.1
    # grey conversion of a colour image, argument checks
    assert si(np.stack([g, g, g]), 1, remove_mean=True) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="n must be"):
        si(g, 0)
    with pytest.raises(ValueError, match="no power"):
        si(np.full((8, 8), 0.5), 1, remove_mean=True)
    m = A.spectral_symmetry_indices(np.full((8, 8), 0.5))
    assert m["spectral_si_1"] == pytest.approx(1.0) and math.isnan(m["spectral_si_2_demeaned"])


def test_fit_gabor_recovers_parameters():
    true = dict(x0=30.2, y0=35.1, sigma=5.5, theta=2.0, frequency=0.09, phase=0.7, aspect=1.3, amplitude=0.35,
                offset=0.5)
    img = A.gabor_image(64, **true)
    fit = A.fit_gabor(img)
    for key, val in true.items():
        assert fit.params[key] == pytest.approx(val, abs=1e-3), key
    assert fit.r2 == pytest.approx(1.0, abs=1e-8)
    noisy = img + np.random.default_rng(0).normal(0, 0.02, img.shape)
    fit = A.fit_gabor(noisy)
    assert fit.params["theta"] == pytest.approx(2.0, abs=0.05)
    assert fit.params["frequency"] == pytest.approx(0.09, abs=0.005)
    assert fit.correlation > 0.8
    # the same image through a torch tensor (C, H, W) gives the same fit
    t = torch.tensor(img, dtype=torch.float64)[None]
    assert A.fit_gabor(t).params["sigma"] == pytest.approx(5.5, abs=1e-3)


def test_masked_luminance_and_contrast_known_pattern():
    yy, xx = np.mgrid[0:40, 0:40]
    mask = (xx - 19.5) ** 2 + (yy - 19.5) ** 2 <= 12 ** 2
    checker = np.where((xx + yy) % 2 == 0, 0.1, -0.1)
    img = np.where(mask, 0.6 + checker, 0.2)
    out = A.masked_luminance_contrast(img, mask)
    lum_exact = img[mask].mean()
    assert out["luminance"] == pytest.approx(lum_exact, abs=1e-12) and abs(lum_exact - 0.6) < 0.01
    assert out["contrast"] == pytest.approx(img[mask].std(), abs=1e-12) and abs(out["contrast"] - 0.1) < 0.01
    est = A.estimate_mask(np.where(mask, 0.6 + checker, 0.5))
    assert ((est > 0.5) == mask).mean() > 0.95


def test_radial_power_spectrum_known_answers():
    yy, xx = np.mgrid[0:64, 0:64]
    grating = 0.5 + 0.3 * np.cos(2 * math.pi * 8 / 64 * (xx * math.cos(0.6) + yy * math.sin(0.6)))
    assert A.radial_power_spectrum(grating).peak_frequency == pytest.approx(8 / 64, abs=1.01 / 64)
    # random-phase noise with amplitude 1/f has power ~ f^-2
    rng = np.random.default_rng(0)
    n = 128
    fy, fx = np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")
    f = np.hypot(fx, fy)
    f[0, 0] = 1.0
    spec = (1 / f) * np.exp(2j * math.pi * rng.random((n, n)))
    img = np.real(np.fft.ifft2(spec))
    img = 0.5 + 0.1 * img / img.std()
    assert A.radial_power_spectrum(img).slope == pytest.approx(-2.0, abs=0.15)
    white = rng.random((n, n))
    assert A.radial_power_spectrum(white).slope == pytest.approx(0.0, abs=0.15)


def test_compare_to_gabor_on_a_model_neuron_optimum():
    s = scorers.create("model:kind=simple,n=1,size=48,seed=4")
    mei = s.optimal_stimulus("high")[0]
    m = A.compare_to_gabor(mei)
    assert m["gabor_r2"] > 0.95                     # the simple cell's optimum is a Gabor
    x, y, sigma, theta = s.receptive_fields[0]
    assert math.hypot(m["gabor_x0"] - (x - 0.5), m["gabor_y0"] - (y - 0.5)) < 1.0
    assert m["luminance"] == pytest.approx(0.5, abs=0.02)
    assert {f"symmetry_{n}" for n in range(2, 9)} <= set(m)
    for name in ("spectral_si_1", "spectral_si_2", "spectral_si_1_demeaned", "spectral_si_2_demeaned"):
        assert 0.0 <= m[name] <= 1.0 + 1e-12
    assert m["spectral_si_1_demeaned"] == pytest.approx(A.spectral_symmetry_index(mei, 1, remove_mean=True))


# -- figures and CLI ---------------------------------------------------------------------------
def _is_png(path) -> bool:
    return path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reports_write_tables_and_figures(tmp_path):
    from actmax.core.apps.analysis_reports import report_activation, report_bidirectional, report_images, report_similarity
    from PIL import Image

    from actmax.core.apps.screen import screen

    s = scorers.create("model:kind=dual,n=2,size=32,seed=1")
    for pole in ("high", "low"):   # plain grey PNGs at the native size
        arr = (s.optimal_stimulus(pole)[0, 0].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / f"{pole}.png")
    table = report_images([tmp_path / "high.png"], out=tmp_path / "g")
    assert table.loc[0, "gabor_r2"] > 0.5 and _is_png(tmp_path / "g" / "gabor_high.png")
    from actmax.core.apps.natural_images import sample_patches
    np.save(tmp_path / "x.npy", (sample_patches(200, 32, seed=0) * 255).astype(np.uint8))
    screen("model:kind=dual,n=2,size=32,seed=1", tmp_path / "x.npy", k=3, out_dir=tmp_path / "scr", max_montages=0)
    bi = report_bidirectional("model:kind=dual,n=2,size=32,seed=1", records=[tmp_path / "scr"], out=tmp_path / "b")
    assert (bi["minimum"] <= bi["baseline"]).all() and _is_png(tmp_path / "b" / "bidirectional.png")
    act = report_activation("model:kind=dual,n=2,size=32,seed=1", tmp_path / "x.npy", unit=1, out=tmp_path / "a",
                            samples=12)
    assert len(act) == 12 and _is_png(tmp_path / "a" / "activation_unit1.png")
    sim = report_similarity([tmp_path / "high.png", tmp_path / "low.png", tmp_path / "high.png"], out=tmp_path / "c",
                            metric="cosine", features="model:kind=mixed,n=6,size=32")
    assert sim.loc[sim["a"].eq(sim["b"]), "cosine"].to_numpy() == pytest.approx([1.0])
    assert _is_png(tmp_path / "c" / "similarity_cosine.png")


def test_cli_analyze_trajectory_on_an_evolution_record(tmp_path, capsys):
    from actmax.core.cli import main
    from actmax.core.evolve import evolve

    evolve("gabor", "model:kind=simple,n=1,size=32", "cma:popsize=8", unit=0, generations=12, seed=0,
           out_dir=tmp_path / "ev")
    main(["analyze", "trajectory", str(tmp_path / "ev"), "--json"])
    rows = pd.read_json(__import__("io").StringIO(capsys.readouterr().out))
    assert list(rows["space"]) == ["gabor"] and rows.loc[0, "generations"] == 12
    assert _is_png(tmp_path / "ev" / "trajectory_analysis.png")
    assert (tmp_path / "ev" / "trajectory_analysis.csv").exists()
