"""The attention page in a real browser: headless Chromium opens `sagan attn-map --html` output at `#q=ROW,COL`,
its script runs, and every layer panel's data-argmax is the argmax of the same layer and query in --save-maps.

Needs Chromium (Debian: `apt-get install chromium`; `.ci/run` installs it when missing). Where it is not
installed the test skips and says so."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from attnmap_helpers import build_variant, trained_checkpoint

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome") if shutil.which(n)),
               None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium on PATH: install it (Debian: apt-get install "
                                                        "chromium; .ci/run does) to run the browser test")


def chromium(tmp_path, url: str, *args: str) -> str:
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
           "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--window-size=1280,800", *args, url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def panels(dom: str) -> dict[str, dict[str, str]]:
    found = {}
    for tag in re.findall(r"<figure\b[^>]*>", dom):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        if "data-layer" in attrs:
            found[attrs["data-layer"]] = attrs
    return found


@pytest.fixture
def ckpt(tmp_path_factory, tmp_path):
    def liven(G, D):  # non-zero γ: each layer's attention changes what the next one sees
        for i, m in enumerate(list(G.attn.values()) + list(D.attn.values())):
            m.gamma.data.fill_(0.5 + 0.25 * i)

    return build_variant(trained_checkpoint(tmp_path_factory), tmp_path / "live.pt", edit=liven, seed=5)


def test_every_panel_points_where_the_saved_maps_peak(cli, ckpt, tmp_path):
    queries = [(12, 30), (5, 3)]
    r = cli("attn-map", ckpt, "--html", "page.html", "--seeds", "4,9", "-q", "12,30", "-q", "5,3",
            "--save-maps", "m.npz", "--no-standing-stats", "--device", "cpu")
    assert r.code == 0, r.stderr
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        maps = {k: f[k] for k in f.files}
    layers = list(maps["layers"])
    url = (tmp_path / "page.html").as_uri()
    for qi, fragment, s in ((0, "#q=12,30", 0), (1, "#q=5,3&seed=9", 1)):
        dom = chromium(tmp_path, url + fragment, "--dump-dom")
        assert 'data-ready="true"' in dom, dom[-3000:]
        assert f'data-query="{queries[qi][0]},{queries[qi][1]}"' in dom and f'data-seed="{maps["seeds"][s]}"' in dom
        shown = panels(dom)
        assert sorted(shown) == sorted(layers)
        for li, layer in enumerate(layers):
            amap = maps[f"map_{layer}_q{qi}"][s]
            expected = np.unravel_index(amap.argmax(), amap.shape)
            assert shown[layer]["data-argmax"] == f"{expected[0]},{expected[1]}", (layer, fragment)
            assert shown[layer]["data-cell"] == ",".join(map(str, maps["cells"][li, qi]))
    chromium(tmp_path, url + "#q=12,30", f"--screenshot={tmp_path / 'shot.png'}")
    with Image.open(tmp_path / "shot.png") as shot:
        pixels = np.asarray(shot.convert("RGB"))
    assert pixels.shape[:2] == (800, 1280)
    grey = pixels.mean(axis=2)
    assert grey.std() > 20, "the screenshot is blank"
    heat = pixels[60:400, 300:].reshape(-1, 3)  # the panels: many colours of the heat ramp over the image
    assert len(np.unique(heat, axis=0)) > 200
