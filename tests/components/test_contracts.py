"""Every registered component of every kind passes the shared contract of ``vidtok_kit.testing``.

The classes are generated from the default registry at collection time, so a third-party plugin
installed in the environment is checked exactly like the built-ins.
"""

from __future__ import annotations

from vidtok_kit.pluginmanager import default_registry
from vidtok_kit.registry import KINDS
from vidtok_kit.testing import CONTRACTS

__all__: list[str] = []


def _generate() -> dict[str, type]:
    classes = {}
    registry = default_registry()
    for kind, contract in CONTRACTS.items():
        for name, cls, origin in registry.items(kind):
            test_name = f"Test_{kind}_{name}"
            classes[test_name] = type(test_name, (contract,), {"component": cls, "__doc__": f"{kind} {name!r} from {origin}"})
    return classes


globals().update(_generate())


def test_every_kind_has_a_contract() -> None:
    assert set(CONTRACTS) == set(KINDS)


def test_every_registered_component_is_collected() -> None:
    registry = default_registry()
    expected = {f"Test_{kind}_{name}" for kind in KINDS for name in registry.names(kind)}
    assert expected <= set(globals())
    assert len(expected) >= 10  # the built-ins alone: 2 spatial, 3 temporal, 3 fusion, 2 regularizers
