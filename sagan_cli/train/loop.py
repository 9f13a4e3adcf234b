"""The SAGAN training loop: hinge loss, TTUR Adam, EMA of G, AMP, checkpoints, resume.

One iteration is one D step then one G step, as in the paper. In the D step the
fakes come from G under ``no_grad`` and real and fake go through D in one batch
(D has no batch statistics, so this equals two calls). In the G step D's weights
are frozen, so no gradient is computed for them. Scalars are accumulated on the
device and read back only at log steps: no host sync inside a step.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from sagan_cli import __version__
from sagan_cli.config import ModelConfig, TrainConfig
from sagan_cli.data.dataset import PreparedDataset
from sagan_cli.data.loader import EpochSampler, Prefetcher
from sagan_cli.errors import SaganError
from sagan_cli.fsutil import atomic_write_json
from sagan_cli.images import grid, save_png, to_uint8
from sagan_cli.models import Discriminator, Generator, gammas
from sagan_cli.train.checkpoint import FORMAT, FORMAT_VERSION, save_checkpoint
from sagan_cli.train.ema import EMA
from sagan_cli.train.logger import TrainLogger

EXIT_SIGTERM = 143


@dataclass
class TrainOutcome:
    step: int
    run_dir: Path
    checkpoint: Path | None
    exit_code: int
    reason: str  # "finished" | "interrupted" | "terminated"


def fixed_noise(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """The z of the sample grids: the same for every sample step and across resumes."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed + 0x5A6A))


