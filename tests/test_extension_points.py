"""The four extension points, each exercised with a toy entry through the real CLI, in this process.

A toy architecture (``sagan_cli.models.ARCHITECTURES``), a toy loss (``sagan_cli.train.losses.LOSSES``)
and a toy data source (``sagan_cli.data.prepare.source.READERS`` plus a `prepare` command) are
registered for one test and removed after it; the toy metric's test is with the metrics table's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from torch import nn

from conftest import TINY, assert_one_line_error
from sagan_cli.data.dataset import open_dataset

# ---------------------------------------------------------------- a toy architecture


class ToyG(nn.Module):
    """z → one linear layer → S×S RGB; no attention (an empty ``attn``), as the contract allows."""

    def __init__(self, cfg):
        super().__init__()
        self.size = cfg.imsize
        self.fc = nn.Linear(cfg.z_dim, 3 * cfg.imsize * cfg.imsize)
        self.attn = nn.ModuleDict()

    def forward(self, z, attn_weights=None):
        return torch.tanh(self.fc(z)).view(z.shape[0], 3, self.size, self.size)


class ToyD(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.fc = nn.Linear(3 * cfg.imsize * cfg.imsize, 1)
        self.attn = nn.ModuleDict()

    def forward(self, x, attn_weights=None):
        return self.fc(x.flatten(1)).view(x.shape[0])


built: list = []


def build_toy(cfg):
    built.append(cfg.arch)
    return ToyG(cfg), ToyD(cfg)


@pytest.fixture
def toy_arch(monkeypatch):
    from sagan_cli import models

    monkeypatch.setitem(models.ARCHITECTURES, "toy", build_toy)
    built.clear()
    return "toy"


NO_ATTN = ["--g-attn", "none", "--d-attn", "none"]


def test_a_registered_architecture_trains_samples_and_resumes_through_the_cli(cli, toy_arch, tiny_dataset, tmp_path):
    r = cli("train", *TINY, "--arch", "toy", *NO_ATTN, "--data", tiny_dataset, "--steps", "3", "--batch", "8",
            "--ema-start", "1")
    assert r.code == 0, r.stderr
    run = tmp_path / "runs" / "00000-tiny-32"
    assert json.loads((run / "config.json").read_text())["model"]["arch"] == "toy"
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["model_config"]["arch"] == "toy" and "fc.weight" in ckpt["G"]
    r = cli("sample", run, "--seeds", "0-3", "--out", "toy.png", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert (tmp_path / "toy.png").exists()
    r = cli("train", "--resume", "latest", "--steps", "4", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert built.count("toy") >= 3  # train, sample, resume each built it through models.build


def test_an_unknown_architecture_is_one_line_naming_the_known_ones(cli, tiny_dataset):
    r = cli("train", *TINY, "--arch", "nope", "--data", tiny_dataset, "--steps", "1", "--batch", "8")
    assert_one_line_error(r, "--arch 'nope' is not one of: dcgan")


# ---------------------------------------------------------------- a toy loss


calls = {"d": 0, "g": 0}


def _toy_d(real, fake):  # least squares (Mao et al. 2017), as a second entry would be
    calls["d"] += 1
    return ((real - 1) ** 2).mean() + (fake ** 2).mean()


def _toy_g(fake):
    calls["g"] += 1
    return ((fake - 1) ** 2).mean()


def test_a_registered_loss_is_what_the_trainer_minimises_and_the_run_records(cli, monkeypatch, tiny_dataset, tmp_path):
    from sagan_cli.train import losses

    monkeypatch.setitem(losses.LOSSES, "toy-ls", losses.Loss(_toy_d, _toy_g, "least squares"))
    calls.update(d=0, g=0)
    r = cli("train", *TINY, "--loss", "toy-ls", "--data", tiny_dataset, "--steps", "3", "--batch", "8",
            "--log-every", "1")
    assert r.code == 0, r.stderr
    assert calls == {"d": 3, "g": 3}
    run = tmp_path / "runs" / "00000-tiny-32"
    assert json.loads((run / "config.json").read_text())["train"]["loss"] == "toy-ls"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(rec["d_loss"] >= 0 for rec in records)  # a sum of squares: hinge's d_loss can be anything >= 0 too,
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert ckpt["train_config"]["loss"] == "toy-ls"
    # a resumed run keeps its loss: naming another is refused
    r = cli("train", "--resume", "latest", "--steps", "4", "--loss", "hinge", "--device", "cpu")
    assert_one_line_error(r, "--loss hinge differs from the resumed run's toy-ls")


def test_an_unknown_loss_is_one_line_naming_the_known_ones(cli, tiny_dataset):
    r = cli("train", *TINY, "--loss", "nope", "--data", tiny_dataset, "--steps", "1", "--batch", "8")
    assert_one_line_error(r, "--loss 'nope' is not one of: hinge")


# ---------------------------------------------------------------- a toy data source


def fetch_stripes(width: int, indices: list[int], size: int):
    """Reader: vertical stripes of ``width`` px whose colour depends on the index; index 3 is 'missing'."""
    for i in indices:
        if i == 3:
            yield str(i), None
            continue
        img = np.zeros((3, size, size), np.uint8)
        img[i % 3, :, (np.arange(size) // width) % 2 == 0] = 200
        yield str(i), img


class StripesSource:
    kind = "stripes"
    chunk_size = 4

    def __init__(self, count: int, width: int):
        self.count = count
        self.reader = ("stripes", width)
        self.label = f"{count} stripes"
        self.identity = {"source": "stripes", "count": count, "width": width}
        self.info = {"source": "stripes", "category": None, "split": None}

    def __len__(self):
        return self.count

    def position(self, item):
        return None

    def items(self, start, position=None):
        return iter(range(start, self.count))


@pytest.fixture
def toy_source(monkeypatch):
    from sagan_cli.cli import prepare
    from sagan_cli.data.prepare import source

    monkeypatch.setitem(source.READERS, "stripes", fetch_stripes)

    def stripes(count: int = typer.Option(10, "--count"), width: int = typer.Option(2, "--width"),
                imsize: int = prepare.IMSIZE, out: Path | None = prepare.OUT, force: bool = prepare.FORCE):
        """Toy stripes."""
        request = {"source": "stripes", "count": count, "width": width, "imsize": imsize}
        prepare.run(out or Path("data") / f"stripes-{imsize}", request, lambda: StripesSource(count, width),
                    imsize, None, None, None, 1, force, False)

    before = list(prepare.app.registered_commands)
    prepare.app.command("stripes")(stripes)
    yield
    prepare.app.registered_commands[:] = before


def test_a_registered_source_is_prepared_through_the_cli(cli, toy_source, tmp_path):
    r = cli("prepare", "stripes", "--count", "10", "--width", "4", "--imsize", "32", "--out", "data/st")
    assert r.code == 0, r.stderr
    assert "prepared 9 images of 32px" in r.stdout and "1 undecodable entry skipped" in r.stdout
    ds = open_dataset(tmp_path / "data" / "st", 32)
    assert len(ds) == 9
    assert ds.images[0, 0, 0, :8].tolist() == [200] * 4 + [0] * 4  # index 0: red channel striped
    meta = json.loads((tmp_path / "data" / "st" / "meta.json").read_text())
    assert meta["source"] == "stripes" and meta["skipped"] == [{"key": "3", "reason": "missing value"}]
    r = cli("prepare", "stripes", "--count", "10", "--width", "4", "--imsize", "32", "--out", "data/st")
    assert r.code == 0 and "already prepared" in r.stdout
