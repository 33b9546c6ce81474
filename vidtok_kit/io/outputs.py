"""The one output policy: where a command may write, checked before any work starts.

Every command that writes calls :func:`check_output` on each output path first, so a read-only
folder, a file where a folder is wanted (or the reverse), an existing file that was not meant to
be replaced, or an output that *is* one of the inputs ends in one :class:`InputError` line before a
model is built or a frame decoded, instead of a traceback (or a clobbered input) at the end.

Writing itself goes through :func:`atomic_write`: a temporary name in the same folder, renamed
over the final name only when complete, with the permissions an ordinary ``open()`` would have
given (``0666 & ~umask``, usually 0644); ``tempfile.mkstemp`` alone leaves files 0600, unreadable
to the rest of a team. :func:`removed_on_failure` removes a folder a failed run created, so a
failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from vidtok_kit.errors import InputError
from vidtok_kit.io.suffixes import check_writable_video

__all__ = [
    "OutputKind",
    "atomic_write",
    "atomic_write_text",
    "check_output",
    "check_writable_dir",
    "file_mode",
    "removed_on_failure",
    "temp_dir_beside",
]

OutputKind = Literal["file", "dir", "video"]


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (``os.umask`` sets it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a new file as ``open()`` would create it: ``0o666 & ~umask``."""
    return 0o666 & ~_umask()


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest existing ancestor (where ``mkdir(parents=True)`` would start)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(path.anchor or ".")


def check_writable_dir(directory: Path, *, what: str = "output", shown: Path | None = None) -> None:
    """Raise :class:`InputError` unless a file can be created in ``directory`` (or in the closest
    existing ancestor when it does not exist yet). ``os.access`` alone is not enough: root passes
    it everywhere, and read-only mounts or ``/sys`` refuse what the mode bits allow, so a temporary
    file is created and removed as well. ``shown`` is the path the message names (default
    ``directory``): the output the user typed, not its folder."""
    shown = shown or directory
    base = _nearest_existing(directory)
    if not base.is_dir():
        raise InputError(f"{what} {shown}: {base} is a file, not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise InputError(f"{what} {shown}: {base} is not writable")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vidtok-write-check-", dir=base)
    except OSError as exc:
        raise InputError(f"{what} {shown}: cannot create files in {base} ({exc.strerror or type(exc).__name__})") from None
    os.close(fd)
    os.unlink(probe)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output(
    path: str | os.PathLike[str],
    *,
    kind: OutputKind = "file",
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    what: str = "output",
    overwrite_hint: str = "pass --overwrite to replace it",
) -> Path:
    """Check that ``path`` may be written, before any work starts; returns it as a :class:`Path`.

    :param kind: ``"file"``: ``path`` is one file (an existing one is refused unless ``overwrite``);
        ``"dir"``: ``path`` is a folder, created if missing, that the command writes into (an
        existing folder is accepted; what may be replaced inside it is the command's rule);
        ``"video"``: a file the video writer can write (:func:`~vidtok_kit.io.suffixes.check_writable_video`).
    :param overwrite: the user asked to replace an existing file.
    :param inputs: files the command reads; writing over one of them is always refused.
    :param what: how the message names the output (``"--out"``, ``"-o"``).
    :param overwrite_hint: the end of the "exists" message, naming the command's own flag.
    :raises InputError: one line saying what is wrong and with which path.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise InputError(f"{what} {path} is also an input ({source}); choose another output path")
    if kind == "dir":
        if path.exists() and not path.is_dir():
            raise InputError(f"{what} {path} is an existing file; a directory is expected here")
        check_writable_dir(path, what=what)
        return path
    if path.is_dir():
        raise InputError(f"{what} {path} is an existing directory; a file path is expected here")
    if path.exists() and not overwrite:
        raise InputError(f"{what} {path} already exists; {overwrite_hint}")
    if kind == "video":
        check_writable_video(path)
    check_writable_dir(path.parent, what=what, shown=path)
    return path


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)``, then rename it over ``path``: no half-written file ever has the final name.

    The file ends with the umask's permissions (:func:`file_mode`), like any ``open()``-created file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, file_mode())  # mkstemp creates 0600; writers may also have recreated the file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def temp_dir_beside(path: str | os.PathLike[str]) -> Path:
    """A new hidden folder next to ``path``, to be renamed onto it when complete (same filesystem,
    so the rename is atomic). Its permissions follow the umask (``mkdtemp`` alone gives 0700)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of UTF-8 ``text`` (newlines written as given)."""
    path = Path(path)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline=""))
    return path


@contextlib.contextmanager
def removed_on_failure(directory: str | os.PathLike[str], *, keep: Callable[[Path], bool] = lambda _: False) -> Iterator[Path]:
    """Remove ``directory`` if the block fails and the folder did not exist before it.

    A folder that existed already is never touched (it may hold earlier results), and neither is
    one for which ``keep(directory)`` says it now holds something worth keeping (a training run
    with a finished checkpoint). Interrupts (Ctrl-C) count as failures too.
    """
    directory = Path(directory)
    created_here = not directory.exists()
    try:
        yield directory
    except BaseException:
        if created_here and directory.is_dir() and not keep(directory):
            shutil.rmtree(directory, ignore_errors=True)
        raise
