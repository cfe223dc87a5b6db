"""yolobone/utils/allocator.py: with heap reuse, the typical training step stops page-faulting its activations afresh."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent("""
    import resource, torch
    from yolobone.utils.allocator import keep_freed_memory
    applied = keep_freed_memory()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 1, 1), torch.nn.BatchNorm2d(16), torch.nn.SiLU(),
                              torch.nn.Conv2d(16, 16, 3, 1, 1), torch.nn.SiLU())
    x = torch.rand(8, 3, 128, 128)  # activations of 8 MB each: above glibc's default mmap threshold

    def step():
        net(x).square().mean().backward()

    for _ in range(3):
        step()
    faults = []
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    # the median step: with heap reuse an occasional step still grows the heap by a few thousand pages
    print(applied, sorted(faults)[len(faults) // 2])
""")


def _faults_per_step(env_value: str) -> tuple:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "YOLOBONE_MALLOC": env_value}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()[-2:]
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_heap_reuse_stops_page_faults_of_repeated_steps():
    applied, faults = _faults_per_step("")
    if not applied:
        pytest.skip("the C library is not glibc")
    default_applied, default_faults = _faults_per_step("default")
    assert not default_applied
    if default_faults < 2000:  # 8 MB is 2,048 pages: glibc's own policy already reuses them on this machine
        pytest.skip(f"glibc's default policy faults only {default_faults} pages per step here")
    assert faults * 10 < default_faults, (faults, default_faults)
