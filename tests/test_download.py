"""`lla data download` against a real HTTP server on 127.0.0.1.

The server (a thread running http.server) serves byte strings the test chooses and can
misbehave per path: answer 404, close the connection after N bytes, ignore Range
requests, serve other bytes than expected, answer with an HTML page, redirect.
It records every request (path, Range and Authorization headers), so the tests can
assert what the downloader asked for, not only what ended up on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

import lla.cli
from lla.data import archive, download
from lla.errors import DataError


# ------------------------------------------------------------------ test server

@dataclass
class Route:
    body: bytes
    status: int = 200
    content_type: str = "application/octet-stream"
    truncate_after: int | None = None  # close the connection after this many body bytes...
    truncations: int = 0               # ...on this many requests
    ignore_range: bool = False
    redirect_to: str | None = None
    stall_after: int | None = None     # stop sending for stall_s seconds after this many bytes...
    stalls: int = 0                    # ...on this many requests
    stall_s: float = 0.0


@dataclass
class Seen:
    path: str
    range: str | None
    authorization: str | None


@dataclass
class FileServer:
    host: str
    port: int
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def ranges(self, path: str) -> list[str | None]:
        return [r.range for r in self.requests if r.path == path]


def _handler(state: FileServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_GET(self):
            state.requests.append(Seen(self.path, self.headers.get("Range"),
                                       self.headers.get("Authorization")))
            route = state.routes.get(self.path)
            if route is None or route.status == 404:
                self.send_error(404, "Not Found")
                return
            if route.redirect_to:
                self.send_response(302)
                self.send_header("Location", route.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body, start = route.body, 0
            requested = self.headers.get("Range")
            if requested and not route.ignore_range:
                start = int(requested.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_error(416, "Range Not Satisfiable")
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if route.stalls > 0 and route.stall_after is not None:
                route.stalls -= 1
                self.wfile.write(payload[:route.stall_after])
                self.wfile.flush()
                time.sleep(route.stall_s)  # the client times out meanwhile
                return
            if route.truncations > 0 and route.truncate_after is not None:
                route.truncations -= 1
                payload = payload[:route.truncate_after]
                self.close_connection = True
            self.wfile.write(payload)
            self.wfile.flush()

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is part of the test, not an error


@pytest.fixture
def server():
    state = FileServer("127.0.0.1", 0)
    httpd = _QuietServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def only_download_command(monkeypatch):
    """Register only this module's command: the test must not depend on sibling modules."""
    monkeypatch.setitem(lla.cli.COMMAND_GROUPS, "data",
                        ("datasets", ("lla.data.download",)))


# ------------------------------------------------------------------ helpers

def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(n: int, seed: int = 0) -> bytes:
    """n deterministic, non-repeating-looking bytes (so a misplaced offset changes the hash)."""
    return bytes((i * 131 + seed * 17 + (i >> 8)) % 256 for i in range(n))


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buffer.getvalue()


REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def write_params(tmp_path: Path, files: list[dict], **settings) -> Path:
    """The repository's params with ``crowdhuman.download`` replaced."""
    block = {"timeout_s": 2, "attempts_per_url": 3, "retry_wait_s": 0, **settings,
             "files": files}
    params = yaml.safe_load(REPO_PARAMS.read_text())
    params["crowdhuman"] = {"root": "unused", "download": block}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def lla_download(params: Path, root: Path, *extra: str) -> int:
    return lla.cli.main(["data", "download", "crowdhuman", "--params", str(params),
                         "--root", str(root), *extra])


# ------------------------------------------------------------------ downloads

