"""`lla data download crowdhuman|citypersons`: fetch, verify and unpack the official files.

The list of files lives in params.yaml (``<dataset>.download.files``), so a user can add
a mirror or a checksum without touching code. Each entry::

    name: CrowdHuman_val.zip    # file name on disk
    urls: [https://..., ...]    # tried in order; may be empty ("place it yourself")
    dest: .                     # directory relative to the dataset root (default ".")
    size: 2488658160            # optional, bytes
    sha256: ...                 # optional; md5 likewise
    unpack_to: .                # optional: zip archives are extracted here (relative to root)
    note: ...                   # optional: how to obtain the file by hand

For each file:

1. A file already on disk is accepted without reading it when the manifest
   (``<root>/download_manifest.json``) recorded it as verified with the same size and
   mtime; otherwise it is hashed once and checked against the known size/checksums.
   A file that fails the check is moved aside to ``<name>.rejected``, never deleted.
2. Otherwise each URL is tried in turn. The transfer appends to ``<name>.part`` and
   resumes with an HTTP Range request after a dropped connection (up to
   ``attempts_per_url`` attempts per URL); a server that ignores Range is restarted
   cleanly. 404 and other permanent errors, or an HTML page where a file was expected
   (login or confirmation pages), move on to the next URL.
3. The finished file is checked; on a mismatch it is deleted and fetched again from
   the next URL, and after a second mismatch the file is given up.

Files that no URL could deliver are listed in ONE message that says which file to put
in which directory (with its checksum); the command then exits with status 1. Rerun it
after placing them: they are verified and the command goes on to unpack the archives
(`lla.data.archive`).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import re
import shlex
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lla import layout, options
from lla.data import archive, registry
from lla.errors import DataError
from lla.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

DEFAULT_PARAMS = "params.yaml"
MANIFEST_NAME = "download_manifest.json"
PART_SUFFIX = ".part"
REJECTED_SUFFIX = ".rejected"

# Transfer defaults, used when the params block does not set them.
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_ATTEMPTS_PER_URL = 3
DEFAULT_RETRY_WAIT_S = 5.0
# A file whose download mismatched its checksum this many times is given up.
MAX_CHECKSUM_MISMATCHES = 2
CHUNK_BYTES = 1 << 20
HASH_CHUNK_BYTES = 4 << 20
LOG_PROGRESS_EVERY_S = 30.0
USER_AGENT = "lla-repro-download/1.0 (+urllib)"



# --------------------------------------------------------------------------- config

@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset, as listed in params.yaml."""

    name: str
    urls: tuple[str, ...] = ()
    dest: str = "."
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    unpack_to: str | None = None
    note: str | None = None
    # the leading hex digits of the sha256 (torch.hub's weight files carry them in their name)
    sha256_prefix: str | None = None

    def expected(self) -> dict[str, Any]:
        """The known facts a file must match: a subset of size/sha256/md5/sha256_prefix."""
        known = {"size": self.size, "sha256": self.sha256, "md5": self.md5,
                 "sha256_prefix": self.sha256_prefix}
        return {k: v for k, v in known.items() if v is not None}


@dataclass(frozen=True)
class TransferSettings:
    timeout_s: float = DEFAULT_TIMEOUT_S
    attempts_per_url: int = DEFAULT_ATTEMPTS_PER_URL
    retry_wait_s: float = DEFAULT_RETRY_WAIT_S
    # host -> name of an environment variable holding a bearer token for that host
    auth_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSource:
    dataset: str
    root: Path
    files: tuple[FileSpec, ...]
    settings: TransferSettings
    params_path: Path = Path("params.yaml")


def file_spec(entry: dict[str, Any]) -> FileSpec:
    """One ``download.files`` entry (validated with params: lla.config.validate_params)."""
    digests = {algo: None if entry.get(algo) is None else str(entry[algo]).lower()
               for algo in ("sha256", "md5")}
    note = entry.get("note")
    return FileSpec(name=entry["name"], urls=tuple(entry.get("urls") or ()),
                    dest=entry.get("dest", "."), size=entry.get("size"), **digests,
                    unpack_to=entry.get("unpack_to"), note=None if note is None else str(note))


