"""Fetch the training and benchmark data into the EDSR layout the configs read.

``python -m lit_sisr.data.download div2k flickr2k benchmark urban100 manga109 [--root DIR]``
downloads each archive with a progress bar, resumes a partial download (HTTP ``Range``), verifies
its checksums, and unpacks it into the data root. Each archive has an ordered list of sources
(``Archive.urls``: the original host first, then mirrors) that must all serve the same bytes,
checked against the same checksums: a source that fails (HTTP error, no connection after the
retries, a checksum mismatch) is reported and the next one is tried; when every source fails the
command ends in one ``error:`` line naming the archive and each source's failure, and nothing
is extracted.

- ``div2k``: ``<root>/DIV2K/DIV2K_train_HR`` (0001-0800) and ``<root>/DIV2K/DIV2K_valid_HR`` (0801-0900);
- ``flickr2k``: ``<root>/Flickr2K/Flickr2K_HR`` (HR only: the project makes LR with its MATLAB bicubic);
- ``benchmark``: ``<root>/benchmark/<Set>/HR`` and ``LR_bicubic/X<s>`` (Set5, Set14, B100, Urban100);
- ``urban100``: ``<root>/benchmark/Urban100/HR`` only (another host than ``benchmark``: the Hugging Face
  copy of Urban100 by eugenesiow, ``data/Urban100_HR.tar.gz``, folder ``Urban100_HR/``);
- ``manga109``: ``<root>/benchmark/Manga109/HR`` only (the Hugging Face copy goodfellowliu/Manga109,
  ``Manga109.zip``; its ``GTmod12`` folder, BasicSR's HR images cropped to a multiple of 12, is taken as
  HR). Manga109's own site hands the images out only through a request form.

The HR-only sets get their LR images from ``python -m lit_sisr.data.make_lr <root>/benchmark/<Set>``
(MATLAB-exact bicubic, the same as the EDSR files). Hugging Face files are also tried through the public
mirror hf-mirror.com (same files, same checksums).

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
- the second source of ``DIV2K_train_HR.zip`` is that Hugging Face copy (same sha256, by its LFS id);
  ``DIV2K_valid_HR.zip`` is tried there too (expected identical, verified against the same pins).
- ``Urban100_HR.tar.gz`` and ``Manga109.zip``: no archive checksum is published (deepinv pins an md5
  of the extracted Urban100 folder, not of the archive): like Flickr2K, the first verified download
  records the sha256 in the lock file. Neither host nor the folder layout inside ``Manga109.zip``
  (``GTmod12/``, as in BasicSR's copies) could be checked from the machine this was written on; a
  different layout stops with "the archive has no ..." and extracts nothing.
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

    ``urls``: its sources, tried in this order; all must serve the same bytes (one set of checksums).
    ``extract_to``: folder under the data root the archive is unpacked into ("" = the root).
    ``provides``: folders under the data root it must create (non-empty); they also tell whether
    a dataset is already present. ``members``: path prefixes inside the archive to extract
    (None = everything). ``rename``: (folder in the archive, folder under ``extract_to``) pairs;
    when given, only files under such a folder (at any depth) are extracted, moved to the new
    folder (e.g. ``Urban100_HR`` -> ``benchmark/Urban100/HR``).
    """

    file: str
    urls: tuple[str, ...]
    extract_to: str
    provides: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    members: tuple[str, ...] | None = None
    rename: tuple[tuple[str, str], ...] = ()


def _hf(repo: str, path: str) -> tuple[str, ...]:
    """A file of a Hugging Face dataset repository: its own URL, then the hf-mirror.com copy."""
    return tuple(f"https://{host}/datasets/{repo}/resolve/main/{path}" for host in ("huggingface.co", "hf-mirror.com"))


