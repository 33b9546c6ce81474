"""Everything a run checks and prepares before its first step, one function each.

Kept out of :mod:`~vidtok_kit.train.loop` so the Trainer reads as the loop it is: the run
directory (resolved recipe, plugin versions, resume rules), the loss module, frozen parts and
stage-2 initial weights, and the shape rules of the data against the model.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vidtok_kit.errors import CheckpointError, InputError, RecipeError
from vidtok_kit.io.outputs import atomic_write

if TYPE_CHECKING:
    from vidtok_kit.losses import ReconstructionGANLoss

__all__ = ["build_loss", "check_shapes", "freeze", "load_init", "memory_bytes", "plugin_versions", "prepare_run_dir", "write_run_files"]

log = logging.getLogger("vidtok_kit.train")

#: recipe sections that may change when a run is resumed (schedule length, logging cadence, and
#: the speed options, which change how a step is computed but not what it computes)
_RESUMABLE_CHANGES = ("train.steps", "train.log_every", "train.save_every", "train.eval_every", "train.keep_last",
                      "train.max_bad_steps", "data.num_workers", "data.cache_mb", "train.device",
                      "train.arithmetic", "train.channels_last", "train.compile", "train.activation_checkpointing")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def plugin_versions(registry: Any) -> list[dict[str, Any]]:
    """Plugin -> distribution, version and the components it provided (``plugins.json``)."""
    from vidtok_kit.registry import KINDS

    rows: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        for name, _cls, origin in registry.items(kind):
            row = rows.setdefault(origin.plugin, {"plugin": origin.plugin, "distribution": origin.distribution,
                                                  "version": origin.version, "components": {}})
            row["components"].setdefault(kind, []).append(name)
    return list(rows.values())


def prepare_run_dir(run_dir: Path, recipe: Any, checkpointer: Any, *, resume: bool) -> Any:
    """Apply the resume rules (nothing is written here).

    :return: the checkpoint to resume from, or None for a fresh run.
    :raises InputError: checkpoints exist but ``resume`` is off.
    :raises CheckpointError: resuming, but every checkpoint is damaged (never silently step 0).
    :raises RecipeError: resuming with a recipe whose model or optimisation changed.
    """
    import tomllib

    from vidtok_kit.recipe import recipe_to_dict

    existing = checkpointer.complete()
    if existing and not resume:
        raise InputError(f"{run_dir}: already holds checkpoints (last: step {existing[-1][0]}); pass --resume to continue or choose another --out")
    ckpt = checkpointer.latest() if resume else None
    if resume and ckpt is None and checkpointer.damaged:
        older = f" (and {len(checkpointer.damaged) - 1} older ones)" if len(checkpointer.damaged) > 1 else ""
        raise CheckpointError(f"cannot resume {run_dir}: its newest checkpoint is damaged{older}: {checkpointer.damaged[0]}")
    if resume and ckpt is None:
        log.info("--resume: no checkpoint in %s yet, starting from step 0", run_dir)
    stored = run_dir / "recipe.resolved.toml"
    if ckpt is not None and stored.is_file():
        old = _flatten(tomllib.loads(stored.read_text()))
        new = _flatten(recipe_to_dict(recipe))
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        fixed = [k for k in changed if not k.startswith(_RESUMABLE_CHANGES)]
        if fixed:
            raise RecipeError(f"{run_dir}: cannot resume, the recipe changed in {', '.join(fixed)} (only {', '.join(_RESUMABLE_CHANGES)} may)")
        if changed:
            log.info("resuming with changed %s", ", ".join(changed))
    return ckpt


def write_run_files(run_dir: Path, recipe: Any, registry: Any) -> None:
    """``recipe.resolved.toml`` and ``plugins.json`` (rank 0, once the run is known to start)."""
    from vidtok_kit.recipe import dump_recipe

    run_dir.mkdir(parents=True, exist_ok=True)
    text = dump_recipe(recipe)
    atomic_write(run_dir / "recipe.resolved.toml", lambda tmp: tmp.write_text(text))
    table = json.dumps(plugin_versions(registry), indent=2) + "\n"
    atomic_write(run_dir / "plugins.json", lambda tmp: tmp.write_text(table))


def build_loss(cfg: Any, *, in_channels: int = 3) -> ReconstructionGANLoss:
    """:class:`~vidtok_kit.losses.ReconstructionGANLoss` from a recipe's ``[train.loss]``."""
    from vidtok_kit.losses import LPIPSWeightsError, ReconstructionGANLoss

    config = ReconstructionGANLoss.Config(
        perceptual_weight=cfg.perceptual_weight, disc_start=cfg.disc_start, disc_weight=cfg.disc_weight,
        disc_factor=cfg.disc_factor, disc_type=cfg.disc_type, disc_num_layers=cfg.disc_num_layers,
        disc_in_channels=in_channels, lecam_loss_weight=cfg.lecam_weight, logvar_init=cfg.logvar_init,
        regularization_weights={"regularizer": cfg.regularizer_weight},
        vgg16_weights=cfg.vgg_weights or None, lpips_weights=cfg.lpips_weights or None,
    )
    try:
        return ReconstructionGANLoss(config)
    except LPIPSWeightsError as exc:
        raise LPIPSWeightsError(
            f"train.loss: {exc} (name the files with train.loss.vgg_weights / lpips_weights, or --set train.loss.perceptual_weight=0)"
        ) from None


