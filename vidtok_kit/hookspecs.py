"""The table of contents of vidtok-kit's extension points.

Every hook is prefixed ``vidtok_kit_``. The four registration hooks take no arguments and return
lists of component classes; every implementation is called and the results are merged by the
component's ``name`` into the :class:`~vidtok_kit.registry.ComponentRegistry`, where a duplicate
name is an error naming both origins. Built-in components come through exactly these hooks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from vidtok_kit.interfaces import FusionBlock, Regularizer, SamplerPair

__all__ = [
    "hookspec",
    "vidtok_kit_add_commands",
    "vidtok_kit_register_fusion_blocks",
    "vidtok_kit_register_regularizers",
    "vidtok_kit_register_spatial_samplers",
    "vidtok_kit_register_temporal_samplers",
]

hookspec = pluggy.HookspecMarker("vidtok_kit")


# -- component registration: every implementation is called; results are merged by name --------


@hookspec
def vidtok_kit_register_spatial_samplers() -> Iterable[type[SamplerPair]]:
    """Return the spatial sampler pairs (2x down in the encoder, 2x up in the decoder) this plugin provides.

    :return: :class:`~vidtok_kit.interfaces.SamplerPair` subclasses; all plugins' lists are
        merged, and two pairs with the same ``name`` are an error naming both plugins.

    .. versionadded:: 0.3
    """


@hookspec
def vidtok_kit_register_temporal_samplers() -> Iterable[type[SamplerPair]]:
    """Return the temporal sampler pairs (2x in time) this plugin provides.

    :return: :class:`~vidtok_kit.interfaces.SamplerPair` subclasses; merged by name like
        :func:`vidtok_kit_register_spatial_samplers`.

    .. versionadded:: 0.3
    """


@hookspec
def vidtok_kit_register_fusion_blocks() -> Iterable[type[FusionBlock]]:
    """Return the fusion (residual mixing) blocks this plugin provides.

    A fusion block keeps T, H and W and may change the channel count; recipes use one kind for the
    blocks of every resolution level (``model.block``) and one for the bottleneck (``model.fusion``).

    :return: :class:`~vidtok_kit.interfaces.FusionBlock` subclasses, merged by name.

    .. versionadded:: 0.3
    """


@hookspec
def vidtok_kit_register_regularizers() -> Iterable[type[Regularizer]]:
    """Return the latent regularizers (KL, quantizers) this plugin provides.

    :return: :class:`~vidtok_kit.interfaces.Regularizer` subclasses, merged by name.

    .. versionadded:: 0.3
    """


# -- command line --------------------------------------------------------------------------------


@hookspec
def vidtok_kit_add_commands(cli: click.Group) -> None:
    """Add subcommands to the root ``vidtok-kit`` click group.

    Every implementation is called once when the CLI starts; a plugin whose hook raises is reported
    by ``vidtok-kit plugins`` and the rest of the CLI keeps working.

    :param cli: the root group; call ``cli.add_command`` or decorate with ``@cli.command()``.

    .. versionadded:: 0.3
    """
