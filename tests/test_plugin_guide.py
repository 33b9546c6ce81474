"""docs/plugins.md, run as its reader would: the example package is built from the guide's own text.

Every fenced code block of the guide whose info string carries ``title="vidtok-kit-bsq/<path>"``
is a file of the example plugin. The blocks are written into a temporary directory, the package
is pip-installed into a temporary target (``--no-deps --no-build-isolation``, as
``tests/regularizers/test_plugin_example.py`` installs the rfsq example, so the shared environment
and the source tree stay untouched), and then, with that target on ``PYTHONPATH`` and the package
folder as the working directory, the commands of the guide's "Install and use" section run:
``vidtok-kit plugins``, ``vidtok-kit recipe check``, the guide's ``examples/encode.py`` and the
package's own ``pytest`` (the contract mixins of :mod:`vidtok_kit.testing`, warnings as errors).
The API table and the fast-arithmetic snippet of the guide are checked against the code too.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
from torch import nn

from vidtok_kit.model.shortcuts import arithmetic_of, set_arithmetic
from vidtok_kit.recipes_index import shipped_recipe

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "plugins.md"
PACKAGE = "vidtok-kit-bsq"
RECIPE = "recipes/tiny_bsq.toml"

#: the files the guide must show: a package, a hookimpl module, a conftest, a test, a recipe, a script
EXPECTED = {
    "pyproject.toml",
    "src/vidtok_kit_bsq/__init__.py",
    "src/vidtok_kit_bsq/plugin.py",
    "recipes/tiny_bsq.toml",
    "examples/encode.py",
    "tests/conftest.py",
    "tests/test_bsq.py",
}

_FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_TITLE = re.compile(r'\btitle="(?P<path>[^"]+)"')


def guide_blocks() -> list[tuple[str, str]]:
    """``(info string, body)`` of every fenced block of the guide, in order."""
    return [(m["info"].strip(), m["body"]) for m in _FENCE.finditer(GUIDE.read_text(encoding="utf-8"))]


def guide_files() -> dict[str, str]:
    """The titled blocks: path inside the example package -> text."""
    files: dict[str, str] = {}
    for info, body in guide_blocks():
        title = _TITLE.search(info)
        if title is None:
            continue
        path = PurePosixPath(title["path"])
        assert path.parts[0] == PACKAGE and ".." not in path.parts and not path.is_absolute(), path
        rel = path.relative_to(PACKAGE).as_posix()
        assert rel not in files, f"docs/plugins.md shows {path} twice"
        files[rel] = body
    return files


def test_guide_shows_every_file_of_the_example() -> None:
    assert set(guide_files()) == EXPECTED


def test_recipe_extends_a_shipped_recipe_by_name() -> None:
    recipe = tomllib.loads(guide_files()[RECIPE])
    assert shipped_recipe(recipe["extends"]) is not None, recipe["extends"]
    assert recipe["model"]["regularizer"]["kind"] == "bsq"


def test_conftest_opts_in_to_the_contract_plugin() -> None:
    files = guide_files()
    assert 'pytest_plugins = ["vidtok_kit.testing"]' in files["tests/conftest.py"]
    # in a test module it would make PytestAssertRewriteWarning (the guide says why)
    assert "pytest_plugins" not in files["tests/test_bsq.py"]
    assert "RegularizerContract" in files["tests/test_bsq.py"]


def test_api_table_names_exist_where_the_guide_says() -> None:
    """Each row of "Where things live": every name in the first column is an attribute of the module."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## 4. Where things live", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) >= 8
    for row in rows:
        names_cell, module_cell = row.split("|")[1:3]
        module = importlib.import_module(module_cell.strip().strip("`"))
        for name in re.findall(r"`([A-Za-z_][\w]*)", names_cell):
            assert hasattr(module, name), f"docs/plugins.md: {module.__name__}.{name} does not exist"


def test_fast_arithmetic_snippet_follows_the_contract() -> None:
    """The guide's example of a module with a fast form is switched by set_arithmetic; others are left alone."""
    (snippet,) = [
        body for info, body in guide_blocks() if info == "python" and "fast_arithmetic = False" in body
    ]
    namespace: dict[str, object] = {}
    exec(compile(snippet, f"{GUIDE}:fast_arithmetic snippet", "exec"), namespace)
    model = nn.Sequential(namespace["TwiceUp"](), nn.Conv3d(2, 2, 1))  # type: ignore[operator]
    assert arithmetic_of(model) == {"0": "reference"}  # freshly built: the reference form
    assert set_arithmetic(model, "fast") == ["0"]  # the conv has no fast form and needs nothing
    assert model[0].fast_arithmetic is True


# -- the package, installed from the guide's text --------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The example package written from the guide and pip-installed; (package folder, env for it)."""
    root = tmp_path_factory.mktemp("plugin_guide")
    package = root / PACKAGE
    for rel, text in guide_files().items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text, encoding="utf-8")
    site = root / "site"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(site),
        str(package),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("VIDTOK_KIT_DISABLED_PLUGINS", None)
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny tensors on a shared machine
    return package, env


def _run(args: list[str], package: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=package, env=env, capture_output=True, text=True, timeout=300
    )


def test_listed_by_vidtok_kit_plugins(installed: tuple[Path, dict[str, str]]) -> None:
    proc = _run(["-m", "vidtok_kit", "plugins", "--json"], *installed)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {row["plugin"]: row for row in json.loads(proc.stdout)}
    assert rows["bsq"]["distribution"] == PACKAGE and rows["bsq"]["broken"] is None
    assert rows["bsq"]["components"] == {"regularizer": ["bsq"]}


def test_recipe_check(installed: tuple[Path, dict[str, str]]) -> None:
    proc = _run(["-m", "vidtok_kit", "recipe", "check", RECIPE], *installed)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{RECIPE}: ok" in proc.stdout


def test_encode_example_gives_indices(installed: tuple[Path, dict[str, str]]) -> None:
    proc = _run(["examples/encode.py"], *installed)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "torch.Size([1, 3, 8, 8]) torch.uint8 256" in proc.stdout


def test_package_passes_its_own_tests(installed: tuple[Path, dict[str, str]]) -> None:
    """``pytest`` in the package folder: the shared contract and the entry-point test, warnings as errors."""
    proc = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider"], *installed)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert (
        re.search(r"\b\d+ passed\b", proc.stdout)
        and "failed" not in proc.stdout
        and "warning" not in proc.stdout
    )
