"""``sagan train --preset NAME``: a named set of option values that stands in for every option not given on
the command line (docs/train.md#presets). The run's config.json records the resolved values and the
preset's name (``train.preset``), so `train --config` replays the run itself, not the preset.

``imagenet128``: the paper's ImageNet 128×128 model as the authors ran it (brain-research/self-attention-gan:
model.py, generator.py, discriminator.py, non_local.py; Zhang et al. 2018, section 5): the ResNet SAGAN,
the official attention block where their code puts it (G and D on the imsize/4 map, 32×32 at 128 px: the
resnet default placement, models/config.py, so it follows an --imsize given with the preset), hinge loss, TTUR lr_G 1e-4 / lr_D 4e-4 and
batch 256 (the paper's section 5), Adam betas (0, 0.999) (their ``beta1=0.0`` flag, TensorFlow's default
beta2), xavier init (their ops' ``xavier_initializer``), z 128, widths 64 (``gf_dim``/``df_dim``), plus the
EMA generator that BigGAN and the later ports evaluate.
"""

from __future__ import annotations

from sagan_cli.util.errors import SaganError

PRESETS: dict[str, dict] = {
    "imagenet128": {
        "arch": "resnet", "imsize": 128, "batch": 256, "lr_g": 1e-4, "lr_d": 4e-4, "beta1": 0.0, "beta2": 0.999,
        "attention": "official", "init": "xavier", "ema": True,
        "loss": "hinge", "n_dis": 1, "z_dim": 128, "g_conv_dim": 64, "d_conv_dim": 64,
    },
}


def values(name: str) -> dict:
    """The option values of preset ``name`` (by option field name); an unknown name is one line."""
    if name not in PRESETS:
        raise SaganError(f"--preset {name!r}: no such preset (known: {', '.join(PRESETS)})")
    return dict(PRESETS[name])
