"""The learning-rate schedule: ``--lr-decay GAMMA --lr-decay-every N`` multiplies the learning rates of
both optimisers by GAMMA after every N steps (G steps: with ``--n-dis K`` D's rate changes with G's, not
after N D steps). torch's ``StepLR`` does it, one per optimiser, stepped once per step; their states are
part of every checkpoint (``lr_schedule``), and the optimisers' own states carry the current rates, so a
resumed run goes on with exactly the rates it had. With GAMMA 1 (the default) there is no scheduler and
nothing is recorded; a checkpoint written before schedules existed is such a run.
"""

from __future__ import annotations

import torch


class LRSchedule:
    def __init__(self, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer, gamma: float, every: int):
        from torch.optim.lr_scheduler import StepLR

        self.opts = {"G": opt_G, "D": opt_D}
        self.scheds = {k: StepLR(o, step_size=every, gamma=gamma) for k, o in self.opts.items()} if gamma < 1 else {}

    def step(self) -> None:
        """After each G step (and its D steps)."""
        for s in self.scheds.values():
            s.step()

    def state_dict(self) -> dict | None:
        return {k: s.state_dict() for k, s in self.scheds.items()} or None

    def load_state_dict(self, state: dict | None, step: int) -> None:
        """A checkpoint's ``lr_schedule``; without one (a file written without it), the schedule and the rates
        are placed at ``step`` as if it had run from step 0."""
        for k, s in self.scheds.items():
            if isinstance(state, dict) and isinstance(state.get(k), dict):
                s.load_state_dict(state[k])
                continue
            s.last_epoch = step
            for group in self.opts[k].param_groups:
                group["lr"] = group["initial_lr"] * s.gamma ** (step // s.step_size)

    def rates(self) -> dict[str, float]:
        """{'lr_g', 'lr_d'}: the rates now, for the training log (nothing when the rates are constant)."""
        if not self.scheds:
            return {}
        return {f"lr_{k.lower()}": o.param_groups[0]["lr"] for k, o in self.opts.items()}
