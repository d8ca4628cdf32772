"""The native kernel (frontends/speed/native.py): the conv2d max over frequency it computes, and how it is built,
cached, rebuilt when damaged, and left out where it cannot be built."""
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from elmarc.frontends.speed import SpeedPolicy, native, ops
from elmarc.frontends.speed.native import NativeKernels

needs_compiler = pytest.mark.skipif(native.compiler() is None, reason="no C++ compiler on this machine")


@pytest.fixture
def fresh_native(tmp_path, monkeypatch):
    """A policy whose kernels are built into an empty folder, active for the test."""
    monkeypatch.setenv("ELMARC_NATIVE_DIR", str(tmp_path / "native"))
    policy = SpeedPolicy("rule")
    with policy.active():
        yield policy.native


def _expected(x, w, time_pad):
    return F.conv2d(F.pad(x, (0, 0, *time_pad)), w).amax(dim=3, keepdim=True)


SHAPES = [((37, 1, 1, 38), (0, 0)), ((70, 1, 7, 86), (3, 3)), ((20, 1, 3, 96), (1, 1)), ((33, 1, 2, 50), (0, 1))]


@needs_compiler
@pytest.mark.parametrize("shape,time_pad", SHAPES)     # filters not a multiple of a tile's columns, one offset, uneven pads
@pytest.mark.parametrize("threads", [1, 2])
def test_native_kernel_gives_the_max_over_frequency_and_its_rectified_average(shape, time_pad, threads):
    g = torch.Generator().manual_seed(5)
    x, w = torch.randn(3, 1, 41, 96, generator=g), torch.randn(*shape, generator=g)   # 3 x 41 rows: tiles straddle clips
    expected = _expected(x, w, time_pad)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        maps = ops._native_patch_max(x, w, time_pad)
        averaged = ops._native_patch_max(x, w, time_pad, relu_mean=True)
    finally:
        torch.set_num_threads(before)
    assert maps.shape == expected.shape
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-4)
    assert averaged.shape == (3, shape[0]) and averaged.dtype == torch.float32
    torch.testing.assert_close(averaged, F.relu(expected).mean(dim=(2, 3)), rtol=1e-5, atol=1e-5)
    for op, want in ((ops.conv2d_max_freq, expected), (ops.conv2d_max_freq_relu_mean, F.relu(expected).mean(dim=(2, 3)))):
        with SpeedPolicy().with_pinned("native"):       # the op offers it as a form
            torch.testing.assert_close(op(x, w, time_pad), want, rtol=1e-5, atol=1e-4)


