"""`sagan attn-map --html`: the page holds every query cell's attention row of every layer, quantised to uint8
from the same forward pass as --save-maps, its exact argmax, and nothing that reaches the network."""

from __future__ import annotations

import base64
import json
import re
import zlib

import numpy as np
import pytest

from attnmap_helpers import build_variant, reference_weights, trained_checkpoint
from conftest import assert_one_line_error
from sagan_cli.inspect import page


@pytest.fixture
def trained(tmp_path_factory):
    return trained_checkpoint(tmp_path_factory)


def page_json(path) -> dict:
    text = path.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="sagan-data">(.*?)</script>', text, re.S).group(1)
    return json.loads(block)


def unpack(layer: dict, seed_index: int):
    """(q: N×M uint8, peak: N float32, top: N uint16) of one layer and seed, as the page's script reads them."""
    n, m = layer["res"] ** 2, layer["keys"][0] * layer["keys"][1]
    raw = zlib.decompress(base64.b64decode(layer["maps"][seed_index]))
    assert len(raw) == n * m + 6 * n
    q = np.frombuffer(raw, np.uint8, n * m).reshape(n, m)
    return q, np.frombuffer(raw, "<f4", n, n * m), np.frombuffer(raw, "<u2", n, n * m + 4 * n)


def load_npz(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def liven(G, D):  # non-zero γ: each attention layer changes what the next one sees
    for i, m in enumerate(list(G.attn.values()) + list(D.attn.values())):
        m.gamma.data.fill_(0.5 + 0.25 * i)


@pytest.mark.parametrize("form", ["paper", "official"])
def test_the_page_holds_every_query_row_quantised_with_its_exact_argmax(cli, trained, tmp_path, form):
    ckpt = trained if form == "paper" else build_variant(trained, tmp_path / "official.pt", edit=liven, attention=form)
    k = 1 if form == "paper" else 2  # the official form pools the keys 2×2
    r = cli("attn-map", ckpt, "--html", "page.html", "--seeds", "2,7", "-q", "12,30", "-q", "0,0",
            "--save-maps", "m.npz", "--no-standing-stats", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert "attention page of 4 layer(s) × 2 seeds, every pixel" in r.stdout and "page.html" in r.stdout
    assert not (tmp_path / "attn-map.png").exists()  # with --html the figure only when --out asks for it
    data, maps = page_json(tmp_path / "page.html"), load_npz(tmp_path / "m.npz")
    assert data["format"] == "sagan-attention-page" and data["seeds"] == [2, 7] and data["imsize"] == 32
    assert data["query"] == [12, 30] and data["step"] == 3 and data["ema"] is True and data["form"] == form
    assert [(L["name"], L["net"], L["res"], L["keys"]) for L in data["layers"]] == \
        [("g8", "G", 8, [8 // k] * 2), ("g16", "G", 16, [16 // k] * 2), ("d8", "D", 8, [8 // k] * 2),
         ("d4", "D", 4, [4 // k] * 2)]
    np.testing.assert_allclose([L["gamma"] for L in data["layers"]], maps["gammas"], rtol=1e-6)
    for s, seed in enumerate(data["seeds"]):
        _, full = reference_weights(ckpt, seed, standing=False)  # whole matrices, without sagan_cli.inspect
        for li, L in enumerate(data["layers"]):
            q, peak, top = unpack(L, s)
            w = full[L["name"]][0].numpy()
            np.testing.assert_allclose(peak, w.max(axis=1), rtol=1e-5)
            assert np.abs(q.astype(int) - np.rint(255 * w / w.max(axis=1, keepdims=True))).max() <= 1
            assert (q.max(axis=1) == 255).all()
            for qi, (row, col) in enumerate(maps["queries"]):
                cell = tuple(maps["cells"][li, qi])
                row_map = maps[f"map_{L['name']}_q{qi}"][s].ravel()  # the same forward pass: exact
                at = cell[0] * L["res"] + cell[1]
                assert top[at] == row_map.argmax()
                assert np.array_equal(q[at], np.rint(row_map / row_map.max() * 255).astype(np.uint8))


def test_the_page_is_self_contained(cli, trained, tmp_path):
    assert cli("attn-map", trained, "--html", "p.html", "--no-standing-stats", "--device", "cpu").code == 0
    text = (tmp_path / "p.html").read_text(encoding="utf-8")
    refs = re.findall(r'\b(?:src|href)\s*=\s*["\']([^"\']*)', text)
    assert all(ref.startswith(("data:", "#")) for ref in refs), refs
    assert not re.search(r"<link\b|@import|\bfetch\(|XMLHttpRequest|WebSocket|https?://", text)
    data = page_json(tmp_path / "p.html")
    assert data["query"] is None and data["seeds"] == [0]  # no --query: the page starts at the centre
    assert all(uri.startswith("data:image/png;base64,") for uri in data["images"])


def test_the_size_of_a_64px_default_models_page_is_known_before_any_work():
    # g16: 256 query cells × 256 keys, g32: 1024 × 1024, d8: 64 × 64, d4: 16 × 16; per seed, uint8
    assert page.check_size(["g16", "g32", "d8", "d4"], "paper", 4) == 4 * (256**2 + 1024**2 + 64**2 + 16**2)
    assert page.matrix_bytes(32, "official") == 1024 * 256  # keys pooled 2×2


def test_a_page_too_big_for_a_browser_is_refused_first(cli, trained, tmp_path, monkeypatch):
    monkeypatch.setattr(page, "MAX_MAP_BYTES", 100_000)
    r = cli("attn-map", trained, "--html", "p.html", "--seeds", "0-1", "--device", "cpu")
    assert_one_line_error(r, "--html: the page would hold 0.1 MiB of attention weights (layer g16: 256 query cells "
                             "× 256 keys per seed, 2 seed(s))", "give fewer --seeds or leave big layers out with --layers")
    assert not (tmp_path / "p.html").exists()
    r = cli("attn-map", trained, "--html", "p.html", "--seeds", "0-1", "--layers", "g8,d8,d4", "-q", "3,3",
            "--out", "fig.png", "--no-standing-stats", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert (tmp_path / "fig.png").exists() and [L["name"] for L in page_json(tmp_path / "p.html")["layers"]] == \
        ["g8", "d8", "d4"]  # with --out, the figure too
