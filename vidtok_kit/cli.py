"""The ``vidtok-kit`` command line: a thin click group; every command calls one library function.

Heavy imports (torch, models) happen inside command bodies. Commands of other subsystems live in
their own modules listed in :data:`COMMAND_MODULES`; plugin commands arrive through the
``vidtok_kit_add_commands`` hook, and a plugin whose hook fails is reported, not fatal.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from vidtok_kit.errors import VidtokError

__all__ = ["COMMAND_MODULES", "cli", "main"]

#: modules whose ``commands`` list is added to the root group (core subsystems, not plugins)
COMMAND_MODULES: tuple[str, ...] = ("vidtok_kit.evaluation.commands", "vidtok_kit.ablation.commands", "vidtok_kit.tokenize.commands", "vidtok_kit.train.commands")

_STATE: dict[str, Any] = {}


class VidtokGroup(click.Group):
    """Turns library errors into one line on stderr and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VidtokError as exc:
            raise click.ClickException(str(exc)) from None


def _registry() -> Any:
    """The component registry honouring ``--disable-plugin`` (built once per process)."""
    from vidtok_kit import pluginmanager

    if "registry" not in _STATE:
        plugins = _STATE.get("plugins") or pluginmanager.get_plugin_manager(disabled=_STATE.get("disabled", ()))
        plugins.broken.extend(_STATE.pop("broken_commands", ()))  # command hooks that failed at start-up
        _STATE["plugins"] = plugins
        _STATE["registry"] = pluginmanager.build_registry(plugins)
        pluginmanager._DEFAULT = _STATE["registry"]
    return _STATE["registry"]