@needs_compiler
@pytest.mark.parametrize("size,kernel,pool", [((37, 20), (3, 3), (4, 2)), ((50, 96), (5, 3), (3, 3)), ((17, 11), (3, 3), (2, 2))])
@pytest.mark.parametrize("then_elu", [False, True])
def test_native_kernel_gives_the_pooled_one_channel_conv(size, kernel, pool, then_elu):
    """vgg's first layer: conv 'same' + max-pool (+ ELU), the pool window as the kernel's offsets;
    sizes that the pool does not divide (the remainder dropped, as max_pool2d does)."""
    g = torch.Generator().manual_seed(10)
    x, w = torch.randn(2, 1, *size, generator=g), torch.randn(19, 1, *kernel, generator=g)
    expected = F.max_pool2d(F.conv2d(x, w, padding=(kernel[0] // 2, kernel[1] // 2)), pool)
    expected = F.elu(expected) if then_elu else expected
    with SpeedPolicy().with_pinned("native"):
        got = ops.conv2d_same_maxpool(x, w, pool, then_elu=then_elu)
    assert got.shape == expected.shape and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@needs_compiler
def test_native_form_is_offered_only_where_it_gives_the_plain_values():
    """fp32 without a gradient to carry: under bf16 autocast, or where autograd needs the graph, the
    other forms run (the kernel computes in fp32 and is opaque to autograd)."""
    x, w = torch.randn(1, 1, 12, 96), torch.randn(4, 1, 1, 38)
    assert ops._native_ready(x, w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not ops._native_ready(x, w)
    assert not ops._native_ready(x, w.clone().requires_grad_())
    with torch.no_grad():
        assert ops._native_ready(x, w.clone().requires_grad_())
    assert not ops._native_ready(x.to("meta"), w.to("meta"))


@needs_compiler
def test_native_kernel_keeps_a_nan_as_the_plain_form_does():
    g = torch.Generator().manual_seed(6)
    x, w = torch.randn(2, 1, 20, 96, generator=g), torch.randn(5, 1, 3, 38, generator=g)
    x[1, 0, 7, 60] = float("nan")
    expected = _expected(x, w, (1, 1))
    maps = ops._native_patch_max(x, w, (1, 1))
    assert torch.equal(maps.isnan(), expected.isnan()) and expected.isnan().any()
    averaged = ops._native_patch_max(x, w, (1, 1), relu_mean=True)
    assert averaged[1].isnan().all() and not averaged[0].isnan().any()


@needs_compiler
@pytest.mark.parametrize("lanes", [4, 8, 16])          # the widths a host may get (SSE/NEON, AVX2, AVX-512), built here
def test_native_kernel_is_right_at_every_vector_width(fresh_native, monkeypatch, lanes):
    if lanes == 16 and not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        pytest.skip("this host cannot run AVX-512 code")
    monkeypatch.setattr(native, "vector_lanes", lambda: lanes)
    assert fresh_native.tile_columns() == 2 * lanes
    g = torch.Generator().manual_seed(7)
    x, w = torch.randn(2, 1, 31, 96, generator=g), torch.randn(19, 1, 3, 38, generator=g)
    torch.testing.assert_close(ops._native_patch_max(x, w, (1, 1)), _expected(x, w, (1, 1)), rtol=1e-5, atol=1e-4)


@needs_compiler
def test_native_library_is_built_once_per_machine(fresh_native, monkeypatch):
    lib = fresh_native.library()
    built = native.library_path(native.compiler())
    folder = Path(os.environ["ELMARC_NATIVE_DIR"])
    assert lib is not None and built.parent == folder / f"u{os.getuid()}" and built.is_file()
    assert [p.name for p in built.parent.iterdir()] == [built.name]          # no partial file left beside it
    monkeypatch.setattr(native, "_compile", lambda *a: pytest.fail("compiled again although built"))
    assert NativeKernels().library() is not None                          # a later job loads it as built


@needs_compiler
def test_a_damaged_native_library_is_rebuilt_not_loaded(fresh_native):
    target = native.library_path(native.compiler())
    target.write_bytes(b"\x7fELF half a library")                        # e.g. a copy cut short
    assert fresh_native.library() is not None
    assert target.stat().st_size > 1000
    g = torch.Generator().manual_seed(8)
    x, w = torch.randn(1, 1, 12, 96, generator=g), torch.randn(4, 1, 1, 38, generator=g)
    torch.testing.assert_close(ops._native_patch_max(x, w, (0, 0)), _expected(x, w, (0, 0)), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("how", ["no compiler", "disabled", "compiler fails", "compiler cannot run"])
def test_without_the_native_kernel_the_layer_runs_the_other_forms(fresh_native, monkeypatch, tmp_path, how):
    if how == "no compiler":
        monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    elif how == "compiler cannot run":
        unusable = tmp_path / "unusable-cxx"
        unusable.write_text("not a program")
        unusable.chmod(0o644)                             # found on PATH lookups by path, but not executable
        monkeypatch.setattr(native, "compiler", lambda: str(unusable))
    else:
        broken = tmp_path / "broken-cxx"
        broken.write_text("#!/bin/sh\necho 'error: no' >&2\nexit 1\n")
        broken.chmod(0o755)
        monkeypatch.setenv("CXX", str(broken))
    policy = SpeedPolicy("auto", native=how != "disabled")
    assert policy.native.library() is None
    g = torch.Generator().manual_seed(9)
    x, w = torch.randn(2, 1, 25, 96, generator=g), torch.randn(6, 1, 3, 38, generator=g)
    with policy.with_pinned("native"):                    # not a candidate: the mode decides
        got = ops.conv2d_max_freq(x, w, (1, 1))
    torch.testing.assert_close(got, _expected(x, w, (1, 1)), rtol=1e-5, atol=1e-4)
    (key,) = policy.timings
    assert key.endswith("forms=offsets,patches,plain")


# ----------------------------------------------------------------------------- nobody else's code runs
PLANTED = """
#include <stdio.h>
__attribute__((constructor)) static void planted(void) { FILE* f = fopen("%s", "w"); if (f) { fputs("ran", f); fclose(f); } }
extern "C" long patch_max_tile_columns() { return 0; }
"""


def plant(path, marker, owner=None):
    """A library whose constructor writes `marker` when it is loaded, at `path` (owned by `owner`)."""
    source = path.with_suffix(".cpp")
    path.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(PLANTED % marker)
    subprocess.run([native.compiler(), "-shared", "-fPIC", str(source), "-o", str(path)], check=True)
    source.unlink()
    if owner is not None:
        os.chown(path, owner, owner)
    return path


@needs_compiler
@pytest.mark.parametrize("where", ["shared cache, the name anyone can compute", "this user's folder, another owner",
                                   "this user's folder, group-writable", "shared temp folder, cache unwritable",
                                   "this user's folder made by another user"])
def test_a_library_planted_by_another_user_never_runs(fresh_native, tmp_path, monkeypatch, where):
    """The kernel is built in a folder only this user can write and loaded only from a file this user owns
    and nobody else can write, checked on the opened file; there is no shared temp fallback."""
    import tempfile

    marker = tmp_path / "planted-ran"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    name = native.library_name(native.compiler())
    folder = Path(os.environ["ELMARC_NATIVE_DIR"])
    mine = folder / f"u{os.getuid()}"
    if where.startswith("shared cache"):
        plant(folder / name, marker)                                        # where an earlier version built it
    elif where == "this user's folder, another owner":
        if os.getuid() != 0:
            pytest.skip("giving a file to another user needs root")
        plant(mine / name, marker, owner=65534)
    elif where == "this user's folder, group-writable":
        plant(mine / name, marker).chmod(0o775)
    elif where.startswith("shared temp"):
        plant(Path(tempfile.gettempdir()) / "elmarc-native" / name, marker)
        folder.mkdir()
        monkeypatch.setattr(native, "private_dir", lambda base: None if base == folder else real_private(base))
    else:
        if os.getuid() != 0:
            pytest.skip("making a folder another user's needs root")
        plant(mine / name, marker)
        os.chown(mine, 65534, 65534)
    lib = fresh_native.library()
    assert not marker.exists(), "a planted library ran"
    assert lib is not None and lib.patch_max_tile_columns() == 2 * native.vector_lanes()   # this user's own build runs
    g = torch.Generator().manual_seed(11)
    x, w = torch.randn(1, 1, 12, 96, generator=g), torch.randn(4, 1, 1, 38, generator=g)
    torch.testing.assert_close(ops._native_patch_max(x, w, (0, 0)), _expected(x, w, (0, 0)), rtol=1e-5, atol=1e-4)
    if where.startswith("shared temp"):
        (Path(tempfile.gettempdir()) / "elmarc-native" / name).unlink()
        (Path(tempfile.gettempdir()) / "elmarc-native").rmdir()


real_private = native.private_dir


def test_a_signal_during_the_build_leaves_no_temporary(tmp_path, monkeypatch):
    """The partial library is named before anything creates it: a stop the moment a file appears, or while the
    compiler writes it, removes it."""
    from elmarc.errors import Stopped

    def compiler_stopped(cmd, **kwargs):
        Path(cmd[-1]).write_bytes(b"half a library")        # the compiler's output, cut short
        raise Stopped(signal.SIGTERM)

    real_open = os.open

    def created_then_stopped(path, flags, *args, **kwargs):
        real_open(path, flags, *args, **kwargs)
        raise Stopped(signal.SIGTERM)

    target = tmp_path / "build" / "libelmarc.so"
    for stop_at_create in (False, True):
        with monkeypatch.context() as m:
            m.setattr(native.subprocess, "run", compiler_stopped)
            if stop_at_create:
                m.setattr(native.os, "open", created_then_stopped)
            with pytest.raises(Stopped):
                native._compile("c++", target)
        assert list(target.parent.iterdir()) == [], stop_at_create
