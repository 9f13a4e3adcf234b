"""Helpers for the attn-map tests (no tests here): one real tiny training run, variants built from it.

A variant keeps every key of the trained checkpoint (format, configs, optimizers ...) and swaps in
freshly initialised networks of another model config, optionally edited by the test.
"""

from __future__ import annotations

from pathlib import Path

import torch

from conftest import TINY
from sagan_cli.models.config import ModelConfig
from sagan_cli.models.dcgan import Discriminator, Generator

_CACHE: dict = {}



def train_tiny(root: Path) -> Path:
    """`sagan train` for 3 steps (EMA from step 1, so G and G_ema differ); returns the checkpoint path."""
    from conftest import make_images

    from sagan_cli.cli import main
    from sagan_cli.data.dataset import save_dataset

    data = root / "data" / "tiny-32"
    save_dataset(data, make_images(64, 32), source="test", category=None, split=None)
    args = ["train", *TINY, "--data", str(data), "--steps", "3", "--batch", "8", "--ema-start", "1",
            "--runs", str(root / "runs")]
    try:
        main(args)
    except SystemExit as exc:
        assert not exc.code, f"training the test checkpoint failed with exit {exc.code}"
    return root / "runs/00000-tiny-32/checkpoints/step-0000003.pt"


def trained_checkpoint(tmp_path_factory) -> Path:
    """The tiny trained checkpoint, made once per test session (paper form, G at 8,16, D at 8,4)."""
    if "trained" not in _CACHE:
        _CACHE["trained"] = train_tiny(tmp_path_factory.mktemp("attnmap-trained"))
    return _CACHE["trained"]


def build_variant(trained: Path, out: Path, edit=None, seed: int = 0, **model) -> Path:
    """A checkpoint like ``trained`` but with fresh G/D for ModelConfig(imsize=32, z_dim=32, **model).

    ``edit(G, D)`` may change the networks; G_ema is a copy of G unless ``edit`` returns another G.
    """
    state = torch.load(trained, map_location="cpu", weights_only=True)
    opts = dict(imsize=32, z_dim=32, g_conv_dim=16, d_conv_dim=16)
    opts.update(model)
    cfg = ModelConfig(**opts)
    torch.manual_seed(seed)
    G, D = Generator(cfg).eval(), Discriminator(cfg).eval()
    G_ema = edit(G, D) if edit is not None else None
    state["model_config"] = cfg.to_dict()
    state["G"], state["D"] = G.state_dict(), D.state_dict()
    state["G_ema"] = (G_ema or G).state_dict()
    torch.save(state, out)
    return out


def reference_weights(ckpt: Path, seed: int, ema: bool = True, standing: bool = True) -> tuple[ModelConfig, dict]:
    """The attention matrices of the explicit path, computed here without sagan_cli.inspect.attention
    (``standing``: G's BatchNorm statistics re-estimated first, as attn-map does by default)."""
    from sagan_cli.inspect.sample import latent
    from sagan_cli.models.standing import apply_standing_stats, training_batch

    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    cfg = ModelConfig.from_dict(state["model_config"])
    G, D = Generator(cfg), Discriminator(cfg)
    G.load_state_dict(state["G_ema"] if ema else state["G"])
    D.load_state_dict(state["D"])
    G.eval(), D.eval()
    if standing:
        apply_standing_stats(G, cfg.z_dim, training_batch(state))
    weights: dict = {}
    with torch.no_grad():
        image = G(latent(seed, cfg.z_dim)[None], attn_weights=weights)
        D(image, attn_weights=weights)
    return cfg, weights


def set_sn_weight(conv, weight: torch.Tensor) -> None:
    """Give a spectrally normalised layer the effective weight weight/σ(weight), exactly.

    The stored power-iteration vectors are replaced by the true top singular vectors, so the
    layer in eval mode divides by the true largest singular value.
    """
    param = conv.parametrizations.weight
    sn = param[0]
    with torch.no_grad():
        param.original.copy_(weight)
        u, _, vh = torch.linalg.svd(sn._reshape_weight_to_matrix(weight))
        sn._u.copy_(u[:, 0])
        sn._v.copy_(vh[0])
