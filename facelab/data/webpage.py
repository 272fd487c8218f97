"""Web pages served instead of a file: spotting them, and the "download anyway" link of Drive's confirmation page.

Google Drive answers a scripted download of a large file with an HTML page: either a virus-scan
confirmation whose form leads to the file, or a notice that the file's daily quota is used up.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body")


def looks_like_html(content_type: str, first_bytes: bytes) -> bool:
    """Whether a response is a web page: by its Content-Type, or by how its first bytes begin."""
    return content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml") or \
        first_bytes.lstrip()[:20].lower().startswith(HTML_STARTS)


class FormParser(HTMLParser):
    """Collects each form's action and hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.forms.append((fields.get("action", ""), {}))
        elif tag == "input" and self.forms and fields.get("type") == "hidden" and fields.get("name"):
            self.forms[-1][1][fields["name"]] = fields.get("value", "")


def confirmation_link(page: str, page_url: str) -> str | None:
    """The URL the page's download form leads to (Drive's "download anyway"), or None when it has none."""
    parser = FormParser()
    parser.feed(page)
    for action, fields in parser.forms:
        if "download" in action.lower() or fields.get("confirm"):
            return f"{urljoin(page_url, action)}?{urlencode(fields)}"
    return None


def page_summary(page: str) -> str:
    """The page's title (or its first words), to quote in an error."""
    start, end = page.lower().find("<title>"), page.lower().find("</title>")
    text = page[start + 7:end] if 0 <= start < end else " ".join(page.split())[:80]
    return " ".join(text.split())[:80]