def test_full_download_verifies_records_and_unpacks(tmp_path, server):
    odgt = b'{"ID": "a", "gtboxes": []}\n' * 50
    zip_bytes = make_zip({"Images/": b"", "Images/a.jpg": b"JPEG-a", "Images/b.jpg": b"JPEG-b"})
    server.routes["/annotation_val.odgt"] = Route(odgt)
    server.routes["/CrowdHuman_val.zip"] = Route(zip_bytes)
    params = write_params(tmp_path, [
        {"name": "annotation_val.odgt", "urls": [server.url("/annotation_val.odgt")],
         "sha256": sha256(odgt), "size": len(odgt)},
        {"name": "CrowdHuman_val.zip", "urls": [server.url("/CrowdHuman_val.zip")],
         "sha256": sha256(zip_bytes), "unpack_to": "."},
    ])
    root = tmp_path / "crowdhuman"

    assert lla_download(params, root) == 0

    assert (root / "annotation_val.odgt").read_bytes() == odgt
    assert (root / "Images" / "a.jpg").read_bytes() == b"JPEG-a"
    assert (root / "Images" / "b.jpg").read_bytes() == b"JPEG-b"
    assert not list(root.glob("*.part"))
    # One plain GET per file (nothing to resume).
    assert [(r.path, r.range) for r in server.requests] == [
        ("/annotation_val.odgt", None), ("/CrowdHuman_val.zip", None)]
    manifest = json.loads((root / "download_manifest.json").read_text())["files"]
    assert manifest["annotation_val.odgt"]["sha256"] == sha256(odgt)
    assert manifest["annotation_val.odgt"]["size"] == len(odgt)
    # The zip's sha256 keys the unpack marker.
    assert manifest["CrowdHuman_val.zip"]["sha256"] == sha256(zip_bytes)
    assert archive.is_unpacked(root, "CrowdHuman_val.zip", sha256(zip_bytes))


def test_resume_after_truncated_transfer_asks_for_the_missing_range(tmp_path, server):
    # 5000 bytes; the first response is cut after 1234 bytes, so the retry must ask for
    # bytes=1234- and append: the result is the exact original (checked by sha256).
    body = payload(5000)
    server.routes["/big.bin"] = Route(body, truncate_after=1234, truncations=1)
    params = write_params(tmp_path, [{"name": "big.bin", "urls": [server.url("/big.bin")],
                                      "sha256": sha256(body), "size": len(body)}])
    root = tmp_path / "root"

    assert lla_download(params, root) == 0

    assert server.ranges("/big.bin") == [None, "bytes=1234-"]
    assert sha256((root / "big.bin").read_bytes()) == sha256(body)


def test_resume_continues_a_part_file_left_by_an_earlier_run(tmp_path, server, capsys):
    # One attempt per URL: run 1 is cut after 700 bytes and gives up, leaving big.bin.part
    # (700 bytes). Run 2 must continue at byte 700 rather than start over.
    body = payload(3000, seed=1)
    server.routes["/big.bin"] = Route(body, truncate_after=700, truncations=1)
    params = write_params(tmp_path, [{"name": "big.bin", "urls": [server.url("/big.bin")],
                                      "sha256": sha256(body)}], attempts_per_url=1)
    root = tmp_path / "root"

    assert lla_download(params, root) == 1
    assert (root / "big.bin.part").stat().st_size == 700
    assert "connection closed after 700 of 3000 bytes" in capsys.readouterr().err

    assert lla_download(params, root) == 0
    assert server.ranges("/big.bin") == [None, "bytes=700-"]
    assert (root / "big.bin").read_bytes() == body


def test_server_ignoring_range_restarts_cleanly(tmp_path, server):
    # The retry asks for bytes=500- but the server answers 200 with the whole body; the
    # downloader must overwrite the 500-byte prefix, not append (which would give 500 +
    # 2000 bytes and a wrong hash).
    body = payload(2000, seed=2)
    server.routes["/f.bin"] = Route(body, truncate_after=500, truncations=1, ignore_range=True)
    params = write_params(tmp_path, [{"name": "f.bin", "urls": [server.url("/f.bin")],
                                      "sha256": sha256(body)}])
    root = tmp_path / "root"

    assert lla_download(params, root) == 0

    assert server.ranges("/f.bin") == [None, "bytes=500-"]
    assert (root / "f.bin").read_bytes() == body


def test_stalled_server_times_out_and_resumes(tmp_path, server):
    # The first response sends 100 bytes and then nothing for 3 s; with a 0.3 s read
    # timeout the client gives up on it and resumes at byte 100 on its next attempt.
    body = payload(1000, seed=13)
    server.routes["/slow.bin"] = Route(body, stall_after=100, stalls=1, stall_s=3.0)
    params = write_params(tmp_path, [{"name": "slow.bin", "sha256": sha256(body),
                                      "urls": [server.url("/slow.bin")]}], timeout_s=0.3)
    root = tmp_path / "root"

    started = time.monotonic()
    assert lla_download(params, root) == 0
    assert time.monotonic() - started < 2.5  # did not wait for the stalled response

    assert server.ranges("/slow.bin") == [None, "bytes=100-"]
    assert (root / "slow.bin").read_bytes() == body


