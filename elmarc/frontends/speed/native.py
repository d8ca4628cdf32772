"""C++ kernels compiled on the machine that runs them, for the forms no composition of library calls does well.

Why our own code: a max over frequency offsets taken between matrix-library calls costs one pass
over each product block per offset (a quarter of the time of the 38-band timbral layers); in a
register-tiled product the running maximum never leaves the registers (kernels/patch_max.cpp).

On first use the source is compiled with the host's C++ compiler (``$CXX``, else ``c++``/``g++``)
for the host's instruction set (``-march=native``; the vector width follows torch's CPU capability,
so ``ATEN_CPU_CAPABILITY=avx2`` holds it to AVX2 too) into ``<cache_dir>/native/`` (an extraction's
cache folder; ``$ELMARC_NATIVE_DIR`` when set; ``~/.cache/elmarc/native`` for models called directly),
one file per source, flags, compiler and CPU, so a cache shared by a cluster of several CPU
generations keeps one library per kind of node. A damaged library is rebuilt; without a compiler,
or with ``extract.native_kernels=false``, ``NativeKernels.library()`` is None and the forms built on
it are simply not candidates. Each job's speed policy holds one NativeKernels (policy.py).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import logging
import os
import platform
import secrets
import shutil
import stat
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from ...resources import cpu_info

log = logging.getLogger(__name__)
SOURCE = Path(__file__).with_name("kernels") / "patch_max.cpp"
ROW_CHUNK = 96                       # rows whose patches stay in cache while every column tile passes
PARTS = 16                           # row parts, whatever the thread count: each sums on its own, added in order

_loads = itertools.count()        # a new spelling of the path per load (see _load)


def vector_lanes() -> int:
    """fp32 lanes of the widest vector torch uses on this CPU: 16 (AVX-512), 8 (AVX2), else 4."""
    capability = torch.backends.cpu.get_cpu_capability()
    return 16 if capability.startswith("AVX512") else 8 if capability == "AVX2" else 4


def compile_flags() -> list[str]:
    flags = ["-O3", "-march=native", "-shared", "-fPIC", f"-DVEC={vector_lanes()}"]
    if torch.backends.cpu.get_cpu_capability() == "AVX2":
        flags.append("-mno-avx512f")                    # held to AVX2 (or an AVX2 host, where it is a no-op)
    return flags


def compiler() -> str | None:
    """$CXX when set (None if it is not found: the user's choice is not second-guessed), else c++/g++/clang++."""
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"])
    return next((found for name in ("c++", "g++", "clang++") if (found := shutil.which(name))), None)


def build_dir(folder: Path | None) -> Path:
    """Where libraries are built: $ELMARC_NATIVE_DIR, else folder (a cache's native/), else the user's cache."""
    if os.environ.get("ELMARC_NATIVE_DIR"):
        return Path(os.environ["ELMARC_NATIVE_DIR"])
    return folder if folder is not None else home_dir()


def home_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "elmarc" / "native"


def private_dir(base: Path) -> Path | None:
    """base/u<uid>: a folder only this user can write (made 0700; an existing one must be a real folder owned
    by this user, its group and other write bits removed), or None where that cannot be had."""
    folder = base / f"u{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            log.warning("%s is not a folder of this user's: no native library is built or loaded there", folder)
            return None
        if st.st_mode & 0o022:
            os.chmod(folder, 0o700)
        return folder
    except OSError:
        return None


def _cpu_identity() -> str:
    """The model name and feature flags of this CPU: what -march=native compiles for."""
    info = cpu_info()
    if info:
        return "\n".join(info.get(key, "") for key in ("model name", "flags", "Features"))
    return platform.processor() or platform.machine()


def library_name(cxx: str) -> str:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    digest = hashlib.sha256("\0".join([SOURCE.read_text(), " ".join(compile_flags()), version, _cpu_identity()]).encode())
    return f"{SOURCE.stem}-{digest.hexdigest()[:20]}.so"


def library_path(cxx: str, folder: Path | None = None) -> Path | None:
    """Where this user's library for this compiler and CPU lives: in this user's own folder of build_dir(folder),
    else of the user's home cache; None where neither can be had (no native kernel then)."""
    own = private_dir(build_dir(folder)) or private_dir(home_dir())
    return own / library_name(cxx) if own is not None else None


def _compile(cxx: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # named before the compiler creates it (the folder is this user's alone), so a signal at any point leaves nothing
    partial = target.parent / f"{target.stem}.{secrets.token_hex(6)}.tmp"
    try:                                                # built aside, then renamed: readers never see half a file
        done = subprocess.run([cxx, *compile_flags(), str(SOURCE), "-o", str(partial)], capture_output=True, text=True)
        if done.returncode != 0:
            raise OSError(f"{cxx} could not compile {SOURCE}:\n{done.stderr[-2000:]}")
        os.chmod(partial, 0o700)                        # whatever the umask: nobody else may change it
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _load(target: Path) -> ctypes.CDLL:
    """Load the library at target only if this user built it: its folder and the file are owned by this user and
    writable by nobody else (so nobody else can swap them), checked on the opened folder, through which it is
    then loaded (a folder renamed in between is not the one loaded from)."""
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    folder = os.open(target.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | nofollow)
    try:
        for what, fd in (("folder", folder), ("file", None)):
            st = os.fstat(fd) if fd is not None else os.stat(target.name, dir_fd=folder, follow_symlinks=False)
            regular = stat.S_ISDIR(st.st_mode) if fd is not None else stat.S_ISREG(st.st_mode)
            if not regular or st.st_uid != os.getuid() or st.st_mode & 0o022:
                raise OSError(f"{target}: its {what} is not this user's own (owner {st.st_uid}, "
                              f"mode {stat.filemode(st.st_mode)}): not loaded")
        # a new spelling per load: glibc hands back an object loaded earlier under the same name without
        # looking at the file, and "/proc/self/fd/N" names repeat
        through = f"/proc/self/fd/{folder}/" + "./" * next(_loads) + target.name
        lib = ctypes.CDLL(through if os.path.isdir(f"/proc/self/fd/{folder}") else str(target))   # releases the GIL per call
    finally:
        os.close(folder)
    long, ptr = ctypes.c_long, ctypes.c_void_p
    lib.patch_max.argtypes = [ptr, long, long, long, long, long, long, ptr, long, long, ptr, long, ptr, long, long, long]
    lib.patch_max.restype = None
    if lib.patch_max_tile_columns() != 2 * vector_lanes():
        raise OSError(f"{target} was built for another vector width")
    return lib


class NativeKernels:
    """The compiled kernels one speed policy may use: enabled or not, built under folder (None: the user's cache)."""

    def __init__(self, enabled: bool = True, folder: Path | None = None):
        self.enabled, self.folder = bool(enabled), folder
        self._lock = threading.Lock()
        self._loaded: dict[str, ctypes.CDLL | None] = {}      # $CXX -> the library built with it (None: none)

    def __repr__(self) -> str:
        return f"NativeKernels(enabled={self.enabled}, folder={self.folder})"

    def library(self) -> ctypes.CDLL | None:
        """The compiled patch_max library for this machine, building it on first use; None where it cannot be."""
        if not self.enabled:
            return None
        key = os.environ.get("CXX", "")
        with self._lock:
            if key not in self._loaded:
                cxx = compiler()
                if cxx is None:
                    log.info("no C++ compiler found (set CXX): the native conv form is not a candidate")
                self._loaded[key] = _build_and_load(cxx, self.folder) if cxx else None
            return self._loaded[key]

    def tile_columns(self) -> int:
        return self.library().patch_max_tile_columns()

    def pack_columns(self, w: torch.Tensor) -> torch.Tensor:
        """w (K, O) as (tiles, K, NR), zero columns added to fill the last tile: each tile's K x NR
        panel contiguous, read in order by the kernel."""
        k, filters = w.shape
        nr = self.tile_columns()
        tiles = -(-filters // nr)
        padded = torch.zeros(k, tiles * nr, dtype=torch.float32)
        padded[:, :filters] = w
        return padded.view(k, tiles, nr).permute(1, 0, 2).contiguous()

    def patch_max(self, patches: torch.Tensor, kt: int, k: int, offsets: int, packed: torch.Tensor, filters: int,
                  per_clip: int | None = None) -> torch.Tensor:
        """See patch_max: run by this policy's library."""
        return patch_max(self.library(), patches, kt, k, offsets, packed, filters, per_clip)


def _build_and_load(cxx: str, folder: Path | None) -> ctypes.CDLL | None:
    for attempt in range(2):
        try:                                            # (running the compiler for its version may fail too)
            target = library_path(cxx, folder)
            if target is None:
                log.warning("no folder of this user's to build the native kernel in: the native conv form is not a candidate")
                return None
            if attempt or not target.is_file():
                _compile(cxx, target)
            return _load(target)
        except OSError as exc:                          # a damaged or foreign file: rebuilt once, then given up
            if attempt:
                log.warning("native kernel unavailable (%s): the native conv form is not a candidate", exc)
    return None


@functools.cache
def _pool(pid: int, n: int) -> ThreadPoolExecutor:
    """A pool of n threads for process pid (a forked child asks for its own: threads do not survive a fork)."""
    return ThreadPoolExecutor(n, thread_name_prefix="elmarc-native")


def _workers(n: int) -> ThreadPoolExecutor | None:
    return _pool(os.getpid(), n) if n > 1 else None


def patch_max(lib: ctypes.CDLL, patches: torch.Tensor, kt: int, k: int, offsets: int, packed: torch.Tensor, filters: int,
              per_clip: int | None = None) -> torch.Tensor:
    """For each row r of patches (n, lda), the maximum over offsets f < offsets of
    patches[r, f kt : f kt + k] @ W, W (k, filters) packed by pack_columns: (n, filters); or with
    per_clip, its ReLU summed over each clip's per_clip rows, (n // per_clip, filters) in fp32.

    Split by rows into PARTS parts that do not depend on the thread count, run over torch's CPU threads;
    with per_clip each part sums into its own slice, and the slices are added in part order: the same
    bits with one thread or many (a launcher that gives a job fewer cores changes nothing).
    """
    mr = lib.patch_max_tile_rows()
    n = patches.shape[0]
    assert patches.dtype == packed.dtype == torch.float32 and patches.is_contiguous() and packed.is_contiguous()
    assert packed.shape[1] == k and filters <= packed.shape[0] * packed.shape[2]
    row_tiles = -(-n // mr)
    parts = max(1, min(PARTS, row_tiles))
    bounds = [min(round(row_tiles * j / parts) * mr, n) for j in range(parts + 1)]
    if per_clip is None:
        out, sums = torch.empty(n, filters), None
    else:
        out, sums = None, torch.zeros(parts, n // per_clip, filters)

    def rows(j: int) -> None:
        lib.patch_max(patches.data_ptr(), patches.stride(0), bounds[j], bounds[j + 1], kt, k, offsets,
                      packed.data_ptr(), packed.shape[0], ROW_CHUNK,
                      out.data_ptr() if out is not None else None, filters,
                      sums[j].data_ptr() if sums is not None else None, per_clip or 1, n, filters)

    pool = _workers(min(torch.get_num_threads(), parts))
    if pool is None:
        for j in range(parts):
            rows(j)
    else:
        for done in [pool.submit(rows, j) for j in range(parts)]:
            done.result()
    if sums is None:
        return out
    total = sums[0]
    for j in range(1, parts):                       # in part order, element by element: no thread-dependent reduction
        total += sums[j]
    return total