DATASETS: dict[str, tuple[Archive, ...]] = {
    "div2k": (
        Archive(
            file="DIV2K_train_HR.zip",
            urls=("https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip", *_hf("goodfellowliu/DIV2K", "DIV2K_train_HR.zip")),
            extract_to="DIV2K",
            provides=("DIV2K/DIV2K_train_HR",),
            sha256="9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
            md5="bdc2d9338d4e574fe81bf7d158758658",
            size=3530603713,
        ),
        Archive(
            file="DIV2K_valid_HR.zip",
            urls=("https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", *_hf("goodfellowliu/DIV2K", "DIV2K_valid_HR.zip")),
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
            urls=("https://cv.snu.ac.kr/research/EDSR/Flickr2K.tar",),
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
            urls=("https://cv.snu.ac.kr/research/EDSR/benchmark.tar",),
            extract_to="",
            provides=("benchmark/Set5/HR", "benchmark/Set14/HR", "benchmark/B100/HR"),
            sha256="80c21c333bbf6ceb5308b7243761f8284478274413a97b96f1d63e9045fd93e8",
            md5="4ace41d33c2384b97e6b320cd0afd6ba",
            size=250112000,
        ),
    ),
    "urban100": (
        Archive(
            file="Urban100_HR.tar.gz",
            urls=_hf("eugenesiow/Urban100", "data/Urban100_HR.tar.gz"),
            extract_to="benchmark",
            provides=("benchmark/Urban100/HR",),
            rename=(("Urban100_HR", "Urban100/HR"),),
            # no published archive checksum: recorded in the lock file
        ),
    ),
    "manga109": (
        Archive(
            file="Manga109.zip",
            urls=_hf("goodfellowliu/Manga109", "Manga109.zip"),
            extract_to="benchmark",
            provides=("benchmark/Manga109/HR",),
            rename=(("GTmod12", "Manga109/HR"),),
            # no published archive checksum: recorded in the lock file
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


def verify(path: Path, archive: Archive, lock: Path, url: str) -> str:
    """Check ``path`` against the pinned hashes (or the lock file); returns its sha256. On a
    mismatch the file is removed and :class:`DownloadError` names it. Records the sha256 in the
    lock file (with a warning when nothing was pinned)."""
    _say(f"{archive.file}: verifying checksum")
    actual = file_hashes(path)
    for kind, (value, origin) in _expected(archive, lock).items():
        if actual[kind] != value.lower():
            path.unlink(missing_ok=True)
            raise DownloadError(
                f"{archive.file} from {url}: {kind} mismatch (got {actual[kind]}, expected {value}, {origin}); "
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


def _target(path: PurePosixPath, archive: Archive) -> PurePosixPath | None:
    """Where a member goes under the unpacking folder (None: not extracted)."""
    if not _wanted(path, archive):
        return None
    if not archive.rename:
        return path
    for folder, new in archive.rename:
        n = len(PurePosixPath(folder).parts)
        for i in range(len(path.parts) - n):
            if path.parts[i : i + n] == PurePosixPath(folder).parts:
                return PurePosixPath(new, *path.parts[i + n :])
    return None


def _unpack(path: Path, archive: Archive, into: Path) -> None:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                target = _target(_member_path(info.filename, archive), archive)
                if target is not None and not info.is_dir():
                    out = into / target
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, out.open("wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
        return
    try:
        with tarfile.open(path) as tar:
            # Plain files only (no links or devices), each checked to stay inside ``into``.
            for member in tar:
                target = _target(_member_path(member.name, archive), archive) if member.isfile() else None
                if target is None:
                    continue
                out = into / target
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
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


def _download(archive: Archive, part: Path, lock: Path, *, progress: bool, retries: int, backoff: float,
              timeout: float, downloads: Path | None) -> tuple[str, str]:
    """Fetch and verify ``archive`` into ``part`` from its sources in turn; returns (url, sha256).

    A source that fails is reported and the next one starts afresh. When all fail, the error names
    each source's failure; the partial file is kept only when the last failure was a dropped
    connection (a re-run resumes it), and ``downloads`` (the folder, when this call created it) is
    removed if it is left empty."""
    failures = []
    for i, url in enumerate(archive.urls):
        if i:
            part.unlink(missing_ok=True)  # another host: start over rather than mix bytes
        try:
            fetch(url, part, progress=progress, retries=retries, backoff=backoff, timeout=timeout)
            return url, verify(part, archive, lock, url)
        except DownloadError as err:
            failures.append(str(err))
            if i + 1 < len(archive.urls):
                _say(f"{archive.file}: {err}; trying the next source")
    if part.is_file() and not part.stat().st_size:
        part.unlink()
    if downloads is not None and downloads.is_dir() and not any(downloads.iterdir()):
        downloads.rmdir()
    if len(failures) == 1:
        raise DownloadError(failures[0])
    listed = "; ".join(f"({i}) {f}" for i, f in enumerate(failures, 1))
    raise DownloadError(f"{archive.file}: all {len(failures)} sources failed: {listed}")


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
    created = not downloads.exists()
    downloads.mkdir(parents=True, exist_ok=True)
    final, part = downloads / archive.file, downloads / f"{archive.file}.part"
    if final.is_file():  # kept from an earlier run: verify it rather than downloading again
        os.replace(final, part)
    url, sha256 = _download(archive, part, lock, progress=progress, retries=retries, backoff=backoff,
                            timeout=timeout, downloads=downloads if created else None)
    os.replace(part, final)
    extract(final, archive, root)
    marker.write_text(json.dumps({"file": archive.file, "url": url, "sha256": sha256,
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