def test_stale_part_file_is_discarded_when_the_resumed_file_mismatches(tmp_path, server):
    # A .part left from some other file: resuming after its 300 bytes gives a wrong hash,
    # so the same URL is fetched once more from the start (no Range), which is right.
    body = payload(1000, seed=14)
    server.routes["/f.bin"] = Route(body)
    params = write_params(tmp_path, [{"name": "f.bin", "sha256": sha256(body),
                                      "urls": [server.url("/f.bin")]}])
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.bin.part").write_bytes(b"x" * 300)

    assert lla_download(params, root) == 0

    assert server.ranges("/f.bin") == ["bytes=300-", None]
    assert (root / "f.bin").read_bytes() == body


def test_part_file_longer_than_the_remote_file_starts_over(tmp_path, server):
    # Range bytes=5000- on a 1000-byte file is answered 416: the part is dropped and the
    # next attempt downloads the whole file.
    body = payload(1000, seed=15)
    server.routes["/f.bin"] = Route(body)
    params = write_params(tmp_path, [{"name": "f.bin", "urls": [server.url("/f.bin")]}])
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.bin.part").write_bytes(b"y" * 5000)

    assert lla_download(params, root) == 0

    assert server.ranges("/f.bin") == ["bytes=5000-", None]
    assert (root / "f.bin").read_bytes() == body


def test_checksum_mismatch_refetches_from_next_url(tmp_path, server):
    body = payload(1000, seed=3)
    server.routes["/bad/f.bin"] = Route(payload(1000, seed=4))  # same size, other bytes
    server.routes["/good/f.bin"] = Route(body)
    params = write_params(tmp_path, [{"name": "f.bin", "sha256": sha256(body), "size": 1000,
                                      "urls": [server.url("/bad/f.bin"),
                                               server.url("/good/f.bin")]}])
    root = tmp_path / "root"

    assert lla_download(params, root) == 0

    assert [r.path for r in server.requests] == ["/bad/f.bin", "/good/f.bin"]
    assert (root / "f.bin").read_bytes() == body
    assert not (root / "f.bin.part").exists()


def test_second_checksum_mismatch_fails_clearly(tmp_path, server, capsys):
    # Two mirrors serve wrong bytes: the file is given up after the second one, and the
    # third (correct) mirror is never asked ("re-fetch once, then fail").
    body = payload(800, seed=5)
    server.routes["/m1/f.bin"] = Route(payload(800, seed=6))
    server.routes["/m2/f.bin"] = Route(payload(800, seed=7))
    server.routes["/m3/f.bin"] = Route(body)
    params = write_params(tmp_path, [{"name": "f.bin", "sha256": sha256(body),
                                      "urls": [server.url(f"/m{i}/f.bin") for i in (1, 2, 3)]}])
    root = tmp_path / "root"

    assert lla_download(params, root) == 1

    assert [r.path for r in server.requests] == ["/m1/f.bin", "/m2/f.bin"]
    err = capsys.readouterr().err
    assert err.count("the downloaded file did not match") == 2
    assert f"expected {sha256(body)}" in err
    assert "gave up after 2 downloads that did not match" in err
    assert not (root / "f.bin").exists() and not (root / "f.bin.part").exists()


def test_404_and_html_page_fall_back_to_next_url(tmp_path, server):
    body = payload(600, seed=8)
    server.routes["/login/f.bin"] = Route(b"<html>please log in</html>", content_type="text/html")
    server.routes["/ok/f.bin"] = Route(body)
    params = write_params(tmp_path, [{"name": "f.bin", "urls": [
        server.url("/missing/f.bin"), server.url("/login/f.bin"), server.url("/ok/f.bin")]}])
    root = tmp_path / "root"

    assert lla_download(params, root) == 0

    # 404 and the HTML page are not retried on the same URL.
    assert [r.path for r in server.requests] == ["/missing/f.bin", "/login/f.bin", "/ok/f.bin"]
    assert (root / "f.bin").read_bytes() == body


