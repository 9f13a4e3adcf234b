"""Training configuration: a dataclass that round-trips through a plain dict (checkpoints, config.json).

Every field is also a `sagan train` option of the same name (``--lr-g`` is ``lr_g``); the command hands
its parsed options over by name (``sagan_cli.cli.train``), and the checks below are the only ones.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from sagan_cli.util.errors import SaganError


FAKE_LABELS = ("uniform", "data")  # --fake-labels (train/labels.py)


@dataclass
class TrainConfig:
    steps: int = 100_000
    batch: int = 64
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    ema: bool = True
    ema_decay: float = 0.999
    ema_start: int = 1000
    amp: bool = True  # bf16 autocast; only takes effect on CUDA
    compile: bool | None = None  # None → on for CUDA, off elsewhere
    seed: int = 0
    log_every: int = 100
    sample_every: int = 1000
    ckpt_every: int = 1000
    keep_ckpts: int = 5
    num_samples: int = 64  # images in each sample grid
    standing_stats: bool = True  # sample grids: G's BatchNorm statistics re-estimated first
    data: str = ""
    name: str = ""
    tensorboard: bool = False
    sync_bn: bool = True  # with several processes: G's BatchNorm statistics over the global batch
    loss: str = "hinge"  # a key of sagan_cli.train.losses.LOSSES
    gp_weight: float = 10.0  # weight of the loss's penalty term (wgan-gp's gradient penalty); losses without one ignore it
    n_dis: int = 1  # D steps per G step; a step is one G step (docs/train.md)
    lr_decay: float = 1.0  # both learning rates times this every lr_decay_every steps (1: constant); train/schedule.py
    lr_decay_every: int = 1000
    eval_every: int = 0  # evaluate every N steps (0: never); train/evaluation.py
    eval_metrics: str = "swd"  # comma-separated names of sagan_cli.metrics.table.METRICS; the first decides best.pt
    eval_num: int = 2048  # generated images per evaluation (real ones: as many, a fixed subset)
    unconditional: bool = False  # a labelled dataset's labels ignored: an unconditional model (train/session.py)
    fake_labels: str = "uniform"  # the fakes' class labels: uniform | data (its class frequencies); train/labels.py
    init_from: str = ""  # a checkpoint whose G, D and G_ema weights a new run starts from (train/finetune.py)
    keep_optim: bool = False  # --init-from: keep the parent's Adam moments too
    preset: str = ""  # --preset: the named option set this run started from (train/presets.py); "" for none
    mirror: bool = False  # real images flipped left-right with probability 1/2 before D (train/augment.py)
    diffaug: str = ""  # DiffAugment policies, comma-separated (train/augment.py POLICIES); "" for none

    def __post_init__(self):
        checks = [
            ("steps", self.steps >= 1, ">= 1"),
            ("batch", self.batch >= 1, ">= 1"),
            ("lr-g", self.lr_g > 0, "> 0"),
            ("lr-d", self.lr_d > 0, "> 0"),
            ("lr-g", math.isfinite(self.lr_g), "finite"),  # inf passes '> 0' and would only 'diverge' later
            ("lr-d", math.isfinite(self.lr_d), "finite"),
            ("beta1", 0 <= self.beta1 < 1, "in [0, 1)"),
            ("beta2", 0 <= self.beta2 < 1, "in [0, 1)"),
            ("ema-decay", 0 < self.ema_decay < 1, "in (0, 1)"),
            ("ema-start", self.ema_start >= 0, ">= 0"),
            ("log-every", self.log_every >= 1, ">= 1"),
            ("sample-every", self.sample_every >= 1, ">= 1"),
            ("ckpt-every", self.ckpt_every >= 1, ">= 1"),
            ("keep-ckpts", self.keep_ckpts >= 1, ">= 1"),
            ("num-samples", self.num_samples >= 1, ">= 1"),
            ("eval-every", self.eval_every >= 0, ">= 0 (0: no evaluation during training)"),
            ("eval-num", self.eval_num >= 2, ">= 2"),
            ("gp-weight", self.gp_weight >= 0 and math.isfinite(self.gp_weight), "finite and >= 0"),
            ("n-dis", self.n_dis >= 1, ">= 1"),
            ("lr-decay", 0 < self.lr_decay <= 1, "in (0, 1] (1: no decay)"),
            ("lr-decay-every", self.lr_decay_every >= 1, ">= 1"),
        ]
        from sagan_cli.train.augment import parse as parse_diffaug
        from sagan_cli.train.losses import LOSSES

        if self.loss not in LOSSES:
            raise SaganError(f"--loss {self.loss!r} is not one of: {', '.join(LOSSES)}")
        parse_diffaug(self.diffaug)  # an unknown policy: one line naming it and the valid ones
        if self.fake_labels not in FAKE_LABELS:
            raise SaganError(f"--fake-labels must be {' or '.join(FAKE_LABELS)}, got {self.fake_labels!r}")
        for name, ok, want in checks:
            if not ok:
                raise SaganError(f"--{name} must be {want}, got {getattr(self, name.replace('-', '_'))}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {RENAMED.get(k, k): v for k, v in d.items()}
        return cls(**{k: v for k, v in d.items() if k in known})


RENAMED = {"n_samples": "num_samples"}  # fields of older checkpoints and config.json files, by their new name