def load_source(params: dict[str, Any], dataset: str, params_path: Path,
                root: str | Path | None = None) -> DatasetSource:
    """Read ``params[dataset]``: its ``root`` and ``download`` block (validated with params)."""
    download = params[dataset]["download"]
    files = tuple(file_spec(entry) for entry in download["files"])
    names = [f.name for f in files]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(params_path, f"file(s) listed twice: {', '.join(duplicates)}",
                        record=f"{dataset}.download.files")
    settings = TransferSettings(
        timeout_s=float(download.get("timeout_s", DEFAULT_TIMEOUT_S)),
        attempts_per_url=int(download.get("attempts_per_url", DEFAULT_ATTEMPTS_PER_URL)),
        retry_wait_s=float(download.get("retry_wait_s", DEFAULT_RETRY_WAIT_S)),
        auth_env=dict(download.get("auth_env") or {}))
    return DatasetSource(dataset=dataset, root=Path(root or layout.download_root(params, dataset)),
                         files=files, settings=settings, params_path=params_path)


# ------------------------------------------------------------------ hashes, manifest

def hash_file(path: Path, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file, read once in large chunks."""
    hashers = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK_BYTES):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def mismatch(spec: FileSpec, facts: dict[str, Any]) -> str | None:
    """How ``facts`` (size and digests of a file) differ from ``spec``; None if they match."""
    for key, want in spec.expected().items():
        if key == "sha256_prefix":
            have = facts.get("sha256")
            if have is None or not have.startswith(want):
                return f"sha256 is {have}, expected one that starts with {want}"
            continue
        have = facts.get(key)
        if have != want:
            return f"{key} is {have}, expected {want}"
    return None


class Manifest:
    """``<root>/download_manifest.json``: files already verified, keyed by path relative to root.

    An entry stores the file's size, mtime (ns) and digests; as long as size and mtime
    are unchanged the file is trusted without being read again.
    """

    def __init__(self, root: Path):
        self.root = root
        self.path = root / MANIFEST_NAME
        data = read_json(self.path) if self.path.is_file() else {}
        self.entries: dict[str, dict[str, Any]] = dict(data.get("files", {}))

    def _key(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def lookup(self, path: Path) -> dict[str, Any] | None:
        """The recorded entry for ``path`` if the file is unchanged since it was verified."""
        entry = self.entries.get(self._key(path))
        if entry is None:
            return None
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        if entry.get("size") != stat.st_size or entry.get("mtime_ns") != stat.st_mtime_ns:
            return None
        return entry

    def record(self, path: Path, digests: dict[str, str], source: str) -> dict[str, Any]:
        stat = path.stat()
        entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **digests, "source": source}
        self.entries[self._key(path)] = entry
        atomic_write_json(self.path, {"version": 1, "files": self.entries}, indent=1)
        return entry


# ------------------------------------------------------------------------ transfer

class TransferError(Exception):
    """This URL cannot deliver the file (404, HTML page, wrong size, ...): try the next one."""


class _TransientError(TransferError):
    """A dropped connection or timeout: worth another attempt on the same URL."""


class _Progress:
    """tqdm bar on a terminal, a log line every LOG_PROGRESS_EVERY_S seconds otherwise."""

    def __init__(self, name: str, total: int | None, initial: int):
        self.name, self.total, self.done = name, total, initial
        self.bar = None
        self.last_log = time.monotonic()
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="B", unit_scale=True,
                            unit_divisor=1024, desc=name, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last_log >= LOG_PROGRESS_EVERY_S:
            self.last_log = time.monotonic()
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            log.info("%s: %s of %s%s", self.name, _human_size(self.done),
                     _human_size(self.total) if self.total else "?", share)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _human_size(n: int | None) -> str:
    """A byte count for humans: 512 B, 1.5 KiB, 2.8 GiB."""
    if n is None:
        return "?"
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"


def _request(url: str, offset: int, settings: TransferSettings) -> urllib.request.Request:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT,
                                                   "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    host = urllib.parse.urlsplit(url).hostname or ""
    token_var = settings.auth_env.get(host)
    if token_var and os.environ.get(token_var):
        # Unredirected: the token goes to this host only, never to a CDN it redirects to.
        request.add_unredirected_header("Authorization", f"Bearer {os.environ[token_var]}")
    return request


def _content_range_start(value: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` -> (START, TOTAL or None); (None, None) if unparsable."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def fetch_once(url: str, part: Path, spec: FileSpec, settings: TransferSettings) -> bool:
    """One HTTP request that appends the rest of the file to ``part``.

    Returns True if the bytes now in ``part`` started at offset 0 of this response
    (a fresh transfer or a restart), False if they continued earlier bytes.
    Raises _TransientError when another attempt may succeed, TransferError otherwise.
    """
    offset = part.stat().st_size if part.exists() else 0
    if spec.size is not None and offset > spec.size:
        part.unlink()  # longer than the file can be: not a prefix of it
        offset = 0
    if spec.size is not None and offset == spec.size and offset > 0:
        return False  # a previous run got every byte; the checksum decides
    try:
        response = urllib.request.urlopen(_request(url, offset, settings),
                                          timeout=settings.timeout_s)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            part.unlink()
            raise _TransientError(f"server refused to resume at byte {offset}; "
                                  "starting over") from None
        if e.code in (408, 429) or e.code >= 500:
            raise _TransientError(f"HTTP {e.code} {e.reason}") from None
        raise TransferError(f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, socket.gaierror):  # unknown host / no network: do not retry
            raise TransferError(f"cannot resolve the host: {reason}") from None
        raise _TransientError(f"connection failed: {reason}") from None

    with response:
        content_type = response.headers.get("Content-Type", "")
        expects_html = spec.name.lower().endswith((".html", ".htm"))
        if content_type.startswith("text/html") and not expects_html:
            raise TransferError("server answered with an HTML page instead of the file "
                                "(a login, quota or confirmation page?)")
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        status = getattr(response, "status", 200)
        if offset and status == 206:
            start, total = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _TransientError(f"server resumed at byte {start}, asked for {offset}; "
                                      "starting over")
            mode, from_zero = "ab", False
        else:
            if offset:
                log.info("%s: server ignored the Range request; downloading from the start",
                         spec.name)
            offset, mode, from_zero = 0, "wb", True
            total = length
        if total is None and length is not None:
            total = offset + length
        if spec.size is not None and total is not None and total != spec.size:
            raise TransferError(f"server offers {total} bytes, expected {spec.size}")

        received = 0
        progress = _Progress(spec.name, total or spec.size, offset)
        try:
            with open(part, mode) as f:
                while chunk := response.read1(CHUNK_BYTES):
                    f.write(chunk)
                    received += len(chunk)
                    progress.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:
            raise _TransientError(f"transfer interrupted after {offset + received} bytes: "
                                  f"{e}") from None
        finally:
            progress.close()
    expected_end = total if total is not None else spec.size
    if expected_end is not None and offset + received < expected_end:
        raise _TransientError(f"connection closed after {offset + received} of "
                              f"{expected_end} bytes")
    return from_zero


def fetch(url: str, part: Path, spec: FileSpec, settings: TransferSettings,
          sleep: Callable[[float], None] = time.sleep) -> bool:
    """Download ``url`` into ``part``, resuming after transient failures.

    Returns True when ``part`` holds bytes from before this call (a resumed ``.part``
    left by an earlier run), which a checksum mismatch may be blamed on.
    Raises TransferError when the URL cannot deliver the file.
    """
    carried_over = part.exists() and part.stat().st_size > 0
    for attempt in range(1, settings.attempts_per_url + 1):
        try:
            if fetch_once(url, part, spec, settings):
                carried_over = False
            return carried_over
        except _TransientError as e:
            if attempt == settings.attempts_per_url:
                tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                raise TransferError(f"{e} (gave up after {tries})") from None
            log.warning("%s: %s; retrying in %.0f s (attempt %d of %d)", spec.name, e,
                        settings.retry_wait_s, attempt + 1, settings.attempts_per_url)
            sleep(settings.retry_wait_s)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------- per file

@dataclass
class MissingFile:
    spec: FileSpec
    directory: Path
    reasons: list[str]


def _digest_algorithms(spec: FileSpec) -> tuple[str, ...]:
    return ("sha256", "md5") if spec.md5 else ("sha256",)


def _verify(path: Path, spec: FileSpec) -> tuple[dict[str, str], str | None]:
    """(digests, how the file differs from ``spec`` or None); a wrong size is not hashed."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        return {}, f"size is {size}, expected {spec.size}"
    log.info("%s: verifying %s", spec.name, _human_size(size))
    digests = hash_file(path, _digest_algorithms(spec))
    return digests, mismatch(spec, {"size": size, **digests})


def _trusted(entry: dict[str, Any] | None, spec: FileSpec) -> bool:
    return entry is not None and mismatch(spec, entry) is None and (
        spec.md5 is None or "md5" in entry)


def ensure_file(spec: FileSpec, root: Path, manifest: Manifest, settings: TransferSettings,
                sleep: Callable[[float], None] = time.sleep) -> tuple[Path, dict | None, list[str]]:
    """Make ``root/dest/name`` present and verified.

    Returns (path, manifest entry or None, reasons it failed). The entry is None
    exactly when the file could not be obtained.
    """
    directory = root / spec.dest
    path = directory / spec.name
    reasons: list[str] = []
    if path.is_file():
        entry = manifest.lookup(path)
        if _trusted(entry, spec):
            log.info("%s: already verified", spec.name)
            return path, entry, []
        digests, problem = _verify(path, spec)
        if problem is None:
            return path, manifest.record(path, digests, source="found on disk"), []
        rejected = path.with_name(path.name + REJECTED_SUFFIX)
        os.replace(path, rejected)
        log.warning("%s: the file on disk does not match (%s); moved it to %s",
                    spec.name, problem, rejected)
        reasons.append(f"the file found there did not match ({problem}); "
                       f"it was moved to {rejected.name}")
    if not spec.urls:
        reasons.append("no download URL is known")
        return path, None, reasons

    directory.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + PART_SUFFIX)
    mismatches = 0
    for url in spec.urls:
        for fresh_retry in (False, True):
            log.info("%s: downloading from %s", spec.name, url)
            try:
                carried_over = fetch(url, part, spec, settings, sleep)
            except TransferError as e:
                log.warning("%s: %s: %s", spec.name, url, e)
                reasons.append(f"{url}: {e}")
                break
            digests, problem = _verify(part, spec)
            if problem is None:
                os.replace(part, path)
                return path, manifest.record(path, digests, source=url), []
            part.unlink()
            if carried_over and not fresh_retry:
                log.warning("%s: resumed download does not match (%s); the earlier partial "
                            "file may be stale, downloading again from the start",
                            spec.name, problem)
                continue
            mismatches += 1
            log.warning("%s: %s: downloaded file does not match (%s); deleted it",
                        spec.name, url, problem)
            reasons.append(f"{url}: the downloaded file did not match ({problem})")
            break
        if mismatches >= MAX_CHECKSUM_MISMATCHES:
            reasons.append(f"gave up after {mismatches} downloads that did not match; if "
                           "the checksum in params.yaml is outdated, correct it")
            break
    return path, None, reasons