def test_wrong_size_on_offer_moves_on_without_downloading(tmp_path, server, capsys):
    server.routes["/f.bin"] = Route(payload(999))
    params = write_params(tmp_path, [{"name": "f.bin", "size": 1000,
                                      "urls": [server.url("/f.bin")]}])

    assert lla_download(params, tmp_path / "root") == 1
    assert "server offers 999 bytes, expected 1000" in capsys.readouterr().err
    assert len(server.requests) == 1


def test_all_urls_failing_lists_every_missing_file_then_placed_files_are_used(
        tmp_path, server, capsys):
    anno = payload(300, seed=9)
    images_zip = make_zip({"leftImg8bit/val/x/y.png": b"PNG"})
    params = write_params(tmp_path, [
        {"name": "anno_val.mat", "dest": "annotations", "sha256": sha256(anno),
         "urls": [server.url("/gone/anno_val.mat"), server.url("/also-gone/anno_val.mat")]},
        {"name": "leftImg8bit_trainvaltest.zip", "md5": hashlib.md5(images_zip).hexdigest(),
         "unpack_to": ".", "note": "log in at cityscapes and fetch package 3"},
    ])
    root = tmp_path / "root"

    assert lla_download(params, root) == 1

    err = capsys.readouterr().err
    assert "2 file(s) of crowdhuman could not be downloaded" in err
    annotations_dir = (root / "annotations").resolve()
    assert f"into {annotations_dir}/\n    anno_val.mat  (sha256 {sha256(anno)})" in err
    assert (f"into {root.resolve()}/\n    leftImg8bit_trainvaltest.zip  "
            f"(md5 {hashlib.md5(images_zip).hexdigest()})") in err
    assert "how to get it: log in at cityscapes and fetch package 3" in err
    assert "/gone/anno_val.mat: HTTP 404" in err and "/also-gone/anno_val.mat: HTTP 404" in err
    assert "no download URL is known" in err
    assert f"rerun `lla data download crowdhuman --root {root}" in err
    assert not (root / "leftImg8bit").exists()  # nothing unpacked while files are missing

    # The user places both files; the rerun verifies them without any request and unpacks.
    server.requests.clear()
    (root / "annotations" / "anno_val.mat").write_bytes(anno)
    (root / "leftImg8bit_trainvaltest.zip").write_bytes(images_zip)
    assert lla_download(params, root) == 0
    assert server.requests == []
    assert (root / "leftImg8bit" / "val" / "x" / "y.png").read_bytes() == b"PNG"


def test_placed_file_with_wrong_content_is_moved_aside_and_reported(tmp_path, capsys):
    expected = payload(100, seed=10)
    params = write_params(tmp_path, [{"name": "f.bin", "sha256": sha256(expected)}])
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.bin").write_bytes(b"not it")

    assert lla_download(params, root) == 1

    assert (root / "f.bin.rejected").read_bytes() == b"not it"  # kept, not deleted
    assert not (root / "f.bin").exists()
    err = capsys.readouterr().err
    assert f"sha256 is {sha256(b'not it')}, expected {sha256(expected)}" in err
    assert "moved to f.bin.rejected" in err


