"""Recipes: every file loads, round-trips and builds; errors name file, TOML path and what is allowed;
``--set`` precedence; and a ratchet on the override surface.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path

import attrs
import pytest

from vidtok_kit import __version__
from vidtok_kit.errors import RecipeError
from vidtok_kit.model.autoencoder import build_model
from vidtok_kit.pluginmanager import default_registry
from vidtok_kit.recipe import (
    COMPONENT_SLOTS,
    ModelConfig,
    Recipe,
    dump_recipe,
    load_recipe,
    recipe_from_dict,
    recipe_to_dict,
)

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny" / "kl_causal.toml"
ALL_TOML = sorted(REPO.glob("recipes/**/*.toml"))
#: ablation suites (a ``[[run]]`` list of recipes) live beside the recipes they compare
SUITES = [p for p in ALL_TOML if "run" in tomllib.loads(p.read_text())]
RECIPES = [p for p in ALL_TOML if p not in SUITES]


def _id(path: Path) -> str:
    return str(path.relative_to(REPO / "recipes"))


# -- the catalogue -------------------------------------------------------------------------------------


def test_the_catalogue_is_not_empty() -> None:
    assert len(RECIPES) >= 24  # 23 released configs + the tiny one


@pytest.mark.parametrize("path", RECIPES, ids=_id)
def test_recipe_loads_round_trips_and_builds_on_meta(path: Path) -> None:
    registry = default_registry()
    recipe = load_recipe(path, registry=registry)
    again = recipe_from_dict(tomllib.loads(dump_recipe(recipe)), registry=registry, source=f"{path} (dumped)")
    assert again == recipe
    model = build_model(recipe, registry=registry, device="meta")
    assert next(model.parameters()).device.type == "meta"


def test_round_trip_keeps_infinite_floats() -> None:
    registry = default_registry()
    recipe = load_recipe(TINY, overrides=["train.grad_clip=inf"], registry=registry)
    text = dump_recipe(recipe)
    assert "grad_clip = inf" in text
    assert recipe_from_dict(tomllib.loads(text), registry=registry) == recipe


@pytest.mark.parametrize("path", RECIPES, ids=_id)
def test_first_line_is_a_comment_spelling_out_the_variant(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and len(first) > 20, first


@pytest.mark.parametrize("path", SUITES, ids=_id)
def test_suites_name_existing_recipes(path: Path) -> None:
    runs = tomllib.loads(path.read_text())["run"]
    assert runs
    for run in runs:
        assert (path.parent / run["recipe"]).is_file(), run


# -- error messages (pinned) ----------------------------------------------------------------------------


def _load_with(tmp_path: Path, old: str, new: str) -> str:
    text = TINY.read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_wrong_key_lists_the_allowed_keys(tmp_path: Path) -> None:
    allowed = ", ".join(f.name for f in attrs.fields(ModelConfig))
    assert _load_with(tmp_path, "num_res_blocks = 1", "num_res_block = 1") == (
        f"model: extra fields found (num_res_block); allowed: {allowed}"
    )
    assert _load_with(tmp_path, "steps = 20", "stepz = 20").startswith("train: extra fields found (stepz); allowed: steps, ")
    assert _load_with(tmp_path, "perceptual_weight = 0.0", "perceptual = 0.0").startswith(
        "train.loss: extra fields found (perceptual); allowed: perceptual_weight, "
    )
    assert _load_with(tmp_path, "schema = 1", "schema = 1\nbogus = 2") == (
        "(top level): extra fields found (bogus); allowed: schema, name, description, model, train, data"
    )


def test_wrong_component_key_names_the_component_and_its_plugin(tmp_path: Path) -> None:
    assert _load_with(tmp_path, 'kind = "kl"', 'kind = "kl"\nkl_weigth = 1.0') == (
        "model.regularizer: extra fields found (kl_weigth); regularizer 'kl' from plugin "
        f"'vidtok_kit.plugins.regularizers.kl' (vidtok-kit {__version__}) takes: kind, kl_weight, logvar_min, logvar_max"
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("base_channels = 8", 'base_channels = "8"', "model.base_channels: expected int, got str '8'"),
        ("z_channels = 4", "z_channels = 4.5", "model.z_channels: expected int, got float 4.5"),
        ("causal = true", "causal = 1", "model.causal: expected bool, got int 1"),
        ("steps = 20", "steps = true", "train.steps: expected int, got bool True"),
        ('kind = "kl"', 'kind = "kl"\nkl_weight = "x"', "model.regularizer.kl_weight: expected float, got str 'x'"),
        ('version = "v1.0"', 'version = "v2"', "model: 'version' must be in ('v1.0', 'v1.1') (got 'v2')"),
        ("base_channels = 8", "base_channels = -8", "model: 'base_channels' must be >= 1: -8"),
        ("temporal_down_levels = [1, 0]", "temporal_down_levels = [1, 5]", "model: temporal_down_levels [1, 5] must be distinct levels in 0..2"),
        ('[model.fusion]\nkind = "res3d"', "", "model.fusion: required field missing"),
        ('[model.regularizer]\nkind = "kl"', "[model.regularizer]\nkl_weight = 0.0", None),
    ],
    ids=["int", "int-float", "bool", "bool-as-int", "component-field", "choice", "range", "cross-field", "missing", "no-kind"],
)
def test_wrong_type_or_value(tmp_path: Path, old: str, new: str, message: str | None) -> None:
    if message is None:
        names = ", ".join(default_registry().names("regularizer"))
        message = f"model.regularizer.kind: missing; choose a regularizer: {names}"
    assert _load_with(tmp_path, old, new) == message


def test_unknown_kind_lists_the_available_ones(tmp_path: Path) -> None:
    names = ", ".join(default_registry().names("fusion"))
    assert _load_with(tmp_path, 'kind = "res3d"', 'kind = "res9d"') == (
        f"model.fusion.kind: unknown fusion block 'res9d'; available: {names}"
    )


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"nope\.toml: no such recipe file$"):
        load_recipe(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    with pytest.raises(RecipeError, match=r"bad\.toml: not valid TOML: "):
        load_recipe(bad)
    loop = tmp_path / "loop.toml"
    loop.write_text('extends = "loop.toml"\n')
    with pytest.raises(RecipeError, match="'extends' loops back to"):
        load_recipe(loop)
    orphan = tmp_path / "orphan.toml"
    orphan.write_text('extends = "missing_base.toml"\n')
    with pytest.raises(RecipeError, match=r"orphan\.toml: extends .*missing_base\.toml: no such recipe file"):
        load_recipe(orphan)


# -- precedence: class defaults < recipe file (after extends) < --set --------------------------------------


def test_precedence_defaults_file_set(tmp_path: Path) -> None:
    plain = load_recipe(TINY)
    assert plain.train.steps == 20  # the file beats the default (50_000)
    assert plain.train.lr == attrs.fields_dict(type(plain.train))["lr"].default  # not in the file: default
    over = load_recipe(TINY, overrides=["train.steps=5", "train.lr=3e-4", "train.steps=7"])
    assert over.train.steps == 7 and over.train.lr == 3e-4  # --set beats the file; the last --set wins
    child = tmp_path / "child.toml"
    child.write_text(f'# child\nextends = "{TINY}"\nname = "child"\n[train]\nsteps = 11\n[model.regularizer]\nkind = "fsq"\nlevels = [4, 4, 4, 4]\n')
    loaded = load_recipe(child)
    assert loaded.train.steps == 11 and loaded.train.batch_size == 1 and loaded.name == "child"
    assert loaded.model.regularizer.kind == "fsq"  # a changed kind replaces the base's table
    assert load_recipe(child, overrides=["train.steps=2"]).train.steps == 2


def test_set_values_are_toml_with_a_bare_string_fallback() -> None:
    r = load_recipe(
        TINY,
        overrides=[
            "model.channel_mult=[1, 2]",
            "model.temporal_down_levels=[0]",
            "model.temporal_up_levels=[1]",
            'model.regularizer={kind="fsq", levels=[8, 8, 8]}',
            "model.z_channels=3",
            "data.train=videos/train.csv",
        ],
    )
    assert r.model.channel_mult == (1, 2) and r.model.regularizer.config.levels == (8, 8, 8)
    assert r.data.train == "videos/train.csv"
    with pytest.raises(RecipeError, match=r"^--set 'x': expected dotted\.key=VALUE$"):
        load_recipe(TINY, overrides=["x"])
    with pytest.raises(RecipeError, match=r"^--set 'model\.causal\.x=1': model\.causal is not a table$"):
        load_recipe(TINY, overrides=["model.causal.x=1"])
    with pytest.raises(RecipeError, match=r"train\.lr: expected float, got str 'fast'"):
        load_recipe(TINY, overrides=["train.lr=fast"])


# -- the override surface ratchet --------------------------------------------------------------------------

#: Every dotted key ``--set`` reaches (component tables take ``kind`` plus that component's Config).
#: A ratchet: keys may be added to recipes, but one that disappears breaks users' ``--set`` lines and
#: saved commands, so it fails here. Add new keys to this list when you add fields.
OVERRIDE_SURFACE = """
schema name description
model.in_channels model.out_channels model.base_channels model.channel_mult model.num_res_blocks
model.z_channels model.causal model.version model.spatial_down_levels model.spatial_up_levels
model.temporal_down_levels model.temporal_up_levels model.end_conv
model.spatial_sampler model.temporal_sampler model.block model.fusion model.regularizer
train.steps train.batch_size train.num_frames train.resolution train.optimizer train.lr train.betas
train.weight_decay train.grad_clip train.warmup_steps train.lr_schedule train.precision train.ema_decay
train.seed train.frozen train.init_from train.log_every train.save_every train.eval_every train.keep_last
train.max_bad_steps train.lr_min_ratio train.device train.deterministic
train.arithmetic train.channels_last train.compile train.activation_checkpointing
train.loss.perceptual_weight train.loss.vgg_weights train.loss.lpips_weights train.loss.logvar_init
train.loss.disc_weight train.loss.disc_start train.loss.disc_type train.loss.disc_lr train.loss.lecam_weight
train.loss.regularizer_weight train.loss.disc_factor train.loss.disc_num_layers
data.train data.root data.val data.sample_fps data.val_sample_fps data.crop data.num_workers
data.val_holdout data.val_clips data.resize data.augment data.cache_mb
""".split()


def _surface(cls: type = Recipe, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for field in attrs.fields(cls):
        hint = hints[field.name]
        if isinstance(hint, type) and attrs.has(hint) and field.name not in COMPONENT_SLOTS:
            out += _surface(hint, f"{prefix}{field.name}.")
        else:
            out.append(prefix + field.name)
    return out


def test_override_surface_only_grows() -> None:
    current = _surface()
    removed = sorted(set(OVERRIDE_SURFACE) - set(current))
    assert not removed, f"--set keys disappeared (this breaks saved commands): {removed}"
    assert len(current) == len(set(current))


def test_set_reaches_every_key_of_the_surface() -> None:
    """Setting each key to its resolved value through ``--set`` gives back the same recipe."""
    base = load_recipe(TINY)
    resolved = recipe_to_dict(base)
    for key in _surface():
        node: typing.Any = resolved
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:  # an unset optional (None is not a TOML value)
            continue
        value = _toml_value(node)
        assert load_recipe(TINY, overrides=[f"{key}={value}"]) == base, key


def _toml_value(value: typing.Any) -> str:
    """A value as one-line TOML (inline tables for component tables), as a user types it after ``=``."""
    import tomli_w

    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()
