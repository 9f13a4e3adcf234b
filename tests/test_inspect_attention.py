"""`sagan attn-map`: the saved maps are the attention rows of the explicit path at the mapped cells."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_sagan
from PIL import Image
from attnmap_helpers import build_variant, reference_weights, trained_checkpoint

from sagan_cli.inspect.attention import parse_query
from sagan_cli.util.errors import SaganError


@pytest.fixture
def trained(tmp_path_factory):
    return trained_checkpoint(tmp_path_factory)


def load_npz(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_saved_maps_are_distributions_over_each_layers_key_grid(cli, trained, tmp_path):
    r = cli("attn-map", trained, "--query", "12,30", "--query", "31,0", "--seeds", "0-2", "--device", "cpu",
            "--out", "fig.png", "--save-maps", "maps.npz")
    assert r.code == 0, r.stderr
    assert "4 layer(s)" in r.stdout and "maps.npz" in r.stdout and (tmp_path / "fig.png").exists()
    m = load_npz(tmp_path / "maps.npz")
    assert list(m["layers"]) == ["g8", "g16", "d8", "d4"]  # all = G layers, then D layers
    assert m["resolutions"].tolist() == [8, 16, 8, 4]
    assert m["key_grids"].tolist() == [[8, 8], [16, 16], [8, 8], [4, 4]]
    assert m["queries"].tolist() == [[12, 30], [31, 0]]
    assert m["seeds"].tolist() == [0, 1, 2]
    assert int(m["imsize"]) == 32 and str(m["attention_form"]) == "paper"
    # Pixel (ROW, COL) of a 32-px image lies in cell (ROW·r/32, COL·r/32) of an r×r layer.
    assert m["cells"].tolist() == [[[3, 7], [7, 0]], [[6, 15], [15, 0]], [[3, 7], [7, 0]], [[1, 3], [3, 0]]]
    assert m["images"].dtype == np.uint8 and m["images"].shape == (3, 32, 32, 3)
    for i, layer in enumerate(m["layers"]):
        for q in range(2):
            a = m[f"map_{layer}_q{q}"]
            assert a.dtype == np.float32 and a.shape == (3, *m["key_grids"][i])
            assert (a >= 0).all()
            np.testing.assert_allclose(a.sum(axis=(1, 2)), 1.0, atol=1e-5)


@pytest.mark.parametrize("form", ["paper", "official"])
def test_map_is_the_explicit_attention_row_at_the_query_cell(cli, trained, tmp_path, form):
    def liven(G, D):  # non-zero γ, so each attention layer changes what the next one sees
        for i, m in enumerate(list(G.attn.values()) + list(D.attn.values())):
            m.gamma.data.fill_(0.5 + 0.25 * i)

    ckpt = build_variant(trained, tmp_path / f"{form}.pt", edit=liven, attention=form, seed=3)
    queries = [(5, 27), (30, 2), (17, 17)]
    args = [a for q in queries for a in ("--query", f"{q[0]},{q[1]}")]
    r = cli("attn-map", ckpt, *args, "--seeds", "4,9", "--save-maps", "m.npz", "--device", "cpu")
    assert r.code == 0, r.stderr
    m = load_npz(tmp_path / "m.npz")
    np.testing.assert_allclose(m["gammas"], [0.5, 0.75, 1.0, 1.25])  # g8, g16, d8, d4: each layer's own γ
    pooled = form == "official"
    for s, seed in enumerate([4, 9]):
        cfg, weights = reference_weights(ckpt, seed)
        assert sorted(weights) == sorted(m["layers"])
        for layer in m["layers"]:
            res = int(layer[1:])
            k = res // 2 if pooled else res  # the official form pools the keys 2×2: r²/4 of them
            assert weights[layer].shape == (1, res * res, k * k)
            for q, (row, col) in enumerate(queries):
                cell = (row * res // 32, col * res // 32)
                expected = weights[layer][0, cell[0] * res + cell[1]].reshape(k, k).numpy()
                np.testing.assert_allclose(m[f"map_{layer}_q{q}"][s], expected, rtol=1e-5, atol=1e-7)
    # A query's maps differ between cells (the row really depends on the query).
    assert not np.allclose(m["map_g16_q0"], m["map_g16_q1"])


def test_no_ema_reads_the_raw_generator(cli, trained, tmp_path):
    def perturb_ema(G, D):
        G_ema = type(G)(G.cfg).eval()
        G_ema.load_state_dict(G.state_dict())
        torch.manual_seed(1)
        for m in G_ema.attn.values():
            w = m.query.parametrizations.weight.original
            w.data.add_(torch.randn_like(w))
        return G_ema

    ckpt = build_variant(trained, tmp_path / "ema.pt", edit=perturb_ema)
    assert cli("attn-map", ckpt, "-q", "9,20", "--layers", "g", "--save-maps", "ema.npz", "--device", "cpu").code == 0
    assert cli("attn-map", ckpt, "-q", "9,20", "--layers", "g", "--no-ema", "--save-maps", "raw.npz", "--device", "cpu").code == 0
    ema, raw = load_npz(tmp_path / "ema.npz"), load_npz(tmp_path / "raw.npz")
    for which, maps in (("ema", ema), ("raw", raw)):
        _, weights = reference_weights(ckpt, 0, ema=which == "ema")
        np.testing.assert_allclose(maps["map_g16_q0"][0], weights["g16"][0, 4 * 16 + 10].reshape(16, 16), rtol=1e-5, atol=1e-7)
    assert not np.allclose(ema["map_g16_q0"], raw["map_g16_q0"])


def test_the_image_is_the_seeds_sample_and_seed_names_a_row(cli, trained, tmp_path):
    assert cli("sample", trained, "--seeds", "5,7", "--outdir", "samples").code == 0
    assert cli("attn-map", trained, "-q", "0,0", "--seeds", "7,5", "--save-maps", "a.npz", "--device", "cpu").code == 0
    assert cli("attn-map", trained, "-q", "0,0", "--seed", "5", "--save-maps", "b.npz", "--device", "cpu").code == 0
    a, b = load_npz(tmp_path / "a.npz"), load_npz(tmp_path / "b.npz")
    for i, seed in enumerate([7, 5]):
        sampled = np.asarray(Image.open(tmp_path / f"samples/seed{seed:06d}.png").convert("RGB")).astype(int)
        # attn-map draws with the explicit attention path, sample with the fused kernel: same maths,
        # so at most a rounding step apart after quantisation.
        assert np.abs(a["images"][i].astype(int) - sampled).max() <= 1
    np.testing.assert_array_equal(b["images"][0], a["images"][1])
    for layer in a["layers"]:
        np.testing.assert_allclose(b[f"map_{layer}_q0"][0], a[f"map_{layer}_q0"][1], rtol=1e-5, atol=1e-7)
    assert cli("attn-map", trained, "-q", "0,0", "--save-maps", "default.npz", "--device", "cpu").code == 0
    assert load_npz(tmp_path / "default.npz")["seeds"].tolist() == [0]


@pytest.mark.parametrize(
    "spec, expected",
    [("all", ["g8", "g16", "d8", "d4"]), ("g", ["g8", "g16"]), ("d", ["d8", "d4"]),
     ("d4,g16", ["d4", "g16"]), ("G16, g16 ,d8", ["g16", "d8"]), ("g,all", ["g8", "g16", "d8", "d4"])],
)
def test_layers_option_picks_the_layers_in_order(cli, trained, tmp_path, spec, expected):
    r = cli("attn-map", trained, "-q", "1,2", "--layers", spec, "--save-maps", "m.npz", "--device", "cpu")
    assert r.code == 0, r.stderr
    m = load_npz(tmp_path / "m.npz")
    assert list(m["layers"]) == expected
    assert sorted(k for k in m if k.startswith("map_")) == sorted(f"map_{n}_q0" for n in expected)
    assert f"{len(expected)} layer(s)" in r.stdout


@pytest.mark.parametrize("text, want", [("12,40", (12, 40)), (" 0 , 7 ", (0, 7)), ("031,1", (31, 1))])
def test_parse_query_reads_row_then_column(text, want):
    assert parse_query(text) == want


@pytest.mark.parametrize("bad", ["12", "12,", "a,b", "-1,3", "1,2,3", "1.5,2", "", "12;40"])
def test_malformed_query_is_a_one_line_error(cli, trained, bad):
    with pytest.raises(SaganError, match="ROW,COL"):
        parse_query(bad)
    assert_one_line_error(cli("attn-map", trained, "--query", bad, "--device", "cpu"), "--query", "ROW,COL")


@pytest.mark.parametrize("bad", ["32,0", "0,32", "100,100"])
def test_query_outside_the_image_is_a_one_line_error(cli, trained, tmp_path, bad):
    r = cli("attn-map", trained, "-q", "3,3", "--query", bad, "--device", "cpu")
    assert_one_line_error(r, bad, "outside the 32x32", "0..31")
    assert not (tmp_path / "attn-map.png").exists()


@pytest.mark.parametrize("spec, fragment", [("g64", "'g64'"), ("x", "'x'"), ("g16,d2", "'d2'"), (",", "give all")])
def test_unknown_layer_is_a_one_line_error_listing_the_layers(cli, trained, spec, fragment):
    r = cli("attn-map", trained, "-q", "1,1", "--layers", spec, "--device", "cpu")
    assert_one_line_error(r, "--layers", fragment, "g8, g16, d8, d4")


def test_network_without_attention_layers_is_a_one_line_error(cli, trained, tmp_path):
    only_d = build_variant(trained, tmp_path / "only-d.pt", g_attn=(), d_attn=(8,))
    assert_one_line_error(cli("attn-map", only_d, "-q", "1,1", "--layers", "g", "--device", "cpu"),
                          "generator has no attention", "available: d8")
    r = cli("attn-map", only_d, "-q", "1,1", "--save-maps", "m.npz", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert list(load_npz(tmp_path / "m.npz")["layers"]) == ["d8"]


def test_checkpoint_without_attention_is_a_one_line_error_in_a_real_process(trained, tmp_path):
    bare = build_variant(trained, tmp_path / "bare.pt", g_attn=(), d_attn=())
    r = run_sagan("attn-map", bare, "--query", "12,30", "--device", "cpu", cwd=tmp_path)
    assert_one_line_error(r, "no attention layers", "--g-attn none")
    assert not (tmp_path / "attn-map.png").exists()


def test_other_bad_input_is_a_one_line_error(cli, trained, tmp_path):
    assert_one_line_error(cli("attn-map", trained, "-q", "1,1", "--seed", "1", "--seeds", "0-3"), "conflict")
    assert_one_line_error(cli("attn-map", tmp_path / "missing.pt", "-q", "1,1"), "not found")
    no_ema = build_variant(trained, tmp_path / "no-ema.pt")
    state = torch.load(no_ema, weights_only=True)
    state["G_ema"] = None
    torch.save(state, no_ema)
    assert_one_line_error(cli("attn-map", no_ema, "-q", "1,1", "--device", "cpu"), "--no-ema")
    assert cli("attn-map", no_ema, "-q", "1,1", "--no-ema", "--device", "cpu").code == 0
