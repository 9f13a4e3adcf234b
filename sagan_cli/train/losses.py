"""The adversarial losses, one table entry each: the name ``sagan train --loss`` takes → two functions.

An entry maps D's logits to the two objectives the trainer minimises: ``d(real_logits, fake_logits)``
for the D step and ``g(fake_logits)`` for the G step (fake logits from D with its weights frozen).
Logits arrive as float32 B-vectors. Adding a loss is one entry here plus its test; ``TrainConfig.loss``
names it, checkpoints and config.json record it, and a resumed run keeps it.

No torch import at module level: the command line lists the names without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Loss:
    d: Callable  # (real_logits, fake_logits) -> scalar tensor
    g: Callable  # (fake_logits) -> scalar tensor
    about: str


def _hinge_d(real, fake):
    import torch.nn.functional as F

    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _hinge_g(fake):
    return -fake.mean()


LOSSES: dict[str, Loss] = {
    # The paper's eq. 4 (Lim & Ye 2017; Tran et al. 2017), as the authors' code and the port use it.
    "hinge": Loss(_hinge_d, _hinge_g, "hinge: D min E[relu(1-D(x))] + E[relu(1+D(G(z)))], G min -E[D(G(z))]"),
}
