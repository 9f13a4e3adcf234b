"""Parity with torch-fidelity: same random weights (its key layout), same uint8 images, same numbers.

torch-fidelity is a test-only dependency (``pip install -e '.[test]'``). It installs a top-level
``tests`` package into site-packages; our tests directory has no ``__init__.py``, so pytest imports
our modules by their own names (``conftest``, ``test_*``, ``metrics_helpers``) from this directory,
and nothing here ever imports ``tests``: the two cannot shadow each other (checked below).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, make_images
from metrics_helpers import weights_file

tfid = pytest.importorskip("torch_fidelity", reason="torch-fidelity is a test extra: pip install -e '.[test]'")
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3  # noqa: E402

from sagan_cli.metrics.fid import frechet_distance, statistics  # noqa: E402
from sagan_cli.metrics.isc import inception_score  # noqa: E402
from sagan_cli.metrics.kid import kernel_inception_distance  # noqa: E402
from sagan_cli.metrics.weights import load_inception  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))
N = 4  # images per side: the network runs at ~1-5 img/s on 2 shared CPU cores
KID_SUBSET = 3  # < N, so the subset draws themselves are compared
IS_SPLITS = 2


class Images(torch.utils.data.Dataset):
    """What torch-fidelity takes: a Dataset of uint8 3×H×W tensors."""

    def __init__(self, images: np.ndarray):
        self.images = torch.from_numpy(images)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = weights_file(tmp_path_factory, "torch-fidelity")
    # "generated": noise, as from an untrained G, 32 px; "real": structured scenes at another size.
    # Clearly different sets keep KID well away from 0, where torch-fidelity's float32 kernel sums lose
    # digits (see test_kid_subsets_match_torch_fidelity_exactly_in_float64).
    gen = np.random.default_rng(1).integers(0, 256, (N, 3, 32, 32), dtype=np.uint8)
    real = make_images(N, 48, seed=2)
    net = load_inception(path, "cpu")
    with torch.no_grad():
        ours = {name: [t.numpy() for t in net(torch.from_numpy(x))] for name, x in (("gen", gen), ("real", real))}
    return path, gen, real, ours


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_pool3_and_unbiased_logits_match_torch_fidelity(setup):
    path, _, real, ours = setup
    fe = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                     feature_extractor_weights_path=str(path))
    with torch.no_grad():
        pool3, logits = (t.numpy() for t in fe(torch.from_numpy(real[:2])))
    assert rel_err(ours["real"][0][:2], pool3) < 1e-5
    assert rel_err(ours["real"][1][:2], logits) < 1e-5
    assert np.abs(pool3).max() > 0.1 and np.ptp(logits) > 1  # not a trivially tiny comparison


def test_fid_kid_is_match_torch_fidelity_calculate_metrics(setup):
    path, gen, real, ours = setup
    theirs = tfid.calculate_metrics(
        input1=Images(gen), input2=Images(real), cuda=False, fid=True, kid=True, isc=True, verbose=False,
        cache=False, save_cpu_ram=True, batch_size=N, feature_extractor_weights_path=str(path),
        kid_subset_size=KID_SUBSET, isc_splits=IS_SPLITS)
    (g_pool, g_logits), (r_pool, _) = ours["gen"], ours["real"]
    fid = frechet_distance(*statistics(g_pool), *statistics(r_pool))
    kid_mean, kid_std = kernel_inception_distance(g_pool, r_pool, subset_size=KID_SUBSET)
    is_mean, is_std = inception_score(g_logits, splits=IS_SPLITS)
    assert fid == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    assert kid_mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    assert kid_std == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-3)
    assert is_mean == pytest.approx(theirs["inception_score_mean"], rel=1e-4)
    assert is_std == pytest.approx(theirs["inception_score_std"], rel=1e-3, abs=1e-6)
    assert fid > 1e-3 and kid_mean > 1e-6 and kid_std > 0  # different image sets, distinct subsets


def test_kid_subsets_match_torch_fidelity_exactly_in_float64():
    """Same RandomState draws (generated first, then real, per subset), same estimator: with float64
    features torch-fidelity's KID equals ours to round-off, even for a KID near 0. (It computes in the
    features' dtype, float32 in calculate_metrics, which costs ~1e-4 relative when KID ≈ 0.)"""
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(3)
    a, b = rng.random((40, 2048)), rng.random((30, 2048))
    for x, y in ((a, b), (a, a[::-1].copy())):
        theirs = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=100,
                                        kid_subset_size=20, rng_seed=2020, verbose=False)
        mean, std = kernel_inception_distance(x, y, subset_size=20)
        assert mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-10, abs=1e-15)
        assert std == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-10)


def test_torch_fidelitys_tests_package_cannot_shadow_ours():
    assert not (REPO / "tests" / "__init__.py").exists()
    import conftest
    import metrics_helpers

    for module in (conftest, metrics_helpers):
        assert Path(module.__file__).parent == REPO / "tests"
    spec = importlib.util.find_spec("tests")  # torch-fidelity's, if anything
    assert spec is None or Path(spec.origin).parent != REPO / "tests"