@click.group(cls=VidtokGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vidtok-kit")
@click.option("--disable-plugin", "disabled", multiple=True, metavar="NAME", help="Block a plugin by name (repeatable).")
def cli(disabled: tuple[str, ...]) -> None:
    """Build, train, evaluate and deploy VidTok-family video tokenizers."""
    if disabled:
        from vidtok_kit.pluginmanager import check_plugin_names

        check_plugin_names(disabled)
        _STATE["disabled"] = disabled
        _STATE.pop("plugins", None)
        _STATE.pop("registry", None)


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """List plugins, their distributions and the components each provides."""
    from vidtok_kit.registry import KINDS

    registry = _registry()
    plugins = _STATE["plugins"]
    provided = registry.by_plugin()
    rows = []
    for name, origin in plugins.origins.items():
        rows.append(
            {
                "plugin": name,
                "distribution": origin.distribution,
                "version": origin.version,
                "components": provided.get(name, {}),
                "broken": None,
            }
        )
    for broken in registry.broken:
        rows.append(
            {
                "plugin": broken.origin.plugin,
                "distribution": broken.origin.distribution,
                "version": broken.origin.version,
                "components": {},
                "broken": broken.error,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['plugin']}  ({row['distribution']} {row['version']})")
        if row["broken"]:
            click.echo(f"    BROKEN: {row['broken']}")
        for kind, names in row["components"].items():
            click.echo(f"    {KINDS[kind][2]}: {', '.join(names)}")


@cli.group("recipe", cls=VidtokGroup)
def recipe_group() -> None:
    """Inspect and validate recipes."""


@recipe_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (name, path, description).")
def recipe_list(as_json: bool) -> None:
    """List the recipes shipped in the package; any command taking a recipe takes these names."""
    from vidtok_kit.recipes_index import list_recipes

    rows = list_recipes()
    if as_json:
        click.echo(json.dumps([{"name": r.name, "path": str(r.path), "description": r.description} for r in rows], indent=2))
        return
    width = max((len(r.name) for r in rows), default=0)
    for r in rows:
        click.echo(f"{r.name:<{width}}  {r.description}".rstrip())


@recipe_group.command("show")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value (TOML syntax).")
def recipe_show(recipe: Path, overrides: tuple[str, ...]) -> None:
    """Print the fully resolved recipe (defaults, extends and --set applied) as TOML."""
    from vidtok_kit.recipe import dump_recipe, load_recipe

    click.echo(dump_recipe(load_recipe(recipe, overrides=overrides, registry=_registry())), nl=False)


@recipe_group.command("check")
@click.argument("recipes", nargs=-1, required=True, type=click.Path(path_type=Path))
def recipe_check(recipes: tuple[Path, ...]) -> None:
    """Validate recipes; the model is assembled on the meta device (no memory, no weights)
    so that mismatches between components (e.g. FSQ levels vs z_channels) are caught too."""
    from vidtok_kit.model.autoencoder import build_model
    from vidtok_kit.recipe import load_recipe

    for path in recipes:
        recipe = load_recipe(path, registry=_registry())
        build_model(recipe.model, registry=_registry(), device="meta")
        click.echo(f"{path}: ok")


@cli.command("profile")
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option("--shape", default=None, help="Input T,H,W, at most 16384,8192,8192 (default: the recipe's frames at 256x256).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (keys params.total, macs, flops, ...).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value.")
def profile_command(recipe: Path, shape: str | None, as_json: bool, overrides: tuple[str, ...]) -> None:
    """Parameter counts and MACs/FLOPs of one encode + decode, counted on the meta device."""
    from vidtok_kit.model.autoencoder import build_model
    from vidtok_kit.profile import parse_shape, profile_model
    from vidtok_kit.recipe import load_recipe

    dims = parse_shape(shape) if shape else None  # a bad shape fails before the recipe is read
    r = load_recipe(recipe, overrides=overrides, registry=_registry())
    model = build_model(r.model, registry=_registry(), device="meta")
    dims = dims or (r.train.num_frames, 256, 256)
    result = profile_model(model, dims)
    if as_json:
        click.echo(json.dumps({"recipe": str(recipe), **result.as_dict()}, indent=2))
        return
    d = result.as_dict()
    click.echo(f"recipe       {recipe}")
    click.echo(f"input        {dims[0]}x{dims[1]}x{dims[2]}  ->  latent {'x'.join(map(str, d['latent_shape'][2:]))}")
    for part in ("total", "encoder", "decoder", "regularizer"):
        click.echo(f"params.{part:<12}{d['params'][part]:>14,}  ({d['params'][part] / 1e6:.2f} M)")
    click.echo(f"MACs         {d['macs']:>18,}  ({d['macs'] / 1e12:.3f} T)")
    click.echo(f"FLOPs        {d['flops']:>18,}  ({d['flops'] / 1e12:.3f} T)")


def _converted_paths(output: Path) -> tuple[Path, Path]:
    """Weights and sidecar that ``convert -o OUTPUT`` writes: an existing directory gets
    ``model.safetensors`` + ``model.json`` inside it (what a user naming a folder means), any other
    path gets the ``.safetensors`` suffix and a ``.json`` beside it."""
    weights = output / "model.safetensors" if output.is_dir() else output.with_suffix(".safetensors")
    return weights, weights.with_suffix(".json")


@cli.command("convert")
@click.argument("original", type=click.Path(path_type=Path))
@click.option("--recipe", "recipe", required=True, type=click.Path(path_type=Path), help="Recipe of the model.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output .safetensors path, or an existing directory (gets model.safetensors + model.json).")
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
def convert_command(original: Path, recipe: Path, output: Path, overwrite: bool) -> None:
    """Convert an original VidTok checkpoint (.ckpt/.pt/.safetensors) into ours (safetensors + recipe)."""
    from vidtok_kit.convert.checkpoint import file_sha256, load_state_dict_file, load_weights, save_tokenizer
    from vidtok_kit.io.outputs import check_output
    from vidtok_kit.model.autoencoder import build_model
    from vidtok_kit.recipe import load_recipe

    weights, sidecar = _converted_paths(output)
    for path in (weights, sidecar):
        check_output(path, overwrite=overwrite, inputs=(original, recipe), what="-o")
    r = load_recipe(recipe, registry=_registry())
    model = build_model(r.model, registry=_registry())
    layout = load_weights(model, load_state_dict_file(original), source=str(original))
    path = save_tokenizer(model, r, weights, extra={"source": str(original), "source_sha256": file_sha256(original)})
    click.echo(f"{original} ({layout} layout) -> {path}")


def _add_subsystem_commands() -> None:
    for modname in COMMAND_MODULES:
        module = importlib.import_module(modname)
        for command in module.commands:
            cli.add_command(command)


def _add_plugin_commands() -> None:
    from vidtok_kit import pluginmanager

    plugins = pluginmanager.get_plugin_manager(disabled=_disabled_from_argv(), builtins=pluginmanager.COMMAND_PLUGINS)
    for impl in plugins.pm.hook.vidtok_kit_add_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:  # a broken plugin must not take the CLI down
            plugins.record_broken(plugins.origins[impl.plugin_name], exc)
    _STATE["broken_commands"] = plugins.broken


def _disabled_from_argv() -> tuple[str, ...]:
    argv, found = sys.argv[1:], []
    for i, arg in enumerate(argv):
        if arg == "--disable-plugin" and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith("--disable-plugin="):
            found.append(arg.split("=", 1)[1])
    return tuple(found)


def main() -> None:
    """Console-script entry point."""
    _add_subsystem_commands()
    _add_plugin_commands()
    cli(prog_name="vidtok-kit")