def format_missing(dataset: str, missing: list[MissingFile], rerun: str) -> str:
    """The single message that tells the user which files to place where.

    ``rerun`` is the command line to run afterwards.
    """
    lines = [f"{len(missing)} file(s) of {dataset} could not be downloaded. Put each one "
             f"into the directory shown, then rerun `{rerun}` (it verifies them and "
             "continues):", ""]
    by_directory: dict[Path, list[MissingFile]] = {}
    for item in missing:
        by_directory.setdefault(item.directory, []).append(item)
    for directory, items in by_directory.items():
        lines.append(f"  into {directory.resolve()}/")
        for item in items:
            facts = ", ".join(f"{k} {v}" for k, v in item.spec.expected().items())
            lines.append(f"    {item.spec.name}" + (f"  ({facts})" if facts else ""))
            if item.spec.note:
                lines.append(f"      how to get it: {item.spec.note}")
            for reason in item.reasons:
                lines.append(f"      - {reason}")
        lines.append("")
    return "\n".join(lines).rstrip()


# ---------------------------------------------------------------------- command

def run(source: DatasetSource, only: list[str] | None = None, unpack: bool = True,
        sleep: Callable[[float], None] = time.sleep) -> list[MissingFile]:
    """Download (and unpack) the files of ``source``; return those still missing."""
    files = source.files
    if only:
        known = {f.name for f in files}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise DataError(source.params_path,
                            f"--only {', '.join(unknown)}: not a file of {source.dataset} "
                            f"(known: {', '.join(sorted(known))})")
        files = tuple(f for f in files if f.name in only)
    root = source.root
    root.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(root)
    missing: list[MissingFile] = []
    ready: list[tuple[FileSpec, Path, dict]] = []
    for spec in files:
        if spec.unpack_to is not None and not (root / spec.dest / spec.name).exists():
            # The archive was deleted after unpacking (to save space): nothing to do.
            entry = manifest.entries.get(Path(spec.dest, spec.name).as_posix())
            if entry and _trusted(entry, spec) and archive.is_unpacked(
                    root / spec.unpack_to, spec.name, entry["sha256"]):
                log.info("%s: already unpacked (the archive itself was removed)", spec.name)
                continue
        path, entry, reasons = ensure_file(spec, root, manifest, source.settings, sleep)
        if entry is None:
            missing.append(MissingFile(spec, root / spec.dest, reasons))
        else:
            ready.append((spec, path, entry))
    if missing or not unpack:
        return missing
    for spec, path, entry in ready:
        if spec.unpack_to is not None:
            archive.unpack_zip(path, root / spec.unpack_to, entry["sha256"])
    return missing


