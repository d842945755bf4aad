"""Fetch the training and benchmark data into the EDSR layout the configs read.

``python -m lit_sisr.data.download div2k flickr2k benchmark [--root DIR]`` downloads each
archive from its public host with a progress bar, resumes a partial download (HTTP ``Range``),
verifies its checksums, and unpacks it into the data root:

- ``div2k``: ``<root>/DIV2K/DIV2K_train_HR`` (0001-0800) and ``<root>/DIV2K/DIV2K_valid_HR`` (0801-0900);
- ``flickr2k``: ``<root>/Flickr2K/Flickr2K_HR`` (HR only: the project makes LR with its MATLAB bicubic);
- ``benchmark``: ``<root>/benchmark/<Set>/HR`` and ``LR_bicubic/X<s>`` (Set5, Set14, B100, Urban100).

The root is ``--root``, else ``LIT_SISR_DATA``, else ``./data`` (``paths.data_dir`` in
conf/paths/default.yaml). Archives, partial downloads (``*.part``), checksum lock files
(``*.sha256``, in ``sha256sum`` format) and "installed" markers (``*.installed.json``) live in
``<root>/downloads/``. A second run finds the markers and does nothing.

Checksums (the :data:`DATASETS` table). None of these hosts publishes a checksum; the values
pinned here were published by others, and could not be checked from the machine this was
written on (it reaches package registries only):

- ``DIV2K_train_HR.zip``: sha256 ``9d0b9c46...c335`` and 3,530,603,713 bytes, the Git LFS id of the
  copy in the Hugging Face dataset goodfellowliu/DIV2K, and the same value recorded by an
  unrelated project downloading from the ETH server; md5 from Coloquinte/torchSR
  (``torchsr/datasets/div2k.py``).
- ``DIV2K_valid_HR.zip``: sha256 ``20dd31fd...00fc``, 448,993,893 bytes (recorded by unrelated
  projects from the ETH server); md5 from torchSR.
- ``benchmark.tar``: sha256 ``80c21c33...93e8``, 250,112,000 bytes (one project's records); md5 from
  torchSR (``torchsr/datasets/benchmarks.py``).
- ``Flickr2K.tar``: md5 only (torchSR, ``torchsr/datasets/flickr2k.py``); its sha256 is not
  pinned: the first verified download records it in ``Flickr2K.tar.sha256`` and later downloads
  are checked against that lock file.

An archive with no pinned checksum at all (``sha256`` and ``md5`` both None) is trusted on first
use: its sha256 is recorded in the lock file, with a warning, and verified from then on.
A checksum mismatch removes the downloaded file and extracts nothing.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

from lit_sisr.errors import UserError

CHUNK = 1 << 20


class DownloadError(UserError, RuntimeError):
    """A download or an archive that cannot be used; the message names the file or URL."""


@dataclass(frozen=True)
class Archive:
    """One archive: where it comes from, what it must hash to, where its contents go.

    ``extract_to``: folder under the data root the archive is unpacked into ("" = the root).
    ``provides``: folders under the data root it must create (non-empty); they also tell whether
    a dataset is already present. ``members``: path prefixes inside the archive to extract
    (None = everything).
    """

    file: str
    url: str
    extract_to: str
    provides: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    members: tuple[str, ...] | None = None


DATASETS: dict[str, tuple[Archive, ...]] = {
    "div2k": (
        Archive(
            file="DIV2K_train_HR.zip",
            url="https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
            extract_to="DIV2K",
            provides=("DIV2K/DIV2K_train_HR",),
            sha256="9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
            md5="bdc2d9338d4e574fe81bf7d158758658",
            size=3530603713,
        ),
        Archive(
            file="DIV2K_valid_HR.zip",
            url="https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
            extract_to="DIV2K",
            provides=("DIV2K/DIV2K_valid_HR",),
            sha256="20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
            md5="9fcdda83005c5e5997799b69f955ff88",
            size=448993893,
        ),
    ),
    "flickr2k": (
        Archive(
            file="Flickr2K.tar",
            url="https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar",
            extract_to="",
            provides=("Flickr2K/Flickr2K_HR",),
            sha256=None,  # not published anywhere we could find: recorded in the lock file
            md5="5d3f39443d5e9489bff8963f8f26cb03",
            members=("Flickr2K/Flickr2K_HR/",),
        ),
    ),
    "benchmark": (
        Archive(
            file="benchmark.tar",
            url="https://cv.snu.ac.kr/research/EDSR/benchmark.tar",
            extract_to="",
            provides=("benchmark/Set5/HR", "benchmark/Set14/HR", "benchmark/B100/HR"),
            sha256="80c21c333bbf6ceb5308b7243761f8284478274413a97b96f1d63e9045fd93e8",
            md5="4ace41d33c2384b97e6b320cd0afd6ba",
            size=250112000,
        ),
    ),
}


def default_root() -> Path:
    """``LIT_SISR_DATA``, else ``./data``: what ``paths.data_dir`` resolves to (conf/paths/default.yaml)."""
    return Path(os.environ.get("LIT_SISR_DATA") or Path.cwd() / "data")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Download with resume


class _Incomplete(Exception):
    """The connection ended before the whole file arrived (retried with Range)."""


def _fetch_once(url: str, part: Path, progress: bool, timeout: float, name: str) -> None:
    """One HTTP request: continue ``part`` from its size when the server honours Range, else
    start over. Raises :class:`_Incomplete` when the body ends early."""
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "lit-sisr-download"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to send: the part is complete (the hash will tell)
            return
        raise
    with response:
        resumed = offset > 0 and response.status == 206 and \
            response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        if not resumed:
            offset = 0  # a server without Range support sends the whole file again
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with part.open("ab" if resumed else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
            disable=not progress, leave=False,
        ) as bar:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as err:
                raise _Incomplete(str(err)) from None
    if total is not None and part.stat().st_size < total:
        raise _Incomplete(f"{part.stat().st_size} of {total} bytes")


def fetch(url: str, part: Path, *, progress: bool = True, retries: int = 5, backoff: float = 2.0,
          timeout: float = 60.0) -> None:
    """Download ``url`` into ``part``, resuming it on dropped connections (``retries`` times)."""
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, progress, timeout, part.name.removesuffix(".part"))
            return
        except urllib.error.HTTPError as err:
            if err.code < 500 or attempt == retries:
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
            reason = f"HTTP {err.code}"
        except (_Incomplete, urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as err:
            if attempt == retries:
                raise DownloadError(f"{url}: download failed after {retries + 1} attempts ({err}); "
                                    f"run again to resume from {part}") from None
            reason = str(err) or type(err).__name__
        _say(f"{part.name.removesuffix('.part')}: connection lost ({reason}); resuming")
        time.sleep(backoff * (attempt + 1))


# ---------------------------------------------------------------------------------------------
# Checksums


def file_hashes(path: Path) -> dict[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}


def _lock_path(downloads: Path, archive: Archive) -> Path:
    return downloads / f"{archive.file}.sha256"


def _read_lock(lock: Path) -> str | None:
    text = lock.read_text().strip() if lock.is_file() else ""
    return text.split()[0] if text else None


def _expected(archive: Archive, lock: Path) -> dict[str, tuple[str, str]]:
    """Hash name -> (expected value, where it comes from)."""
    expected = {}
    recorded = None if archive.sha256 else _read_lock(lock)
    if archive.sha256:
        expected["sha256"] = (archive.sha256, "pinned")
    elif recorded:
        expected["sha256"] = (recorded, f"recorded in {lock}")
    if archive.md5:
        expected["md5"] = (archive.md5, "pinned")
    return expected


def verify(path: Path, archive: Archive, lock: Path) -> str:
    """Check ``path`` against the pinned hashes (or the lock file); returns its sha256. On a
    mismatch the file is removed and :class:`DownloadError` names it. Records the sha256 in the
    lock file (with a warning when nothing was pinned)."""
    _say(f"{archive.file}: verifying checksum")
    actual = file_hashes(path)
    for kind, (value, origin) in _expected(archive, lock).items():
        if actual[kind] != value.lower():
            path.unlink(missing_ok=True)
            raise DownloadError(
                f"{archive.file} from {archive.url}: {kind} mismatch (got {actual[kind]}, expected {value}, {origin}); "
                "the file was removed and nothing was extracted"
            )
    if not (archive.sha256 or archive.md5) and not _read_lock(lock):
        _say(f"warning: {archive.file} has no published checksum; recorded its sha256 {actual['sha256']} in {lock} "
             "(trusted on first use: later downloads are verified against it)")
    lock.write_text(f"{actual['sha256']}  {archive.file}\n")
    return actual["sha256"]


# ---------------------------------------------------------------------------------------------
# Extraction


def _member_path(name: str, archive: Archive) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise DownloadError(f"{archive.file}: unsafe path {name!r} in the archive; refused to extract")
    return PurePosixPath(*[p for p in path.parts if p != "."])


def _wanted(path: PurePosixPath, archive: Archive) -> bool:
    return archive.members is None or any(f"{path}/".startswith(prefix) for prefix in archive.members)


def _unpack(path: Path, archive: Archive, into: Path) -> None:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                member = _member_path(info.filename, archive)
                if _wanted(member, archive) and not info.is_dir():
                    target = into / member
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
        return
    try:
        with tarfile.open(path) as tar:
            # Plain files only (no links or devices), each checked to stay inside ``into``.
            members = [m for m in tar.getmembers()
                       if m.isfile() and _wanted(_member_path(m.name, archive), archive)]
            safety = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(into, members=members, **safety)
    except tarfile.TarError as err:
        raise DownloadError(f"{archive.file}: not a readable zip or tar archive ({err})") from None


def _merge(src: Path, dst: Path) -> None:
    """Move the tree ``src`` into ``dst`` (renames; files in ``dst`` with the same name are replaced)."""
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        target = dst / item.name
        if item.is_dir() and target.is_dir():
            _merge(item, target)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)


def extract(path: Path, archive: Archive, root: Path) -> None:
    """Unpack into a temporary folder beside the data, check it holds ``provides``, then move it in:
    a failure leaves no partial data."""
    tmp = root / f".{archive.file}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    _say(f"{archive.file}: extracting into {root / archive.extract_to}")
    try:
        _unpack(path, archive, tmp)
        for provided in archive.provides:
            inside = tmp / Path(provided).relative_to(archive.extract_to or ".")
            if not inside.is_dir() or not any(inside.iterdir()):
                raise DownloadError(f"{archive.file}: the archive has no {inside.relative_to(tmp)}/; "
                                    f"expected {', '.join(archive.provides)} under {root}")
        _merge(tmp, root / archive.extract_to)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Datasets


def _present(root: Path, archive: Archive) -> bool:
    return all((root / p).is_dir() and any((root / p).iterdir()) for p in archive.provides)


def install(archive: Archive, root: Path, *, keep_archive: bool = False, progress: bool = True,
            retries: int = 5, backoff: float = 2.0, timeout: float = 60.0) -> str:
    """Download, verify and extract one archive unless already installed; returns what was done
    ("installed", "up to date" or "present")."""
    downloads = root / "downloads"
    marker = downloads / f"{archive.file}.installed.json"
    lock = _lock_path(downloads, archive)
    if _present(root, archive):
        if marker.is_file():
            recorded = json.loads(marker.read_text()).get("sha256")
            expected = _expected(archive, lock).get("sha256", (recorded, ""))[0]
            if recorded == expected:
                return "up to date"
        else:
            _say(f"{archive.file}: {', '.join(archive.provides)} already present under {root} (not downloaded "
                 "by this tool): left as is; remove it to download again")
            return "present"
    downloads.mkdir(parents=True, exist_ok=True)
    final, part = downloads / archive.file, downloads / f"{archive.file}.part"
    if final.is_file():  # kept from an earlier run: verify it rather than downloading again
        os.replace(final, part)
    fetch(archive.url, part, progress=progress, retries=retries, backoff=backoff, timeout=timeout)
    sha256 = verify(part, archive, lock)
    os.replace(part, final)
    extract(final, archive, root)
    marker.write_text(json.dumps({"file": archive.file, "url": archive.url, "sha256": sha256,
                                  "provides": list(archive.provides)}, indent=1) + "\n")
    if not keep_archive:
        final.unlink()
    return "installed"


def download_datasets(names: Sequence[str], root: str | Path | None = None, *,
                      table: Mapping[str, Sequence[Archive]] = DATASETS, keep_archives: bool = False,
                      progress: bool = True, retries: int = 5, backoff: float = 2.0,
                      timeout: float = 60.0) -> dict[str, str]:
    """Install the datasets ``names`` (keys of ``table``) under ``root``; returns archive -> status."""
    unknown = [n for n in names if n not in table]
    if unknown:
        raise DownloadError(f"unknown dataset(s) {', '.join(unknown)}; expected one of: {', '.join(table)}")
    root = Path(root) if root is not None else default_root()
    done = {}
    for name in names:
        for archive in table[name]:
            done[archive.file] = install(archive, root, keep_archive=keep_archives, progress=progress,
                                         retries=retries, backoff=backoff, timeout=timeout)
            _say(f"{archive.file}: {done[archive.file]} ({', '.join(str(root / p) for p in archive.provides)})")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lit_sisr.data.download",
        description="Download SR datasets into the EDSR layout (resumable, checksum-verified, idempotent).",
    )
    parser.add_argument("datasets", nargs="+", choices=sorted(DATASETS), help="datasets to install")
    parser.add_argument("--root", help="data root (default: $LIT_SISR_DATA, else ./data)")
    parser.add_argument("--keep-archives", action="store_true", help="keep the archives in <root>/downloads")
    parser.add_argument("--retries", type=int, default=5, help="resume attempts after a dropped connection")
    args = parser.parse_args(argv)
    try:
        download_datasets(args.datasets, args.root, keep_archives=args.keep_archives, retries=args.retries)
    except (DownloadError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
