"""``lit_sisr.data.download`` against a local HTTP server: layout, idempotence, checksum
failures, dropped connections with and without Range support."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lit_sisr.data.download import Archive, DownloadError, download_datasets

FAST = {"progress": False, "backoff": 0.0, "timeout": 10.0}


class Server:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1. ``ranges``: honour ``Range`` requests
    (206), else always send the whole file (200). ``drop_after``: URL path -> k, send only the
    first k bytes of the next response for that path, then close the connection (once)."""

    def __init__(self, files: dict[str, bytes], ranges: bool = True, drop_after: dict[str, int] | None = None):
        self.files, self.ranges, self.drop_after = files, ranges, dict(drop_after or {})
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):  # HTTP/1.0: one request per connection
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                body, wanted = server.files.get(self.path), self.headers.get("Range")
                server.requests.append((self.path, wanted))
                if body is None:
                    self.send_error(404)
                    return
                start = int(wanted.split("=")[1].split("-")[0]) if wanted and server.ranges else 0
                if start >= len(body) > 0:
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                k = server.drop_after.pop(self.path, None)
                self.wfile.write(body[start:] if k is None else body[start : start + k])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def serve():
    servers: list[Server] = []

    def start(*args, **kwargs) -> Server:
        servers.append(Server(*args, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


IMAGES = {f"{i:04d}.png": os.urandom(3000 + i) for i in (1, 2)}


def div2k_like_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, data in IMAGES.items():
            zf.writestr(f"TOY_train_HR/{name}", data)
    return buffer.getvalue()


def benchmark_like_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [
            ("bench/Set5/HR/baby.png", b"hr" * 500),
            ("bench/Set5/LR_bicubic/X2/babyx2.png", b"lr" * 100),
            ("bench/Urban100/HR/img_001.png", b"skip me"),
        ]:
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def toy_zip(url: str, sha: str | None) -> Archive:
    return Archive(
        file="TOY_train_HR.zip",
        urls=(f"{url}/TOY_train_HR.zip",),
        extract_to="TOY",
        provides=("TOY/TOY_train_HR",),
        sha256=sha,
    )


def test_archives_land_in_the_layout_and_a_second_run_does_nothing(tmp_path: Path, serve, capsys) -> None:
    zipped, tarred = div2k_like_zip(), benchmark_like_tar()
    server = serve({"/TOY_train_HR.zip": zipped, "/bench.tar": tarred})
    table = {
        "toy": (toy_zip(server.url, sha256(zipped)),),
        # unpinned (no published hash): trusted on first use, recorded in a lock file
        "bench": (
            Archive(
                file="bench.tar",
                urls=(f"{server.url}/bench.tar",),
                extract_to="",
                provides=("bench/Set5/HR",),
                members=("bench/Set5/",),
            ),
        ),
    }
    root = tmp_path / "data"
    assert download_datasets(["toy", "bench"], root, table=table, **FAST) == {
        "TOY_train_HR.zip": "installed",
        "bench.tar": "installed",
    }
    for name, data in IMAGES.items():
        assert (root / "TOY" / "TOY_train_HR" / name).read_bytes() == data
    assert (root / "bench/Set5/HR/baby.png").read_bytes() == b"hr" * 500
    assert (root / "bench/Set5/LR_bicubic/X2/babyx2.png").is_file()
    assert not (root / "bench/Urban100").exists()  # only the members asked for
    lock = root / "downloads" / "bench.tar.sha256"
    assert lock.read_text().split() == [sha256(tarred), "bench.tar"]
    assert "bench.tar has no published checksum" in capsys.readouterr().err
    # archives removed after extraction; no temporary folders left
    assert sorted(p.name for p in (root / "downloads").iterdir()) == [
        "TOY_train_HR.zip.installed.json",
        "TOY_train_HR.zip.sha256",
        "bench.tar.installed.json",
        "bench.tar.sha256",
    ]
    assert sorted(p.name for p in root.iterdir()) == ["TOY", "bench", "downloads"]

    served = len(server.requests)
    mtime = (root / "TOY" / "TOY_train_HR" / "0001.png").stat().st_mtime_ns
    assert download_datasets(["toy", "bench"], root, table=table, **FAST) == {
        "TOY_train_HR.zip": "up to date",
        "bench.tar": "up to date",
    }
    assert len(server.requests) == served  # nothing fetched
    assert (root / "TOY" / "TOY_train_HR" / "0001.png").stat().st_mtime_ns == mtime


def test_a_corrupted_archive_is_removed_and_nothing_is_extracted(tmp_path: Path, serve) -> None:
    good = div2k_like_zip()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    server = serve({"/TOY_train_HR.zip": bytes(bad)})
    root = tmp_path / "data"
    with pytest.raises(
        DownloadError,
        match=r"TOY_train_HR\.zip from http.*: sha256 mismatch .*expected "
        + sha256(good)
        + ", pinned\\); the file was removed",
    ):
        download_datasets(["toy"], root, table={"toy": (toy_zip(server.url, sha256(good)),)}, **FAST)
    assert list(root.iterdir()) == []  # not even an empty downloads/ folder

    # unpinned: a download that differs from the hash recorded by the first one is refused too
    server.files["/TOY_train_HR.zip"] = good
    download_datasets(["toy"], root, table={"toy": (toy_zip(server.url, None),)}, **FAST)
    (root / "downloads" / "TOY_train_HR.zip.installed.json").unlink()
    shutil.rmtree(root / "TOY")
    server.files["/TOY_train_HR.zip"] = bytes(bad)
    with pytest.raises(DownloadError, match=r"sha256 mismatch .*recorded in .*TOY_train_HR\.zip\.sha256"):
        download_datasets(["toy"], root, table={"toy": (toy_zip(server.url, None),)}, **FAST)
    assert not (root / "TOY").exists()

    # an archive that verifies but lacks the expected folder leaves no partial data either
    server.files["/TOY_train_HR.zip"] = good
    wrong = Archive(
        file="TOY_train_HR.zip",
        urls=(f"{server.url}/TOY_train_HR.zip",),
        extract_to="TOY",
        provides=("TOY/TOY_valid_HR",),
        sha256=sha256(good),
    )
    with pytest.raises(DownloadError, match=r"TOY_train_HR\.zip: the archive has no TOY_valid_HR/"):
        download_datasets(["toy"], root, table={"toy": (wrong,)}, **FAST)
    assert sorted(p.name for p in root.iterdir()) == ["downloads"]


@pytest.mark.parametrize("ranges", [True, False], ids=["resumes-with-range", "server-without-range-restarts"])
def test_a_dropped_connection_is_resumed(tmp_path: Path, serve, ranges: bool) -> None:
    zipped = div2k_like_zip()
    k = len(zipped) // 3
    server = serve({"/TOY_train_HR.zip": zipped}, ranges=ranges, drop_after={"/TOY_train_HR.zip": k})
    root = tmp_path / "data"
    download_datasets(["toy"], root, table={"toy": (toy_zip(server.url, sha256(zipped)),)}, **FAST)
    # first request cut after k bytes; the second asks for the rest
    assert server.requests == [("/TOY_train_HR.zip", None), ("/TOY_train_HR.zip", f"bytes={k}-")]
    for name, data in IMAGES.items():
        assert (root / "TOY" / "TOY_train_HR" / name).read_bytes() == data


def test_an_unknown_dataset_and_a_missing_file_are_named(tmp_path: Path, serve) -> None:
    server = serve({})
    with pytest.raises(DownloadError, match="unknown dataset.* div2kk; expected one of: toy"):
        download_datasets(["div2kk"], tmp_path, table={"toy": (toy_zip(server.url, None),)}, **FAST)
    with pytest.raises(DownloadError, match=r"/TOY_train_HR\.zip: HTTP 404"):
        download_datasets(["toy"], tmp_path, table={"toy": (toy_zip(server.url, None),)}, **FAST)


def test_sources_are_tried_in_turn_and_all_failing_is_one_error(tmp_path: Path, serve) -> None:
    zipped = div2k_like_zip()
    down = serve({})  # the first host answers 404 for everything (its copy is gone)
    mirror = serve({"/TOY_train_HR.zip": zipped})
    archive = Archive(
        file="TOY_train_HR.zip",
        urls=(f"{down.url}/TOY_train_HR.zip", f"{mirror.url}/TOY_train_HR.zip"),
        extract_to="TOY",
        provides=("TOY/TOY_train_HR",),
        sha256=sha256(zipped),
    )
    root = tmp_path / "data"
    assert download_datasets(["toy"], root, table={"toy": (archive,)}, **FAST) == {"TOY_train_HR.zip": "installed"}
    assert down.requests == [("/TOY_train_HR.zip", None)] and mirror.requests == [("/TOY_train_HR.zip", None)]
    for name, data in IMAGES.items():
        assert (root / "TOY" / "TOY_train_HR" / name).read_bytes() == data
    marker = json.loads((root / "downloads" / "TOY_train_HR.zip.installed.json").read_text())
    assert marker["url"] == f"{mirror.url}/TOY_train_HR.zip"

    # every source fails (404; a wrong file; nobody listening): one message naming each, nothing written
    bad = bytearray(zipped)
    bad[100] ^= 0xFF
    wrong = serve({"/TOY_train_HR.zip": bytes(bad)})
    closed = serve({})
    dead = f"{closed.url}/TOY_train_HR.zip"
    closed.close()
    archive = Archive(
        file="TOY_train_HR.zip",
        urls=(f"{down.url}/TOY_train_HR.zip", f"{wrong.url}/TOY_train_HR.zip", dead),
        extract_to="TOY",
        provides=("TOY/TOY_train_HR",),
        sha256=sha256(zipped),
    )
    fresh = tmp_path / "fresh"
    with pytest.raises(DownloadError) as failed:
        download_datasets(["toy"], fresh, table={"toy": (archive,)}, **FAST, retries=1)
    message = str(failed.value)
    assert message.startswith("TOY_train_HR.zip: all 3 sources failed: (1) ") and "\n" not in message
    assert f"(1) {down.url}/TOY_train_HR.zip: HTTP 404" in message
    assert f"(2) TOY_train_HR.zip from {wrong.url}/TOY_train_HR.zip: sha256 mismatch" in message
    assert f"(3) {dead}: download failed after 2 attempts" in message
    assert not fresh.exists() or list(fresh.rglob("*")) == []


def test_renamed_folders_of_an_hr_only_archive(tmp_path: Path, serve) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("Urban100_HR/img_001.png", "Urban100_HR/img_002.png", "readme.txt"):
            info = tarfile.TarInfo(name)
            info.size = len(name)
            tar.addfile(info, io.BytesIO(name.encode()))
    server = serve({"/u.tar.gz": buffer.getvalue()})
    archive = Archive(
        file="u.tar.gz",
        urls=(f"{server.url}/u.tar.gz",),
        extract_to="benchmark",
        provides=("benchmark/Urban100/HR",),
        rename=(("Urban100_HR", "Urban100/HR"),),
    )
    root = tmp_path / "data"
    download_datasets(["u"], root, table={"u": (archive,)}, **FAST)
    assert sorted(str(p.relative_to(root)) for p in (root / "benchmark").rglob("*") if p.is_file()) == [
        "benchmark/Urban100/HR/img_001.png",
        "benchmark/Urban100/HR/img_002.png",
    ]
