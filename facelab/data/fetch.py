"""Streaming a URL to a `.part` file with a progress bar, resuming an interrupted download by an HTTP Range request.

Nothing here checks what was fetched (facelab.data.downloads does, before the file is used); a failure
raises FetchError with the reason in a few words, and the `.part` file is kept so the next try resumes.
"""

from __future__ import annotations

import http.client
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from facelab.data.webpage import confirmation_link, looks_like_html, page_summary
from facelab.errors import DatasetError

BLOCK = 1 << 20
TIMEOUT_S = 60
USER_AGENT = "facelab (https://github.com/facelab-course/facelab)"


class FetchError(DatasetError):
    """A download that failed: the network, the server's answer, or a web page instead of the file."""


class RangeRefused(FetchError):
    """The server cannot send the bytes asked for (HTTP 416): the partial file is as long as the whole, or longer."""


def open_url(url: str, offset: int) -> http.client.HTTPResponse:
    """The server's response to a GET of `url`, asking for the bytes from `offset` on when it is not 0."""
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            raise RangeRefused(f"the server cannot resume at byte {offset}") from None
        raise FetchError(f"the server answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"no answer from the server ({reason})") from None


def resumes_at(response: http.client.HTTPResponse, offset: int) -> bool:
    """Whether the server sent the rest of the file from `offset` (206 with a matching Content-Range)."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return offset > 0 and getattr(response, "status", 200) == 206 and bool(match) and int(match.group(1)) == offset


def read_block(response: http.client.HTTPResponse, done: int) -> bytes:
    """The next block of the response (b"" at its end), or FetchError when the connection breaks after `done` bytes."""
    try:
        return response.read(BLOCK)
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"the connection broke after {done} bytes ({exc}); run the command again to resume") from None


def fetch(url: str, part: Path, desc: str, size: int | None = None, progress: bool = True,
          follow_confirmation: bool = True) -> int:
    """Download `url` into `part`, continuing a partial `part` when the server allows it; the bytes received.

    A web page in place of the file is an error, except Google Drive's confirmation page, whose
    "download anyway" link is followed once.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset >= size:
        part.unlink()
        offset = 0
    try:
        response = open_url(url, offset)
    except RangeRefused:
        part.unlink()
        offset, response = 0, open_url(url, 0)
    with response:
        resumed = resumes_at(response, offset)
        offset = offset if resumed else 0
        first = read_block(response, offset)
        if not resumed and looks_like_html(response.headers.get("Content-Type", ""), first):
            page = (first + read_block(response, len(first))).decode("utf-8", "replace")
            link = confirmation_link(page, response.geturl()) if follow_confirmation else None
            if link:
                return fetch(link, part, desc, size, progress, follow_confirmation=False)
            raise FetchError(f"the server sent a web page instead of the file (\"{page_summary(page)}\"; Google "
                             "Drive does this when the file's daily download quota is used up)")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else size
        received = 0
        with open(part, "ab" if resumed else "wb") as handle, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                     disable=not progress) as bar:
            block = first
            while block:
                handle.write(block)
                received += len(block)
                bar.update(len(block))
                block = read_block(response, offset + received)
    if total is not None and offset + received < total:
        raise FetchError(f"the connection closed after {offset + received} of {total} bytes; "
                         "run the command again to resume")
    return received
