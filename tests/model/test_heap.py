"""The heap setting: freed activations stay in the process for the next layer, unless declined."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vidtok_kit.heap import HEAP_ENV

# allocate and touch 256 MiB, free it, report whether the setting applied and the RSS kept (MiB)
_PROBE = """
import resource, torch
from vidtok_kit.heap import keep_freed_memory
applied = keep_freed_memory()
def rss_mib():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
before = rss_mib()
x = torch.ones(64 * 2**20)
del x
print(applied, rss_mib() - before)
"""


def _probe(heap: str | None) -> tuple[bool, float]:
    env = {k: v for k, v in os.environ.items() if k != HEAP_ENV}
    if heap is not None:
        env[HEAP_ENV] = heap
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    applied, kept = out.stdout.split()
    return applied == "True", float(kept)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting applies to glibc only")
def test_freed_memory_is_kept_for_reuse_and_the_system_default_returns_it():
    applied, kept = _probe(None)
    assert applied
    assert kept > 200  # the freed 256 MiB stays mapped for the next activation
    applied, kept = _probe("system")
    assert not applied
    assert kept < 50  # glibc's default: a block this large is unmapped on free
