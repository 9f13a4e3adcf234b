"""The adversarial losses, one table entry each: the name ``sagan train --loss`` takes → its functions.

An entry maps D's logits to the two objectives the trainer minimises: ``d(real_logits, fake_logits)``
for the D step and ``g(fake_logits)`` for the G step (fake logits from D with its weights frozen).
Logits arrive as float32 B-vectors. An entry may also name a ``penalty``: a term on D itself, added to
the D objective with the weight ``TrainConfig.gp_weight`` (``--gp-weight``). It is called as
``penalty(critic, real, fake, eps)``: ``critic`` maps images to logits (the trainer's D, and for a
class-conditional model D with the batch's labels bound, so the loss never handles labels), ``real``
and ``fake`` are float32 image batches, ``eps`` the B×1×1×1 uniform draws it may use (the trainer draws
them from the global batch's stream, so every process count computes the same).

Adding a loss is one entry here plus its test; ``TrainConfig.loss`` names it, checkpoints and
config.json record it, and a resumed run keeps it.

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
    penalty: Callable | None = None  # (critic, real, fake, eps) -> scalar tensor, times --gp-weight, added to d


def _hinge_d(real, fake):
    import torch.nn.functional as F

    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def _hinge_g(fake):
    return -fake.mean()


def _wgan_d(real, fake):
    return fake.mean() - real.mean()


def _wgan_g(fake):
    return -fake.mean()


def gradient_penalty(critic, real, fake, eps):
    """WGAN-GP's term (Gulrajani et al. 2017): E[(‖∇ₓ D(x̂)‖₂ − 1)²] at x̂ = ε·x + (1 − ε)·G(z), ε ~ U[0, 1]."""
    import torch

    x = (eps * real + (1.0 - eps) * fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).float().sum(), x, create_graph=True)
    return ((torch.linalg.vector_norm(grad.flatten(1), dim=1) - 1.0) ** 2).mean()


def _ns_d(real, fake):
    import torch.nn.functional as F

    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _ns_g(fake):
    import torch.nn.functional as F

    return F.softplus(-fake).mean()


LOSSES: dict[str, Loss] = {
    # The paper's eq. 4 (Lim & Ye 2017; Tran et al. 2017), as the authors' code and the port use it.
    "hinge": Loss(_hinge_d, _hinge_g, "hinge: D min E[relu(1-D(x))] + E[relu(1+D(G(z)))], G min -E[D(G(z))]"),
    # The port's other choice (`--adv_loss wgan-gp`, λ = 10): D is a critic, its gradient norm pulled to 1.
    "wgan-gp": Loss(_wgan_d, _wgan_g, "WGAN-GP: D min E[D(G(z))] - E[D(x)] + gp_weight * E[(|grad D(x_hat)| - 1)^2], "
                                      "G min -E[D(G(z))]", penalty=gradient_penalty),
    # Goodfellow et al. 2014's non-saturating loss, in logits: log(1 + e^-t) is softplus(-t).
    "ns": Loss(_ns_d, _ns_g, "non-saturating: D min E[softplus(-D(x))] + E[softplus(D(G(z)))], G min E[softplus(-D(G(z)))]"),
}
