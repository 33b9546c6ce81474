"""README's two commands stay true: `.ci/run` runs the README's test command (CI must run what
the README tells a new user to run), and both commands pin torch before anything pulls it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _two_commands() -> list[str]:
    section = (REPO / "README.md").read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def _steps(command: str) -> list[list[str]]:
    """`a && b` -> [[a's words], [b's words]], with `python -m pip` written as `pip` and -q dropped."""
    steps = []
    for part in command.split("&&"):
        words = [w for w in shlex.split(part) if w != "-q"]
        if words[:3] == ["python", "-m", "pip"]:
            words = ["pip", *words[3:]]
        steps.append(words)
    return steps


def test_ci_runs_the_readme_test_command() -> None:
    main_job, tests = _two_commands()
    ci = [step for line in (REPO / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.lstrip().startswith(("#", "set ", "cd ", "export "))
          for step in _steps(line)]
    assert _steps(tests) == ci, f"README: {tests!r}\n.ci/run: {ci!r}"


def test_both_commands_install_the_pinned_cpu_torch_first() -> None:
    for command in _two_commands():
        first, second = _steps(command)[:2]
        assert first == ["pip", "install", "torch==2.13.0"], command
        assert second[:3] == ["pip", "install", "-e"], command
