"""`sagan evaluate --fid-sqrtm`: FID's trace term by scipy.linalg.sqrtm, as pytorch-fid computes it.

The maths on toy statistics (agreement with the default eigenvalue path, the singular-product retry, the
refused imaginary component), then the option through the CLI: recorded in the protocol, the same FID,
and a one-line error when FID is not computed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch

from conftest import assert_one_line_error
from metrics_helpers import home, weights_file  # noqa: F401
from sagan_cli.metrics import fid, report
from sagan_cli.metrics.fid import ImaginaryComponent, frechet_distance, frechet_distance_sqrtm, statistics

torch.set_num_threads(min(2, torch.get_num_threads()))


def toy_statistics(n: int, d: int, seed: int, shift: float):
    """Mean and covariance of n correlated samples in d dims (singular when n <= d)."""
    rng = np.random.default_rng(seed)
    return statistics(rng.standard_normal((n, d)) @ (rng.standard_normal((d, d)) / np.sqrt(d)) + shift)


@pytest.mark.parametrize("n,d", [(24, 64), (200, 256), (3000, 64), (3000, 256)])
def test_sqrtm_and_eigenvalue_paths_agree(n, d, capsys):
    """Singular (n <= d) and well-conditioned covariances; sqrtm's warnings reach ``warn``, never the terminal."""
    mu1, s1 = toy_statistics(n, d, seed=n + d, shift=0.0)
    mu2, s2 = toy_statistics(n, d, seed=n + d + 1, shift=0.2)
    notes: list[str] = []
    value = frechet_distance_sqrtm(mu1, s1, mu2, s2, warn=notes.append)
    assert value == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=1e-6)
    assert value == pytest.approx(frechet_distance_sqrtm(mu2, s2, mu1, s1), rel=1e-6)
    assert all(note.startswith("scipy.linalg.sqrtm: ") and "\n" not in note for note in notes)
    assert capsys.readouterr() == ("", "")


def test_a_singular_product_is_retried_with_eps_on_both_diagonals():
    """sqrtm of a product without a square root is not finite: ε = 1e-6 goes on both diagonals, as in pytorch-fid."""
    s1, s2 = np.eye(2), np.array([[0.0, 1.0], [0.0, 0.0]])
    with pytest.warns(scipy.linalg.LinAlgWarning):
        assert not np.isfinite(scipy.linalg.sqrtm(s1 @ s2)).all()
    mu1, mu2 = np.zeros(2), np.array([1.0, 2.0])
    notes: list[str] = []
    value = frechet_distance_sqrtm(mu1, s1, mu2, s2, warn=notes.append)
    offset = np.eye(2) * fid.SQRTM_EPS
    expected = 5.0 + 2.0 + 0.0 - 2 * np.trace(scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))).real
    assert np.isfinite(value) and value == pytest.approx(expected, rel=1e-12)
    assert any("singular" in note and "adding 1e-06 to the diagonal of both" in note for note in notes)


def test_an_imaginary_component_beyond_round_off_is_refused():
    s2 = np.diag([-1.0, 1.0, 1.0])  # not a covariance: sqrtm has i on its diagonal
    with pytest.raises(ImaginaryComponent, match="imaginary component of 1"):
        frechet_distance_sqrtm(np.zeros(3), np.eye(3), np.zeros(3), s2)
    # below the tolerance the real part is used
    s2 = np.diag([-1e-8, 1.0, 1.0])
    assert frechet_distance_sqrtm(np.zeros(3), np.eye(3), np.zeros(3), s2) == pytest.approx(3 + 2 - 4, abs=1e-3)


@pytest.mark.parametrize("metrics", [["--is"], ["--kid"], ["--pr", "--is"]])
def test_fid_sqrtm_without_fid_is_a_one_line_error(cli, home, metrics):
    r = cli("evaluate", *metrics, "--fid-sqrtm", "--device", "cpu")
    assert_one_line_error(r, "--fid-sqrtm applies to FID, which is not among the chosen metrics",
                          "add --fid or drop --fid-sqrtm")


def test_fid_sqrtm_alone_means_fid(cli, home, tmp_path):
    """No metric chosen means FID, so --fid-sqrtm alone is no conflict (the next check, for CKPT, fails instead)."""
    (tmp_path / "w.pth").write_bytes(b"")
    r = cli("evaluate", "--fid-sqrtm", "--device", "cpu", "--inception-weights", tmp_path / "w.pth")
    assert_one_line_error(r, "no checkpoint found")


@pytest.mark.slow  # one 2048-d sqrtm of a singular product, twice (the eps retry): 20-35 s on 2 cores
def test_fid_sqrtm_is_recorded_and_gives_the_same_fid(cli, home, tiny_dataset, tmp_path_factory):
    """One 2048-d sqrtm (seconds to a minute on 2 busy cores): 3 images of the dataset against 4 of them."""
    args = ["evaluate", "--samples", tiny_dataset, "--num", 3, "--data", tiny_dataset, "--num-real", 4,
            "--device", "cpu", "--inception-weights", weights_file(tmp_path_factory), "--json"]
    r = cli(*args)
    assert r.code == 0, r.stderr
    default = json.loads(r.stdout)
    assert "fid" not in default["protocol"]  # the default record is as it always was

    r = cli(*args, "--fid", "--kid", "--fid-sqrtm")
    assert r.code == 0, r.stderr
    assert all(line.startswith("warning: ") for line in r.stderr.splitlines() if "scipy" in line), r.stderr
    res = json.loads(r.stdout)
    assert res["metrics"] == ["fid", "kid"] and res["fid"] == pytest.approx(default["fid"], rel=1e-6)
    line = res["protocol"]["fid"]
    assert "scipy.linalg.sqrtm" in line and f"SciPy {scipy.__version__}" in line and "pytorch-fid" in line
    assert {k: v for k, v in res["protocol"].items() if k != "fid"} == default["protocol"]
    # the printed table states it, before KID's line
    lines = report.protocol_lines(res)
    assert lines.index(f"FID: {line}") == lines.index(f"KID: {res['protocol']['kid']}") - 1
