"""The one way from a checkpoint dict to networks ready for inference: G (EMA or raw) and D.

``sample``, ``attn-map`` and ``evaluate`` all come through here, so an architecture added to
``sagan_cli.models.ARCHITECTURES`` is sampled, mapped and scored with no change to them; a checkpoint
written before ``ModelConfig.arch`` existed loads as ``dcgan``.
"""

from __future__ import annotations

from sagan_cli.util.errors import SaganError


def model_config(state: dict):
    """The checkpoint's ModelConfig; a missing or unusable one is a one-line error."""
    from sagan_cli.models.config import ModelConfig

    try:
        return ModelConfig.from_dict(state["model_config"])
    except (KeyError, TypeError) as exc:
        raise SaganError(f"checkpoint has no usable model config ({type(exc).__name__})") from None
    except SaganError as exc:  # e.g. an architecture this installation does not have
        raise SaganError(f"this checkpoint's model cannot be built here ({exc})") from None


def state_dict_problem(exc: Exception) -> str:
    """The first concrete line of a load_state_dict error ('size mismatch for ...'), not its header."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if not ln.endswith(":"):
            return ln[:200]
    return (lines[0] if lines else type(exc).__name__)[:200]


def _ready(net, weights, what: str, device):
    try:
        net.load_state_dict(weights)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise SaganError(f"checkpoint {what}weights do not match its model config ({state_dict_problem(exc)})") from None
    return net.to(device).eval().requires_grad_(False)


def load_generator(state: dict, use_ema: bool, device, standing: bool = False):
    """(G in eval mode on ``device``, its ModelConfig): the EMA weights unless told otherwise; ``standing``:
    its BatchNorm statistics re-estimated for these weights at the training batch size (models/standing.py)."""
    from sagan_cli.models import build

    cfg = model_config(state)
    if state.get("format") == "sagan-generator" and use_ema != bool(state.get("ema")):  # `sagan export`: one G
        raise SaganError("this exported generator holds " + ("the EMA G only; drop --no-ema" if state.get("ema")
                                                             else "the raw G only (exported with --no-ema); pass --no-ema"))
    if use_ema and state.get("G_ema") is None:
        raise SaganError("this checkpoint has no EMA generator (trained with --no-ema); pass --no-ema")
    G, _ = build(cfg)
    G = _ready(G, state.get("G_ema" if use_ema else "G"), "", device)
    if standing and not state.get("standing_stats_applied"):  # an export may carry them already
        from sagan_cli.models.standing import apply_standing_stats, training_batch

        apply_standing_stats(G, cfg.z_dim, training_batch(state))
    return G, cfg


def load_discriminator(state: dict, cfg, device):
    """D in eval mode on ``device`` (for the attention maps of its layers)."""
    from sagan_cli.models import build

    if state.get("D") is None:
        raise SaganError("this file holds no discriminator (an exported generator): D's attention needs the training "
                         "checkpoint; pass --layers g")
    _, D = build(cfg)
    return _ready(D, state.get("D"), "discriminator ", device)
