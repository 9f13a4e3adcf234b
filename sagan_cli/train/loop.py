"""The SAGAN training loop: the loss of ``TrainConfig.loss`` (hinge by default), TTUR Adam, EMA of G, AMP, checkpoints, resume.

A step is ``--n-dis`` D steps (1, as in the paper; each on the next real batch) then one G step. In the D step the
fakes come from G under ``no_grad`` and real and fake go through D in one batch
(D has no batch statistics, so this equals two calls). In the G step D's weights
are frozen, so no gradient is computed for them. Scalars are accumulated on the
device and read back only at log steps: no host sync inside a step.

With several processes (torchrun; see ``distributed.py``) G and D are wrapped in
DistributedDataParallel, every rank draws the same global noise batch and uses its
slice, and only rank 0 writes samples, logs and checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sagan_cli import __version__
from sagan_cli.models.config import ModelConfig
from sagan_cli.train.config import TrainConfig
from sagan_cli.data.dataset import PreparedDataset
from sagan_cli.data.loader import EpochSampler, Prefetcher
from sagan_cli.util.errors import EXIT_DIVERGED, EXIT_PEER_LOST, EXIT_SIGTERM, SaganError
from sagan_cli.util.images import grid, save_png, to_uint8
from sagan_cli.models import build, gammas
from sagan_cli.models.standing import apply_standing_stats
from sagan_cli.train import distributed as dist_util
from sagan_cli.train import augment, evaluation, losses, run_config
from sagan_cli.train.checkpoint import FORMAT, FORMAT_VERSION, intact_note, save_best, save_checkpoint
from sagan_cli.train.distributed import SINGLE, DistContext
from sagan_cli.train.curves import refresh as refresh_curves
from sagan_cli.train.ema import EMA
from sagan_cli.train.labels import Labels, bind, data_record
from sagan_cli.train.schedule import LRSchedule
from sagan_cli.train.log import LogWriteError, TrainLogger

# With several processes a stop request (Ctrl-C, SIGTERM) is agreed on every this many steps.
STOP_POLL_EVERY = 10


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
        dist: DistContext = SINGLE,
    ):
        self.mcfg, self.tcfg, self.device, self.dataset, self.run_dir = mcfg, tcfg, device, dataset, run_dir
        self.dist = dist
        torch.manual_seed(tcfg.seed)  # the same on every rank: identical init and noise streams
        cuda = device.type == "cuda"
        # channels_last on every device: cuDNN's NHWC kernels on GPUs, and on the CPU oneDNN's convolutions
        # made a training step 7-10% faster than NCHW (docs/performance.md)
        self.memory_format = torch.channels_last
        G, D = build(mcfg)
        self.G = G.to(device, memory_format=self.memory_format)
        self.D = D.to(device, memory_format=self.memory_format)
        self.loss = losses.LOSSES[tcfg.loss]  # TrainConfig has checked the name
        if dist.enabled and tcfg.sync_bn:
            dist_util.convert_sync_bn(self.G)
        betas = (tcfg.beta1, tcfg.beta2)
        fused = {"fused": True} if cuda else {}
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=tcfg.lr_g, betas=betas, **fused)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=tcfg.lr_d, betas=betas, **fused)
        self.schedule = LRSchedule(self.opt_G, self.opt_D, tcfg.lr_decay, tcfg.lr_decay_every)
        # Replicas are identical, so only rank 0 (the one that writes) keeps the average.
        self.ema = EMA(self.G, tcfg.ema_decay, tcfg.ema_start) if tcfg.ema and dist.is_main else None
        self.amp_dtype = None
        if cuda and tcfg.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.fixed_z = fixed_noise(tcfg.num_samples, mcfg.z_dim, tcfg.seed)
        self.labels = Labels(mcfg.num_classes, tcfg.fake_labels, dataset.labels, tcfg.batch, device, dist)  # train/labels.py
        self.augment = augment.Augment(tcfg, device, dist)  # --mirror, --diffaug: D's inputs (train/augment.py)
        self.step, self.images_seen = 0, 0
        self.sampler_state = {"seed": tcfg.seed, "epoch": 0, "position": 0}
        self._best = None  # the best evaluation so far, as a resumed checkpoint recorded it
        if resume is not None:
            self._load_state(resume)
        use_compile = tcfg.compile if tcfg.compile is not None else cuda
        G_train, D_train = self.G, self.D
        if dist.enabled:
            # DDP's default buffer sync broadcasts rank 0's buffers at every forward, which
            # keeps the spectral-norm u/v vectors and BN statistics of all replicas equal.
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [device.index] if cuda else None
            G_train = DDP(self.G, device_ids=ids)
            D_train = DDP(self.D, device_ids=ids)
        self.G_step = torch.compile(G_train) if use_compile else G_train
        self.D_step = torch.compile(D_train) if use_compile else D_train
        # In the G step D is frozen and must not take part in DDP's gradient reduction.
        if dist.enabled:
            self.D_frozen = torch.compile(self.D) if use_compile else self.D
        else:
            self.D_frozen = self.D_step
        self._acc = torch.zeros(4, device=device)
        self._acc_n = 0
        self._stop_signal: int | None = None
        self.last_checkpoint: Path | None = None
        self.run_lock, self.parent = None, None  # rank 0's hold on the run (runs.lock_run); --init-from's parent
        self._last_ckpt_step = self.step if resume is not None else -1
        self.evals = None  # a DuringTraining, when the command asks for evaluations (attach_evaluator)

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
            "world_size": self.dist.world,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.ema.model.state_dict() if self.ema else None,
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "scaler": self.scaler.state_dict(),
            "lr_schedule": self.schedule.state_dict(),
            "rng": rng,
            "sampler": dict(self.sampler_state),
            "data": data_record(self.dataset, self.mcfg.num_classes),  # with the class names when conditional
            "fixed_z": self.fixed_z, "parent": self.parent,  # the --init-from checkpoint (train/finetune.py)
            "best": self.evals.best.to_dict() if self.evals is not None and self.evals.best else self._best,
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
        self.schedule.load_state_dict(ckpt.get("lr_schedule"), self.step)
        self.sampler_state = dict(ckpt["sampler"])
        if isinstance(ckpt.get("fixed_z"), torch.Tensor):
            self.fixed_z = ckpt["fixed_z"]
        self._best = ckpt.get("best") if isinstance(ckpt.get("best"), dict) else None
        try:
            torch.set_rng_state(ckpt["rng"]["torch"])
            if self.device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        except (TypeError, RuntimeError, ValueError) as exc:
            raise SaganError(f"the checkpoint's random-generator state cannot be restored "
                             f"({str(exc).splitlines()[0][:200]}); it can be sampled from but not resumed") from None

    # ------------------------------------------------------------------- step
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _noise(self) -> torch.Tensor:
        """This rank's slice of the global noise batch (the same stream for any world size)."""
        z = torch.randn(self.tcfg.batch, self.mcfg.z_dim, device=self.device)
        return z[self.dist.shard(self.tcfg.batch)] if self.dist.enabled else z

    def d_step(self, real_u8: torch.Tensor, real_y: torch.Tensor | None = None) -> None:
        """One D step; with ``--n-dis K`` the trainer takes K of them, each on the next real batch, per G step."""
        b = real_u8.shape[0]
        real = real_u8.to(self.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        real = real.contiguous(memory_format=self.memory_format)
        y_real, y_fake = self.labels.real(real_y), self.labels.fake()  # () when unconditional

        # D step: the loss on real and (no-grad) fake images.
        with torch.no_grad(), self._autocast():
            fake = self.G_step(self._noise(), *y_fake)
        real, fake = self.augment.d(real, fake.to(real.dtype), self.step)  # themselves without --mirror/--diffaug
        with self._autocast():
            logits = self.D_step(torch.cat([real, fake]), *self.labels.joined(y_real, y_fake)).float()
        d_real, d_fake = logits[:b], logits[b:]
        d_loss = self.loss.d(d_real, d_fake)
        if self.loss.penalty is not None:  # through the plain D: DDP and torch.compile have no double backward
            eps = torch.rand(self.tcfg.batch, 1, 1, 1, device=self.device)[self.dist.shard(self.tcfg.batch)]
            d_loss = d_loss + self.tcfg.gp_weight * self.loss.penalty(bind(self.D, y_real), real, fake.to(real.dtype), eps)
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler.scale(d_loss).backward()
        self.scaler.step(self.opt_D)
        self.scaler.update()
        self._acc[:3] += torch.stack([d_loss, d_real.mean(), d_fake.mean()]).detach() / self.tcfg.n_dis

    def train_step(self, real_u8: torch.Tensor, real_y: torch.Tensor | None = None) -> None:
        """A step's last D step (``d_step``), then the G step."""
        self.d_step(real_u8, real_y)

        # G step: D frozen, gradients flow through it into G only.
        self.D.requires_grad_(False)
        y = self.labels.fake()
        with self._autocast():
            g_logits = self.D_frozen(self.augment.g(self.G_step(self._noise(), *y), self.step), *y).float()
        g_loss = self.loss.g(g_logits)
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler.scale(g_loss).backward()
        self.scaler.step(self.opt_G)
        self.scaler.update()
        self.D.requires_grad_(True)

        self._acc[3] += g_loss.detach()
        self._acc_n += 1

    # -------------------------------------------------------------- outputs
    def _check_finite(self) -> None:
        flags = [torch.isfinite(p).all() for net in (self.G, self.D) for p in net.parameters()]
        flags.append(torch.isfinite(self._acc).all())
        bad = int(not bool(torch.stack(flags).all()))  # one host sync for all of them
        if dist_util.all_max(bad, self.dist, self.device):  # every rank stops together
            last = f"; last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else ""
            raise SaganError(
                f"training diverged: non-finite loss or weights at step {self.step} (no checkpoint written{last})",
                exit_code=EXIT_DIVERGED,
            )

    def _log(self, logger: TrainLogger, t_last: float, step_last: int) -> None:
        vals = dist_util.all_mean_(self._acc / max(self._acc_n, 1), self.dist).tolist()
        rec = {"step": self.step, "steps": self.tcfg.steps, "images_seen": self.images_seen,
               "epoch": self.sampler_state["epoch"]}
        rec.update(dict(zip(("d_loss", "d_real", "d_fake", "g_loss"), vals)), **self.schedule.rates())
        g = gammas(self.G, self.D)
        if g:
            rec.update(zip(g, torch.stack(list(g.values())).tolist()))
        elapsed = time.perf_counter() - t_last
        rec["img_per_s"] = round((self.step - step_last) * self.tcfg.batch * self.tcfg.n_dis / max(elapsed, 1e-9), 2)
        self._check_finite()
        logger.log(rec)
        self._acc.zero_()
        self._acc_n = 0

    @torch.no_grad()
    def sample_grid(self) -> Path:
        net = self.ema.model if self.ema else self.G
        was_training = net.training
        if self.tcfg.standing_stats:  # on a copy: the statistics training keeps are not touched
            net = apply_standing_stats(copy.deepcopy(net), self.mcfg.z_dim, max(self.tcfg.batch, 2))
        net.eval()
        ys = self.labels.grid(len(self.fixed_z), 64)  # one class per grid row when conditional
        outs = [net(z.to(self.device), *y) for z, y in zip(self.fixed_z.split(64), ys)]
        net.train(was_training)
        image = grid(to_uint8(torch.cat(outs)), nrow=8)
        return save_png(image, self.run_dir / "samples" / f"step-{self.step:07d}.png")

    def checkpoint(self) -> Path | None:
        """Save (rank 0) after checking that the weights are finite and, with several ranks, identical."""
        self._check_finite()
        dist_util.broadcast_bn_stats_((self.G, self.D), self.dist)
        if not dist_util.replicas_identical((self.G, self.D), self.dist):
            raise SaganError(f"the {self.dist.world} replicas of G and D differ at step {self.step}; "
                             "refusing to checkpoint an inconsistent run", exit_code=EXIT_PEER_LOST)
        path = None
        if self.dist.is_main:
            path = save_checkpoint(self.state_dict(), self.run_dir / "checkpoints", keep=self.tcfg.keep_ckpts)
        self.last_checkpoint, self._last_ckpt_step = path, self.step
        return path

    def write_config(self, extra: dict) -> None:
        run_config.write(self, extra)

    # ------------------------------------------------------------------- run
    def _on_signal(self, signum, _frame) -> None:
        self._stop_signal = max(self._stop_signal or 0, signum)
        if self.dist.enabled:  # torchrun forwards the terminal's Ctrl-C: a repeat must not abort a rank
            return
        # A second Ctrl-C falls through to Python's default handler and aborts at once.
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)

    def _agreed_stop(self) -> int | None:
        """The stop signal all ranks act on (SIGTERM wins over SIGINT), or None to go on."""
        if not self.dist.enabled:
            return self._stop_signal
        if self.step % STOP_POLL_EVERY:
            return None
        return dist_util.all_max(self._stop_signal or 0, self.dist, self.device) or None

    def run(self, logger: TrainLogger) -> TrainOutcome:
        t = self.tcfg
        sampler = EpochSampler(len(self.dataset), t.batch, seed=self.sampler_state["seed"],
                               rank=self.dist.rank, world=self.dist.world,
                               epoch=self.sampler_state["epoch"], position=self.sampler_state["position"])
        prefetch = Prefetcher(self.dataset.images, sampler, pin_memory=self.device.type == "cuda",
                              labels=self.dataset.labels)  # next(): ((images, labels or None), state)
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                handlers[sig] = signal.signal(sig, self._on_signal)
        self.G.train()
        self.D.train()
        try:
            stop = self._loop(logger, prefetch)
        except LogWriteError as exc:
            raise SaganError(f"{exc} at step {self.step}; {intact_note(self.run_dir / 'checkpoints')}") from None
        except Exception as exc:
            if self.dist.enabled and dist_util.is_collective_failure(exc):
                raise dist_util.peer_lost(self.dist, self.step, exc, self.last_checkpoint) from None
            raise
        finally:
            prefetch.close()
            for sig, old in handlers.items():
                signal.signal(sig, old)
        if stop is None:
            return TrainOutcome(self.step, self.run_dir, self.last_checkpoint, 0, "finished")
        if stop == signal.SIGTERM:
            return TrainOutcome(self.step, self.run_dir, self.last_checkpoint, EXIT_SIGTERM, "terminated")
        return TrainOutcome(self.step, self.run_dir, self.last_checkpoint, 0, "interrupted")

    def _loop(self, logger: TrainLogger, prefetch: Prefetcher) -> int | None:
        """Steps until done or until a stop signal all ranks agree on; returns that signal."""
        t = self.tcfg
        t_last, step_last = time.perf_counter(), self.step
        stop = self._agreed_stop()
        while self.step < t.steps and stop is None:
            for _ in range(t.n_dis - 1):  # the step's first D steps; train_step takes the last one and G's
                (batch, labels), self.sampler_state = prefetch.next()
                self.d_step(batch, labels)
            (batch, labels), self.sampler_state = prefetch.next()
            self.train_step(batch, labels)
            self.step += 1
            self.images_seen += t.batch * t.n_dis  # real images D has seen
            self.schedule.step()
            if self.ema is not None:
                self.ema.update(self.step)
            final = self.step == t.steps
            if self.step % t.log_every == 0 or final:
                self._log(logger, t_last, step_last)
                t_last, step_last = time.perf_counter(), self.step
            if self.dist.is_main and (self.step % t.sample_every == 0 or final):
                path = self.sample_grid()
                logger.message(f"step {self.step}: samples → {path}")
                refresh_curves(self.run_dir, logger.message)  # <run>/curves.png; a failure is a warning line
            if self.evals is not None and self.evals.due(self.step, final):
                self._evaluate(logger)
            if self.step % t.ckpt_every == 0 or final:
                self._checkpoint_and_say(logger)
            logger.advance(self.step)
            stop = self._agreed_stop()
        if stop is not None and self._last_ckpt_step != self.step:
            self._checkpoint_and_say(logger)
        return stop

    def attach_evaluator(self, evaluator, every: int) -> None:
        """Evaluate every ``every`` steps and at the end (train/evaluation.py); a resumed run keeps its best."""
        self.evals = evaluation.DuringTraining(evaluator, every, self._best)

    def _evaluate(self, logger: TrainLogger) -> None:
        """Rank 0 scores the generator samples come from; on a new best all ranks check finiteness, rank 0 saves."""
        new_best = False
        if self.dist.is_main:
            record, new_best = self.evals.evaluate(self.ema.model if self.ema else self.G, self.step, self.images_seen)
            logger.log_eval(record, evaluation.summary(record, self.evals.evaluator.key))
        if dist_util.all_max(int(new_best), self.dist, self.device):  # the others wait here for rank 0's verdict
            self._check_finite()
            if self.dist.is_main:
                try:
                    path = save_best(self.state_dict(), self.run_dir / "checkpoints")
                    logger.message(f"step {self.step}: best {self.evals.evaluator.key} so far → {path}")
                except SaganError as exc:
                    logger.message(f"warning: {exc}")
        dist_util.barrier(self.dist)

    def _checkpoint_and_say(self, logger: TrainLogger) -> None:
        path = self.checkpoint()
        same = f" ({self.dist.world} replicas identical)" if self.dist.enabled else ""
        logger.message(f"step {self.step}: checkpoint → {path}{same}")