def freeze(model: nn.Module, prefixes: tuple[str, ...]) -> list[nn.Module]:
    """Stop gradients to parameters under each dotted prefix; returns the frozen modules (kept in
    eval mode by the trainer so no buffer moves either)."""
    modules = []
    names = dict(model.named_modules())
    for prefix in prefixes:
        params = [p for n, p in model.named_parameters() if n == prefix or n.startswith(prefix + ".")]
        if not params:
            tops = ", ".join(n for n, _ in model.named_children())
            raise RecipeError(f"train.frozen: {prefix!r} matches no parameter (top-level parts: {tops})")
        for p in params:
            p.requires_grad_(False)
        if prefix in names:
            modules.append(names[prefix])
    if prefixes and not any(p.requires_grad for p in model.parameters()):
        raise RecipeError(f"train.frozen {list(prefixes)} freezes every parameter: nothing to train")
    return modules


def load_init(model: Any, loss_fn: nn.Module, spec: str) -> None:
    """Stage 2: start from ``train.init_from`` (model strictly; loss state too when it fits)."""
    from vidtok_kit.convert.checkpoint import load_weights
    from vidtok_kit.train.checkpointing import resolve_init_from

    weights, loss_state, source = resolve_init_from(spec)
    load_weights(model, weights, source=source)
    if loss_state is not None:
        try:
            loss_fn.load_state_dict(loss_state, strict=True)
        except RuntimeError:
            log.warning("%s: the loss state (discriminator, log-variance) does not fit this recipe; starting it fresh", source)
    log.info("initial weights from %s", source)


def memory_bytes(device: torch.device) -> int | None:
    """Total memory of ``device`` (GPU memory, or the machine's RAM for the CPU); None if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        return None


def check_shapes(model: Any, recipe: Any, *, memory: int | None = None) -> None:
    """The clip length and crop size must suit the model, and one batch must fit ``memory``.

    The memory bound is a floor, not an estimate: the first convolution's output alone
    (batch x frames x resolution² x base_channels, in the training precision) is held for the
    backward pass, so a batch whose floor exceeds the device's whole memory cannot run; refusing
    it here is one line instead of an allocation failure (``train.resolution = 100000``).

    :raises RecipeError: one line naming the recipe keys.
    """
    from vidtok_kit.model import frames as frame_rules

    t, r = recipe.train.num_frames, recipe.train.resolution
    if memory is not None:
        element = 2 if recipe.train.precision == "bf16" else 4
        floor = recipe.train.batch_size * t * r * r * recipe.model.base_channels * element
        if floor > memory:
            raise RecipeError(
                f"train.resolution = {r}, num_frames = {t}, batch_size = {recipe.train.batch_size}: the first layer's "
                f"activations alone need {floor / 2**30:,.1f} GiB, more than the device's {memory / 2**30:,.1f} GiB"
            )
    if not frame_rules.valid_frames(t, tdf=model.temporal_factor, mode=model.mode):
        rule = frame_rules.allowed_frames(tdf=model.temporal_factor, mode=model.mode)
        raise RecipeError(f"train.num_frames = {t}: this {model.mode.value} model takes {rule}")
    if r % model.spatial_factor:
        raise RecipeError(f"train.resolution = {r} is not a multiple of the model's spatial factor {model.spatial_factor}")

