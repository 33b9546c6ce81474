"""The heap setting: freed activations stay in the process for the next layer, unless declined."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vidtok_kit.heap import HEAP_ENV

# allocate and touch 256 MiB, free it, report whether the setting applied and the RSS kept (MiB);
# then hand the heap back and report the RSS still kept
_PROBE = """
import resource, torch
from vidtok_kit.heap import keep_freed_memory, keeping_freed_memory, return_freed_memory
applied = keep_freed_memory()
def rss_mib():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20
before = rss_mib()
x = torch.ones(64 * 2**20)
del x
kept = rss_mib() - before
return_freed_memory()
assert not keeping_freed_memory()
x = torch.ones(64 * 2**20)
del x
print(applied, kept, rss_mib() - before)
"""


def _probe(heap: str | None) -> tuple[bool, float, float]:
    env = {k: v for k, v in os.environ.items() if k != HEAP_ENV}
    if heap is not None:
        env[HEAP_ENV] = heap
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
    applied, kept, after_return = out.stdout.split()
    return applied == "True", float(kept), float(after_return)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting applies to glibc only")
def test_freed_memory_is_kept_for_reuse_until_handed_back_and_the_system_default_returns_it():
    applied, kept, after_return = _probe(None)
    assert applied
    assert kept > 200  # the freed 256 MiB stays mapped for the next activation
    assert after_return < 50  # handed back: trimmed, and the next large block is unmapped on free
    applied, kept, _ = _probe("system")
    assert not applied
    assert kept < 50  # glibc's default: a block this large is unmapped on free


def test_a_stream_cut_to_fit_the_budget_hands_the_heap_back():
    from vidtok_kit.heap import keep_freed_memory, keeping_freed_memory, return_freed_memory
    from vidtok_kit.stream.torch_backend import TorchBackend
    from vidtok_kit.testing import tiny_model

    backend = TorchBackend(tiny_model(), arithmetic="fast")
    try:
        if not keep_freed_memory():
            pytest.skip("no glibc heap setting here")
        backend.plan(32, 32, "encode", max_memory=2**40, total=9)  # fits whole: the heap stays kept
        assert keeping_freed_memory()
        backend.plan(32, 32, "encode", max_memory=2**40, total=None)  # unknown length: streamed
        assert not keeping_freed_memory()
    finally:
        return_freed_memory()
