"""The training loop (torchtitan's shape): ``train()`` is a short ``while`` over ``train_step()``.

One step = :meth:`Trainer.generator_step` (forward/backward of the autoencoder loss, then the
optimizer) and, once the GAN is active, :meth:`Trainer.discriminator_step`. Logging, evaluation
and checkpointing happen at visible points of :meth:`Trainer.train`. Losses follow spec §4
(:class:`~vidtok_kit.losses.ReconstructionGANLoss`): L1 (+ LPIPS) NLL with a learned
log-variance, the regularizer's own (already weighted) loss, a PatchGAN with hinge loss, LeCam
and the adaptive weight measured at the decoder's ``conv_out`` weight.

Distributed: the autoencoder is wrapped in DDP; the few parameters outside it (log-variance,
discriminator) have their gradients averaged explicitly and the discriminator's buffers follow
rank 0. Every decision that changes control flow (skip a non-finite step) is agreed across
ranks first, so the ranks never diverge. A NaN/inf loss skips the update and is counted;
``train.max_bad_steps`` of them in a row stop the run with a clear error, before any checkpoint
of broken weights could be written.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vidtok_kit.errors import InputError, VidtokError
from vidtok_kit.heap import keep_freed_memory
from vidtok_kit.train import distributed as D
from vidtok_kit.train.checkpointing import Checkpointer, capture_rng, restore_rng
from vidtok_kit.train.optim import EMA, LRSchedule, build_optimizer, clip_gradients
from vidtok_kit.train.setup import (
    build_loss,
    check_shapes,
    freeze,
    load_init,
    memory_bytes,
    prepare_run_dir,
    write_run_files,
)
from vidtok_kit.train.speed import prepare_for_training

__all__ = ["Trainer", "TrainingError"]

log = logging.getLogger("vidtok_kit.train")

#: loss-module log names -> metric names
_NAMES = {
    "total_loss": "loss/total", "nll_loss": "loss/nll", "rec_loss": "loss/rec", "p_loss": "loss/perceptual",
    "g_loss": "loss/gen", "logvar": "loss/logvar", "regularizer": "loss/regularizer", "d_weight": "gan/d_weight",
    "disc_loss": "loss/disc", "lecam_loss": "loss/lecam", "logits_real": "gan/logits_real",
    "logits_fake": "gan/logits_fake", "non_saturated_d_loss": "gan/d_hinge",
}


class TrainingError(VidtokError):
    """Training cannot go on (e.g. the loss keeps being NaN/inf)."""


class Trainer:
    """Trains ``recipe`` into ``run_dir``; ``resume`` continues from its newest checkpoint.

    :param dist: who this process is (default: from torchrun's environment variables).
    :param progress: show the tqdm bar (rank 0 only).
    """

    def __init__(self, recipe: Any, run_dir: str | Path, *, registry: Any = None, resume: bool = False,
                 dist: D.DistInfo | None = None, progress: bool = True) -> None:
        from vidtok_kit.model.autoencoder import build_model
        from vidtok_kit.train.data import build_train_loader, load_val_clips, split_videos
        from vidtok_kit.train.reporting import MetricsLog

        if registry is None:
            from vidtok_kit.pluginmanager import default_registry

            registry = default_registry()
        self.recipe, self.cfg, self.run_dir, self.progress = recipe, recipe.train, Path(run_dir), progress
        self.dist = dist or D.DistInfo.from_env()
        self.device = D.pick_device(self.cfg.device, self.dist)
        D.init_distributed(self.dist, self.device)
        if self.cfg.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        self.checkpointer = Checkpointer(self.run_dir, keep_last=self.cfg.keep_last)
        ckpt = prepare_run_dir(self.run_dir, recipe, self.checkpointer, resume=resume)

        torch.manual_seed(self.cfg.seed)  # same initial weights on every rank
        # the loss first: missing LPIPS weights should fail before a big model is built
        self.loss_fn = build_loss(self.cfg.loss, in_channels=recipe.model.out_channels)
        self.model = build_model(recipe.model, registry=registry)
        check_shapes(self.model, recipe, memory=memory_bytes(self.device))
        if ckpt is None and self.cfg.init_from:
            load_init(self.model, self.loss_fn, self.cfg.init_from)
        self.frozen = freeze(self.model, self.cfg.frozen)
        self.model.to(self.device)
        self.loss_fn.to(self.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # activations reuse freed memory instead of faulting in new pages
        self.last_layer = [p for n, p in self.model.decoder.conv_out.named_parameters() if n.endswith("weight")][-1]
        self.gen_params = [p for p in self.model.parameters() if p.requires_grad] + self.loss_fn.autoencoder_parameters()
        self.disc_params = self.loss_fn.discriminator_parameters()
        c = self.cfg
        self.opt_g = build_optimizer(self.gen_params, kind=c.optimizer, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)
        self.opt_d = build_optimizer(self.disc_params, kind=c.optimizer, lr=c.loss.disc_lr, betas=c.betas, weight_decay=c.weight_decay)
        self.schedule = LRSchedule(kind=c.lr_schedule, warmup_steps=c.warmup_steps, total_steps=c.steps, min_ratio=c.lr_min_ratio)
        self.ema = EMA(self.model, c.ema_decay) if c.ema_decay > 0 else None
        # after the EMA copy: a compiled forward is bound to the module it was made from, and
        # evaluation of the EMA weights keeps the plain eager model
        self.compiled = prepare_for_training(
            self.model, arithmetic=c.arithmetic, channels_last=c.channels_last, compile=c.compile,
            activation_checkpointing=c.activation_checkpointing, discriminator=self.loss_fn.discriminator,
        )
        self.step, self.samples_seen, self.bad_steps, self.bad_streak, self.skipped_clips = 0, 0, 0, 0, 0
        torch.manual_seed(c.seed + self.dist.rank)  # different KL noise per rank
        if ckpt is not None:
            self._load(ckpt)
        self.ddp_model: nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False)
        train_videos, val_videos = split_videos(recipe.data)
        self.loader = build_train_loader(train_videos, recipe, rank=self.dist.rank, world_size=self.dist.world_size,
                                         start=self.samples_seen, pin_memory=self.device.type == "cuda")
        self.val_clips = load_val_clips(val_videos, recipe, multiple=self.model.spatial_factor) if self.dist.is_main else []
        if self.dist.is_main:
            write_run_files(self.run_dir, recipe, registry)
        self.metrics = MetricsLog(self.run_dir, resume_step=self.step) if self.dist.is_main else None
        self.codebook = None
        if self.model.discrete:
            from vidtok_kit.codebook import CodebookStats

            self.codebook = CodebookStats(self.model.regularizer.codebook_size)
        self.last_checkpoint: Path | None = ckpt.path if ckpt is not None else None
        self.last_eval: dict[str, float] = {}
        self._acc: dict[str, list[Tensor]] = defaultdict(list)
        self._times: list[float] = []
        self._set_train_mode()

    # -- the loop ---------------------------------------------------------------------------------

    def train(self) -> Path | None:
        """Run until ``train.steps``; returns the newest checkpoint directory."""
        from tqdm import tqdm

        batches = iter(self.loader)
        bar = tqdm(total=self.cfg.steps, initial=self.step, unit="step", dynamic_ncols=True, mininterval=1.0,
                   disable=not (self.progress and self.dist.is_main))
        try:
            while self.step < self.cfg.steps:
                self.step += 1
                start = time.perf_counter()
                batch = self._next_batch(batches)
                self.train_step(batch)
                self._times.append(time.perf_counter() - start)
                bar.update(1)
                if self.step % self.cfg.log_every == 0 or self.step == self.cfg.steps:
                    self.log(bar)
                if self.step % self.cfg.eval_every == 0 or self.step == self.cfg.steps:
                    self.evaluate()
                if self.step % self.cfg.save_every == 0 or self.step == self.cfg.steps:
                    self.save()
        finally:
            bar.close()
            if self.metrics is not None:
                self.metrics.close()
        return self.last_checkpoint

    def train_step(self, batch: dict[str, Tensor]) -> None:
        """One iteration: generator update, then (once the GAN is on) discriminator update."""
        x = batch["video"].to(self.device, non_blocking=True)
        self.samples_seen += x.shape[0] * self.dist.world_size
        self.skipped_clips += int(batch["skipped"].sum())
        recon = self.generator_step(x)
        if recon is not None and self.loss_fn.gan_active(self.step):
            self.discriminator_step(x, recon)
            D.broadcast_buffers(self.loss_fn)

    def forward_backward_step(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor], Any]:
        """Autoencoder loss forward and backward; gradients land in ``.grad``, nothing is updated."""
        with self._autocast():
            out = self.ddp_model(x, sample=True, step=self.step)
            loss, logs = self.loss_fn.generator_loss(x, out.recon, {"regularizer": out.reg.loss}, self.step, last_layer=self.last_layer)
        loss.backward()
        logs.update({f"reg/{k}": v.detach().float().mean() for k, v in out.reg.logs.items()})
        return loss.detach(), logs, out

    def generator_step(self, x: Tensor) -> Tensor | None:
        """Update the autoencoder (and log-variance); returns the detached reconstruction, or
        None when the step was skipped for a non-finite loss."""
        self.schedule.apply(self.opt_g, self.step, self.cfg.lr)
        self.opt_g.zero_grad(set_to_none=True)
        self.loss_fn.discriminator.requires_grad_(False)  # the generator loss must not train D
        try:
            loss, logs, out = self.forward_backward_step(x)
        finally:
            self.loss_fn.discriminator.requires_grad_(True)
        D.average_gradients(self.loss_fn.autoencoder_parameters())
        if not self._apply(self.opt_g, self.gen_params, loss, logs, "grad_norm/generator"):
            self.bad_steps += 1
            self.bad_streak += 1
            log.warning("step %d: non-finite generator loss (%s); update skipped", self.step, float(loss))
            if self.bad_streak >= self.cfg.max_bad_steps:
                where = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was written"
                raise TrainingError(
                    f"the loss was NaN/inf for {self.bad_streak} consecutive steps (up to step {self.step}); stopped "
                    f"without writing a checkpoint ({where}); lower train.lr, check the data or use train.precision='fp32'"
                )
            return None
        self.bad_streak = 0
        if self.ema is not None:
            self.ema.update(self.model)
        if self.codebook is not None and out.reg.indices is not None:
            self.codebook.update(out.reg.indices)
        self._record(logs)
        return out.recon.detach()

    def discriminator_step(self, x: Tensor, recon: Tensor) -> None:
        """Update the PatchGAN on real clips vs the generator's reconstructions."""
        self.schedule.apply(self.opt_d, self.step, self.cfg.loss.disc_lr)
        self.opt_d.zero_grad(set_to_none=True)
        with self._autocast():
            loss, logs = self.loss_fn.discriminator_loss(x, recon, self.step)
        loss.backward()
        D.average_gradients(self.disc_params)
        if self._apply(self.opt_d, self.disc_params, loss.detach(), logs, "grad_norm/discriminator"):
            self._record(logs)
        else:
            log.warning("step %d: non-finite discriminator loss; update skipped", self.step)

    def _apply(self, opt: torch.optim.Optimizer, params: list[nn.Parameter], loss: Tensor, logs: dict[str, Tensor], norm_key: str) -> bool:
        """Clip and step ``opt`` unless the loss or gradient norm is non-finite on any rank."""
        norm = clip_gradients(params, self.cfg.grad_clip)
        bad = not bool(torch.isfinite(loss).all() and torch.isfinite(norm))
        if D.any_true(bad, self.device):
            opt.zero_grad(set_to_none=True)
            return False
        opt.step()
        logs[norm_key] = norm.detach()
        return True

    # -- log / eval / save points ----------------------------------------------------------------

    def log(self, bar: Any = None) -> None:
        """Average the logs since the last call over steps and ranks; rank 0 writes them."""
        keys = sorted(self._acc)
        means = torch.stack([torch.stack(self._acc[k]).float().mean() for k in keys]) if keys else torch.zeros(0)
        counters = torch.tensor([float(self.skipped_clips)], device=self.device)
        reduced = D.reduce_mean(torch.cat([means.to(self.device), counters])).tolist()
        values = {_NAMES.get(k, k): v for k, v in zip(keys, reduced)}
        step_time = sum(self._times) / max(1, len(self._times))
        values.update({
            "lr": self.opt_g.param_groups[0]["lr"], "time/step_s": step_time,
            "time/samples_per_s": self.cfg.batch_size * self.dist.world_size / max(step_time, 1e-9),
            "bad_steps": float(self.bad_steps), "data/skipped_clips": reduced[-1] * self.dist.world_size,
        })
        if self.codebook is not None:
            stats = self.codebook.all_reduce()
            values.update({"codebook/utilisation": stats.utilisation, "codebook/perplexity": stats.perplexity})
            stats.reset()
        self._acc.clear()
        self._times.clear()
        if self.metrics is not None:
            self.metrics.write(self.step, values)
        if bar is not None and "loss/total" in values:
            bar.set_postfix(loss=f"{values['loss/total']:.4g}", step_s=f"{step_time:.2f}", refresh=False)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Rank 0: PSNR/SSIM/L1 on the validation clips, previews and the loss plot."""
        if not self.dist.is_main:
            return {}
        from vidtok_kit.metrics import psnr_per_frame, ssim_per_frame
        from vidtok_kit.train.reporting import plot_losses, write_preview_grid, write_side_by_side

        model = self.ema.model if self.ema is not None else self.model
        model.eval()
        sums: dict[str, float] = defaultdict(float)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            for i, (_name, clip) in enumerate(self.val_clips):
                x = clip[None].to(self.device)
                with self._autocast():
                    y = model(x).recon.float().clamp(-1, 1)
                x01, y01 = (x + 1) / 2, (y + 1) / 2
                sums["val/psnr"] += float(psnr_per_frame(x01, y01).mean())
                if min(x.shape[-2:]) >= 11:
                    sums["val/ssim"] += float(ssim_per_frame(x01, y01).mean())
                sums["val/l1"] += float((x - y).abs().mean())
                if i == 0:
                    previews = self.run_dir / "previews"
                    previews.mkdir(exist_ok=True)
                    write_preview_grid(x[0], y[0], previews / f"step_{self.step:08d}.png")
                    write_side_by_side(x[0], y[0], previews / f"step_{self.step:08d}.mp4", fps=self.recipe.data.val_sample_fps)
        self._set_train_mode()
        self.last_eval = {k: v / max(1, len(self.val_clips)) for k, v in sums.items()}
        assert self.metrics is not None
        if self.last_eval:
            self.metrics.write(self.step, self.last_eval)
        plot_losses(self.metrics.records, self.run_dir / "loss.png")
        return self.last_eval

    def save(self) -> None:
        """Checkpoint (every rank contributes its RNG state; rank 0 writes)."""
        gathered = D.all_gather_objects((capture_rng(self.device), self._digest()))
        rng, digests = [g[0] for g in gathered], [g[1] for g in gathered]
        if any(not torch.equal(d, digests[0]) for d in digests):
            raise TrainingError(f"step {self.step}: the ranks hold different weights (DDP out of sync); not saving")
        if not self.dist.is_main:
            return
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise TrainingError(f"step {self.step}: the weights are not finite; refusing to write a broken checkpoint")
        state = {
            "step": self.step, "samples_seen": self.samples_seen, "world_size": self.dist.world_size, "rng": rng,
            "optim_g": self.opt_g.state_dict(), "optim_d": self.opt_d.state_dict(), "schedule": self.schedule.state_dict(),
            "counters": {"bad_steps": self.bad_steps, "skipped_clips": self.skipped_clips},
        }
        self.last_checkpoint = self.checkpointer.save(
            self.step, model=self.model, recipe=self.recipe, loss=self.loss_fn,
            ema=self.ema.model if self.ema is not None else None, state=state,
        )

    def _load(self, ckpt: Any) -> None:
        self.model.load_state_dict(ckpt.model, strict=True)
        if ckpt.loss is not None:
            self.loss_fn.load_state_dict(ckpt.loss, strict=True)
        if self.ema is not None and ckpt.ema is not None:
            self.ema.model.load_state_dict(ckpt.ema, strict=True)
        s = ckpt.state
        self.step, self.samples_seen = int(s["step"]), int(s["samples_seen"])
        self.bad_steps, self.skipped_clips = int(s["counters"]["bad_steps"]), int(s["counters"]["skipped_clips"])
        self.opt_g.load_state_dict(s["optim_g"])
        self.opt_d.load_state_dict(s["optim_d"])
        if int(s["world_size"]) == self.dist.world_size:
            restore_rng(s["rng"][self.dist.rank], self.device)
        else:
            log.warning("resuming with %d processes instead of %d: RNG streams restart", self.dist.world_size, s["world_size"])
            torch.manual_seed(self.cfg.seed + self.dist.rank + self.step)
        log.info("resumed from %s (step %d)", ckpt.path, self.step)

    # -- helpers ----------------------------------------------------------------------------------

    def _digest(self) -> Tensor:
        """Per-tensor sums of the model and loss state: equal on every rank when DDP works."""
        tensors = [*self.model.state_dict().values(), *self.loss_fn.state_dict().values()]
        return torch.stack([t.detach().double().sum() for t in tensors]).cpu()

    def _record(self, logs: dict[str, Tensor]) -> None:
        for k, v in logs.items():
            if k != "disc_factor":
                self._acc[k].append(v.detach().float().reshape(()))

    def _set_train_mode(self) -> None:
        self.model.train()
        for module in self.frozen:
            module.eval()

    def _autocast(self) -> Any:
        if self.cfg.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _next_batch(self, batches: Any) -> dict[str, Tensor]:
        try:
            return next(batches)
        except VidtokError as exc:  # from a DataLoader worker the message carries a traceback
            last = str(exc).strip().splitlines()[-1]
            raise InputError(last.split(": ", 1)[1] if last.startswith("vidtok_kit.") else last) from None