def test_verified_file_is_neither_downloaded_nor_hashed_again(tmp_path, server, monkeypatch):
    body = payload(400, seed=11)
    server.routes["/f.bin"] = Route(body)
    params = write_params(tmp_path, [{"name": "f.bin", "sha256": sha256(body),
                                      "urls": [server.url("/f.bin")]}])
    root = tmp_path / "root"
    assert lla_download(params, root) == 0
    server.requests.clear()

    hashed = []
    real_hash_file = download.hash_file
    monkeypatch.setattr(download, "hash_file",
                        lambda path, algos=("sha256",): hashed.append(path) or
                        real_hash_file(path, algos))
    assert lla_download(params, root) == 0
    assert server.requests == [] and hashed == []  # trusted from the manifest

    # A changed mtime means "maybe changed": hashed once more, still no request.
    stat = (root / "f.bin").stat()
    os.utime(root / "f.bin", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert lla_download(params, root) == 0
    assert server.requests == [] and hashed == [root / "f.bin"]


def test_removed_archive_that_was_unpacked_is_not_fetched_again(tmp_path, server):
    zip_bytes = make_zip({"Images/a.jpg": b"A"})
    server.routes["/a.zip"] = Route(zip_bytes)
    params = write_params(tmp_path, [{"name": "a.zip", "unpack_to": ".",
                                      "urls": [server.url("/a.zip")]}])
    root = tmp_path / "root"
    assert lla_download(params, root) == 0
    (root / "a.zip").unlink()  # a user saving disk space
    server.requests.clear()

    assert lla_download(params, root) == 0
    assert server.requests == []
    assert (root / "Images" / "a.jpg").read_bytes() == b"A"


def test_only_and_no_unpack(tmp_path, server):
    zip_bytes = make_zip({"Images/a.jpg": b"A"})
    server.routes["/a.zip"] = Route(zip_bytes)
    server.routes["/b.odgt"] = Route(b"{}\n")
    params = write_params(tmp_path, [
        {"name": "a.zip", "unpack_to": ".", "urls": [server.url("/a.zip")]},
        {"name": "b.odgt", "urls": [server.url("/b.odgt")]}])
    root = tmp_path / "root"

    assert lla_download(params, root, "--only", "a.zip", "--no-unpack") == 0

    assert [r.path for r in server.requests] == ["/a.zip"]
    assert (root / "a.zip").read_bytes() == zip_bytes
    assert not (root / "Images").exists()


def test_token_goes_to_the_configured_host_only(tmp_path, server, monkeypatch):
    # /start on 127.0.0.1 redirects to the same server under the name "localhost": the
    # bearer token must reach 127.0.0.1 but must not follow the redirect.
    body = payload(200, seed=12)
    server.routes["/start"] = Route(b"", redirect_to=server.url("/file", host="localhost"))
    server.routes["/file"] = Route(body)
    monkeypatch.setenv("LLA_TEST_TOKEN", "s3cret")
    params = write_params(tmp_path, [{"name": "f.bin", "urls": [server.url("/start")]}],
                          auth_env={"127.0.0.1": "LLA_TEST_TOKEN"})

    assert lla_download(params, tmp_path / "root") == 0

    assert [(r.path, r.authorization) for r in server.requests] == [
        ("/start", "Bearer s3cret"), ("/file", None)]


# ------------------------------------------------------------------ unpack

def test_unpack_is_skipped_when_the_marker_matches(tmp_path):
    target = tmp_path / "out"
    zip_path = tmp_path / "a.zip"
    zip_path.write_bytes(make_zip({"Images/a.jpg": b"A"}))

    assert archive.unpack_zip(zip_path, target, sha256=64 * "a") is True
    (target / "Images" / "a.jpg").write_bytes(b"edited")
    assert archive.unpack_zip(zip_path, target, sha256=64 * "a") is False
    assert (target / "Images" / "a.jpg").read_bytes() == b"edited"  # untouched: skipped
    # Another version of the archive (other checksum) is unpacked again.
    assert archive.unpack_zip(zip_path, target, sha256=64 * "b") is True
    assert (target / "Images" / "a.jpg").read_bytes() == b"A"
    assert not list(target.glob(archive.TEMP_PREFIX + "*"))


@pytest.mark.parametrize("evil", ["../evil.txt", "Images/../../evil.txt", "/tmp/evil.txt",
                                  "..\\evil.txt", "C:/evil.txt"])
def test_unpack_rejects_members_outside_the_target(tmp_path, evil):
    target = tmp_path / "deep" / "out"
    zip_path = tmp_path / "evil.zip"
    zip_path.write_bytes(make_zip({"Images/ok.jpg": b"ok", evil: b"pwned"}))

    with pytest.raises(DataError) as info:
        archive.unpack_zip(zip_path, target, sha256=64 * "c")

    assert str(info.value).startswith(f"{zip_path}: member {evil!r}")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()
    # Rejected before anything is extracted: not even the harmless member is there.
    assert not (target / "Images").exists()
    assert not archive.is_unpacked(target, "evil.zip", 64 * "c")


def test_traversal_archive_through_the_command_is_a_clear_error(tmp_path, server, capsys):
    zip_bytes = make_zip({"../escape.txt": b"x"})
    server.routes["/e.zip"] = Route(zip_bytes)
    params = write_params(tmp_path, [{"name": "e.zip", "unpack_to": ".",
                                      "urls": [server.url("/e.zip")]}])
    root = tmp_path / "root"

    assert lla_download(params, root) == 2

    err = capsys.readouterr().err
    assert f"error: {root / 'e.zip'}: member '../escape.txt' points outside" in err
    assert not (tmp_path / "escape.txt").exists()


def test_corrupt_zip_is_a_clear_error(tmp_path):
    zip_path = tmp_path / "broken.zip"
    zip_path.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DataError, match=r"broken\.zip: not a readable zip archive"):
        archive.unpack_zip(zip_path, tmp_path / "out", sha256=64 * "d")


