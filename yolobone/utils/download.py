"""Fetch one file into a cache folder so that it appears there only complete and verified.

    path = download_file(url, cache / "resnet50-11ad3fa6.pth", hash_prefix="11ad3fa6")

The bytes go to a temporary file beside the destination and are renamed onto it (atomic on one file system) only
after the transfer reached the server's Content-Length and, with a hash prefix, the sha256 starts with it (the rule
torch hub and torchvision apply to the hex digits in a weights file's name). A failed, cut or wrong transfer raises
DownloadError with one line and leaves nothing behind. YOLOBONE_OFFLINE=1 refuses every download at once (machines
without a network fail fast instead of waiting for a timeout).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO, Optional, Tuple

from tqdm import tqdm

from yolobone.utils.errors import YoloboneError
from yolobone.utils.logging import LOGGER

OFFLINE_ENV = "YOLOBONE_OFFLINE"
HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # resnet50-11ad3fa6.pth -> 11ad3fa6 (torch.hub's convention)
CHUNK = 1 << 20


class DownloadError(YoloboneError, ValueError):
    """A download that failed; the message says why in one line (no connection, cut transfer, wrong hash)."""


def offline() -> bool:
    """True when YOLOBONE_OFFLINE asks for no download at all."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def hash_prefix_of(filename: str) -> Optional[str]:
    """The sha256 prefix a weights file name carries ('resnet50-11ad3fa6.pth' -> '11ad3fa6'), or None."""
    m = HASH_IN_NAME.search(filename)
    return m.group(1) if m else None


def _copy(url: str, out: BinaryIO, timeout: float) -> Tuple[int, str, Optional[int]]:
    """Stream url into out: (bytes written, sha256 hex digest, the Content-Length the server announced)."""
    digest, size = hashlib.sha256(), 0
    request = urllib.request.Request(url, headers={"User-Agent": "yolobone"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                      desc=os.path.basename(urllib.parse.urlparse(url).path)) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise DownloadError(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DownloadError(f"no connection: {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:  # resets, timeouts, a server that hangs up mid-header
        raise DownloadError(f"{type(e).__name__}: {e}".rstrip(": ")) from None
    return size, digest.hexdigest(), total


def download_file(url: str, dst: Path, hash_prefix: Optional[str] = None, timeout: float = 30.0) -> Path:
    """Download url to dst (see the module docstring); returns dst."""
    if offline():
        raise DownloadError(f"{OFFLINE_ENV} is set")
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    LOGGER.info(f"Downloading {url} to {dst}")
    try:
        with os.fdopen(fd, "wb") as f:
            size, sha256, expected = _copy(url, f, timeout)
        if expected is not None and size != expected:
            raise DownloadError(f"the transfer ended after {size} of {expected} bytes")
        if hash_prefix and not sha256.startswith(hash_prefix):
            raise DownloadError(f"its sha256 {sha256[:16]}... does not start with {hash_prefix}, the hash in its name")
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    LOGGER.info(f"Downloaded {dst.name} ({size / 1e6:.1f} MB, sha256 {sha256[:12]}...)")
    return dst


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_from_hub(repo_id: str, filename: str) -> Path:
    """A Hugging Face Hub file through huggingface_hub (its cache; it writes `.incomplete` files and renames them),
    then checked against the sha256 the hub names large files by; a mismatch removes the file."""
    if offline():
        raise DownloadError(f"{OFFLINE_ENV} is set")
    from huggingface_hub import hf_hub_download
    try:
        path = Path(hf_hub_download(repo_id, filename))
    except Exception as e:  # huggingface_hub raises many types (HTTP, offline mode, missing entry); all mean "failed"
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DownloadError(f"{type(e).__name__}: {text}".rstrip(": ")) from None
    blob = path.resolve()
    if re.fullmatch(r"[0-9a-f]{64}", blob.name) and _sha256(blob) != blob.name:
        blob.unlink()
        path.unlink(missing_ok=True)
        raise DownloadError(f"its sha256 differs from the hub's {blob.name[:16]}...; the file was removed")
    return path