def _command(args: argparse.Namespace) -> int:
    from lla.config import load_params

    params_path = Path(args.params)
    source = load_source(load_params(params_path), args.dataset, params_path, root=args.root)
    log.info("%s: dataset root %s", source.dataset, source.root.resolve())
    missing = run(source, only=args.only, unpack=not args.no_unpack)
    if missing:
        rerun = " ".join(["lla data download", args.dataset]
                         + (["--root", shlex.quote(args.root)] if args.root else [])
                         + (["--params", shlex.quote(str(args.params))]
                            if params_path != Path(DEFAULT_PARAMS) else [])
                         + [f"--only {shlex.quote(n)}" for n in args.only or []]
                         + (["--no-unpack"] if args.no_unpack else []))
        print(format_missing(source.dataset, missing, rerun), file=sys.stderr)
        return 1
    log.info("%s: done, every %sfile is present and verified", source.dataset,
             "selected " if args.only else "")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download", parents=[options.PARAMS],
        help="download, verify and unpack CrowdHuman or CityPersons",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Download the official files of a dataset from the URL list in params.yaml\n"
            "(<dataset>.download.files), resuming interrupted transfers and checking\n"
            "sizes and checksums where known, then unpack the archives into the root."),
        epilog=(
            "Verified files are recorded in <root>/download_manifest.json and are not\n"
            "downloaded or read again while their size and mtime are unchanged.\n\n"
            "When no URL works for a file (or none is known, e.g. the Cityscapes images,\n"
            "which need a login), the command lists which files to put into which\n"
            "directory and exits with status 1; rerun it after placing them.\n\n"
            "A token for a host (e.g. a gated Hugging Face dataset) is read from the\n"
            "environment variable named in <dataset>.download.auth_env (HF_TOKEN)."))
    parser.add_argument("dataset", choices=registry.names(), help="which dataset")
    parser.add_argument("--root", metavar="DIR",
                        help="dataset directory (default: <dataset>.root in params, else <data_root>/<dataset>)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="only this file (by name, e.g. annotation_val.odgt); repeatable")
    parser.add_argument("--no-unpack", action="store_true",
                        help="download and verify, but do not unpack archives")
    parser.set_defaults(func=_command)