class Trainer:
    def __init__(
        self,
        mcfg: ModelConfig,
        tcfg: TrainConfig,
        device: torch.device,
        dataset: PreparedDataset,
        run_dir: Path,
        resume: dict | None = None,
        console=None,
    ):
        self.mcfg, self.tcfg, self.device, self.dataset, self.run_dir = mcfg, tcfg, device, dataset, run_dir
        self.console = console
        torch.manual_seed(tcfg.seed)
        cuda = device.type == "cuda"
        self.memory_format = torch.channels_last if cuda else torch.contiguous_format
        self.G = Generator(mcfg).to(device, memory_format=self.memory_format)
        self.D = Discriminator(mcfg).to(device, memory_format=self.memory_format)
        betas = (tcfg.beta1, tcfg.beta2)
        fused = {"fused": True} if cuda else {}
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=tcfg.lr_g, betas=betas, **fused)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=tcfg.lr_d, betas=betas, **fused)
        self.ema = EMA(self.G, tcfg.ema_decay, tcfg.ema_start) if tcfg.ema else None
        self.amp_dtype = None
        if cuda and tcfg.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.fixed_z = fixed_noise(tcfg.n_samples, mcfg.z_dim, tcfg.seed)
        self.step, self.images_seen = 0, 0
        self.sampler_state = {"seed": tcfg.seed, "epoch": 0, "position": 0}
        if resume is not None:
            self._load_state(resume)
        use_compile = tcfg.compile if tcfg.compile is not None else cuda
        self.G_step = torch.compile(self.G) if use_compile else self.G
        self.D_step = torch.compile(self.D) if use_compile else self.D
        self._acc = torch.zeros(4, device=device)
        self._acc_n = 0
        self._stop_signal: int | None = None
        self.last_checkpoint: Path | None = None
        self._last_ckpt_step = self.step if resume is not None else -1

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "tool_version": __version__,
            "torch_version": str(torch.__version__),
            "model_config": self.mcfg.to_dict(),
            "train_config": self.tcfg.to_dict(),
            "step": self.step,
            "images_seen": self.images_seen,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.ema.model.state_dict() if self.ema else None,
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "sampler": dict(self.sampler_state),
            "data": {"path": str(self.dataset.path), "fingerprint": self.dataset.fingerprint, "count": len(self.dataset)},
            "fixed_z": self.fixed_z,
        }

    def _load_state(self, ckpt: dict) -> None:
        try:
            self.G.load_state_dict(ckpt["G"])
            self.D.load_state_dict(ckpt["D"])
            if self.ema is not None:
                self.ema.model.load_state_dict(ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"])
            self.opt_G.load_state_dict(ckpt["opt_G"])
            self.opt_D.load_state_dict(ckpt["opt_D"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise SaganError(f"checkpoint does not match this model ({str(exc).splitlines()[0][:200]})") from None
        self.step = int(ckpt["step"])
        self.images_seen = int(ckpt.get("images_seen", 0))
        self.sampler_state = dict(ckpt["sampler"])
        if isinstance(ckpt.get("fixed_z"), torch.Tensor):
            self.fixed_z = ckpt["fixed_z"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        if self.device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)

    # ------------------------------------------------------------------- step
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def train_step(self, real_u8: torch.Tensor) -> None:
        b = real_u8.shape[0]
        real = real_u8.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        real = real.contiguous(memory_format=self.memory_format)
        z_dim = self.mcfg.z_dim

        # D step: hinge loss on real and (no-grad) fake images.
        with torch.no_grad(), self._autocast():
            fake = self.G_step(torch.randn(b, z_dim, device=self.device))
        with self._autocast():
            logits = self.D_step(torch.cat([real, fake.to(real.dtype)])).float()
        d_real, d_fake = logits[:b], logits[b:]
        d_loss = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler.scale(d_loss).backward()
        self.scaler.step(self.opt_D)
        self.scaler.update()

        # G step: D frozen, gradients flow through it into G only.
        self.D.requires_grad_(False)
        with self._autocast():
            g_logits = self.D_step(self.G_step(torch.randn(b, z_dim, device=self.device))).float()
        g_loss = -g_logits.mean()
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler.scale(g_loss).backward()
        self.scaler.step(self.opt_G)
        self.scaler.update()
        self.D.requires_grad_(True)

        self._acc += torch.stack([d_loss, g_loss, d_real.mean(), d_fake.mean()]).detach()
        self._acc_n += 1

    # -------------------------------------------------------------- outputs
    def _check_finite(self) -> None:
        flags = [torch.isfinite(p).all() for net in (self.G, self.D) for p in net.parameters()]
        flags.append(torch.isfinite(self._acc).all())
        if not bool(torch.stack(flags).all()):  # one host sync for all of them
            last = f"; last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else ""
            raise SaganError(
                f"training diverged: non-finite loss or weights at step {self.step} (no checkpoint written{last})",
                exit_code=3,
            )

    def _log(self, logger: TrainLogger, t_last: float, step_last: int) -> None:
        vals = (self._acc / max(self._acc_n, 1)).tolist()
        rec = {"step": self.step, "steps": self.tcfg.steps, "images_seen": self.images_seen,
               "epoch": self.sampler_state["epoch"]}
        rec.update(dict(zip(("d_loss", "g_loss", "d_real", "d_fake"), vals)))
        g = gammas(self.G, self.D)
        if g:
            rec.update(zip(g, torch.stack(list(g.values())).tolist()))
        elapsed = time.perf_counter() - t_last
        rec["img_per_s"] = round((self.step - step_last) * self.tcfg.batch / max(elapsed, 1e-9), 2)
        self._check_finite()
        logger.log(rec)
        self._acc.zero_()
        self._acc_n = 0

    @torch.no_grad()
    def sample_grid(self) -> Path:
        net = self.ema.model if self.ema else self.G
        was_training = net.training
        net.eval()
        outs = [net(z.to(self.device)) for z in self.fixed_z.split(64)]
        net.train(was_training)
        image = grid(to_uint8(torch.cat(outs)), nrow=8)
        return save_png(image, self.run_dir / "samples" / f"step-{self.step:07d}.png")

    def checkpoint(self) -> Path:
        self._check_finite()
        path = save_checkpoint(self.state_dict(), self.run_dir / "checkpoints", keep=self.tcfg.keep_ckpts)
        self.last_checkpoint, self._last_ckpt_step = path, self.step
        return path

    def write_config(self, extra: dict) -> None:
        atomic_write_json(self.run_dir / "config.json", {
            "model": self.mcfg.to_dict(), "train": self.tcfg.to_dict(), "device": str(self.device),
            "amp_dtype": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else None,
            "data": {"path": str(self.dataset.path), "fingerprint": self.dataset.fingerprint,
                     "count": len(self.dataset), "imsize": self.dataset.imsize},
            "tool_version": __version__, "torch_version": str(torch.__version__), **extra,
        })

    # ------------------------------------------------------------------- run
    def _on_signal(self, signum, _frame) -> None:
        self._stop_signal = signum
        # A second Ctrl-C falls through to Python's default handler and aborts at once.
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)

    def run(self, logger: TrainLogger) -> TrainOutcome:
        t = self.tcfg
        sampler = EpochSampler(len(self.dataset), t.batch, seed=self.sampler_state["seed"],
                               epoch=self.sampler_state["epoch"], position=self.sampler_state["position"])
        prefetch = Prefetcher(self.dataset.images, sampler, pin_memory=self.device.type == "cuda")
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                handlers[sig] = signal.signal(sig, self._on_signal)
        self.G.train()
        self.D.train()
        t_last, step_last = time.perf_counter(), self.step
        try:
            while self.step < t.steps and self._stop_signal is None:
                batch, self.sampler_state = prefetch.next()
                self.train_step(batch)
                self.step += 1
                self.images_seen += batch.shape[0]
                if self.ema is not None:
                    self.ema.update(self.step)
                final = self.step == t.steps
                if self.step % t.log_every == 0 or final:
                    self._log(logger, t_last, step_last)
                    t_last, step_last = time.perf_counter(), self.step
                if self.step % t.sample_every == 0 or final:
                    path = self.sample_grid()
                    logger.message(f"step {self.step}: samples → {path}")
                if self.step % t.ckpt_every == 0 or final:
                    path = self.checkpoint()
                    logger.message(f"step {self.step}: checkpoint → {path}")
                logger.advance(self.step)
            if self._stop_signal is not None and self._last_ckpt_step != self.step:
                path = self.checkpoint()
                logger.message(f"step {self.step}: checkpoint → {path}")
        finally:
            prefetch.close()
            for sig, old in handlers.items():
                signal.signal(sig, old)
        if self._stop_signal is None:
            return TrainOutcome(self.step, self.run_dir, self.last_checkpoint, 0, "finished")
        if self._stop_signal == signal.SIGTERM:
            return TrainOutcome(self.step, self.run_dir, self.last_checkpoint, EXIT_SIGTERM, "terminated")
        return TrainOutcome(self.step, self.run_dir, self.last_checkpoint, 0, "interrupted")