# ------------------------------------------------------------------ bad params

@pytest.mark.parametrize("entry, where, message", [
    ({"name": "f.bin", "sha265": "00"}, ".sha265", r"unknown key \(did you mean 'sha256'\?\)"),
    ({"name": "f.bin", "sha256": "abc"}, ".sha256", r"'sha256' must be 64 hex digits"),
    ({"name": "f.bin", "md5": "xyz"}, ".md5", r"'md5' must be 32 hex digits"),
    ({"name": "../f.bin"}, ".name", r"'name' must be a plain file name"),
    ({"name": "f.bin", "urls": ["ftp://host/f.bin"]}, ".urls[0]", r"a URL is http\(s\):// or file://"),
    ({"name": "f.bin", "size": -1}, ".size", r"-1 is less than the minimum of 0"),
    ({"name": "f.bin", "dest": "../elsewhere"}, ".dest", r"relative to the dataset root"),
    ({"name": "f.odgt", "unpack_to": "."}, ".name", r"'unpack_to' is only supported for .zip files"),
])
def test_bad_file_entry_names_params_file_and_entry(tmp_path, capsys, entry, where, message):
    params = write_params(tmp_path, [entry])
    assert lla_download(params, tmp_path / "root") == 2
    err = capsys.readouterr().err
    assert re.match(rf"error: {re.escape(str(params))}:\d+ "
                    rf"\[crowdhuman\.download\.files\[0\]{re.escape(where)}\]: .*{message}.*\n$", err), err
    assert not (tmp_path / "root").exists()


def test_file_listed_twice_is_an_error(tmp_path, capsys):
    params = write_params(tmp_path, [{"name": "f.bin"}, {"name": "f.bin"}])
    assert lla_download(params, tmp_path / "root") == 2
    assert "[crowdhuman.download.files]: file(s) listed twice: f.bin" in capsys.readouterr().err


def test_unknown_only_name_is_an_error(tmp_path, capsys):
    params = write_params(tmp_path, [{"name": "f.bin"}])
    assert lla_download(params, tmp_path / "root", "--only", "g.bin") == 2
    assert "--only g.bin: not a file of crowdhuman (known: f.bin)" in capsys.readouterr().err


def test_repository_params_file_lists_are_valid():
    # The shipped params.yaml must parse: CrowdHuman's six official files, CityPersons'
    # two annotation files plus the Cityscapes images that have no URL (login needed).
    params = yaml.safe_load(Path(__file__).parents[1].joinpath("params.yaml").read_text())
    crowdhuman = download.load_source(params, "crowdhuman", Path("params.yaml"))
    assert sorted(f.name for f in crowdhuman.files) == [
        "CrowdHuman_train01.zip", "CrowdHuman_train02.zip", "CrowdHuman_train03.zip",
        "CrowdHuman_val.zip", "annotation_train.odgt", "annotation_val.odgt"]
    assert all(f.urls for f in crowdhuman.files)
    assert {f.name for f in crowdhuman.files if f.unpack_to == "."} == {
        "CrowdHuman_train01.zip", "CrowdHuman_train02.zip", "CrowdHuman_train03.zip",
        "CrowdHuman_val.zip"}
    citypersons = download.load_source(params, "citypersons", Path("params.yaml"))
    by_name = {f.name: f for f in citypersons.files}
    assert by_name["anno_train.mat"].dest == "annotations"
    assert by_name["leftImg8bit_trainvaltest.zip"].urls == ()
    assert by_name["leftImg8bit_trainvaltest.zip"].note
