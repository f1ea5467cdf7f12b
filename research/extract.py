"""Text extraction per file type and chunking. Pure functions: bytes in, sections out."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import PurePath

SUPPORTED = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx")
# A chunk is embedded in one piece; MiniLM's context is 512 tokens, so characters are
# capped too (long identifiers can cost several tokens per "word").
MAX_CHUNK_CHARS = 1500


class ExtractionError(ValueError):
    """The file cannot be read; the message says why, for the source's error field."""


@dataclass
class Section:
    text: str
    page: int | None = None
    heading: str = ""


@dataclass
class Extracted:
    title: str
    doc_type: str
    sections: list[Section]


@dataclass
class ChunkData:
    position: int
    text: str
    token_count: int
    page: int | None
    heading: str


def unsupported_message(name: str) -> str:
    suffix = PurePath(name).suffix.lower() or "(no extension)"
    return f"unsupported type: {suffix} (supported: {', '.join(SUPPORTED)})"


def is_supported(name: str) -> bool:
    return PurePath(name).suffix.lower() in SUPPORTED


def doc_type_of(name: str) -> str:
    suffix = PurePath(name).suffix.lower()
    return {".markdown": "md", ".htm": "html"}.get(suffix, suffix.lstrip("."))


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise ExtractionError("the file is not UTF-8 text (binary or an unknown encoding)")
    return text


_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")


def _markdown(text: str) -> list[Section]:
    sections: list[Section] = []
    heading, lines = "", list[str]()
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            if "".join(lines).strip():
                sections.append(Section("\n".join(lines), heading=heading))
            heading, lines = match.group(2)[:300], []
        else:
            lines.append(line)
    if "".join(lines).strip():
        sections.append(Section("\n".join(lines), heading=heading))
    return sections


def _html(data: bytes) -> tuple[str, list[Section]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "nav", "header", "footer", "aside", "noscript", "form", "template", "svg"]):
        tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    sections: list[Section] = []
    heading, parts = "", list[str]()
    for el in root.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "blockquote"]):
        if el.find_parent(["p", "li", "pre", "td", "blockquote"]) is not None:
            continue
        text = el.get_text(" ", strip=True)
        if not text:
            continue
        if el.name and el.name[0] == "h" and el.name[1:].isdigit():
            if parts:
                sections.append(Section("\n".join(parts), heading=heading))
            heading, parts = text[:300], []
        else:
            parts.append(text)
    if parts:
        sections.append(Section("\n".join(parts), heading=heading))
    if not sections:
        text = root.get_text(" ", strip=True)
        if text:
            sections.append(Section(text))
    return title, sections


def _pdf(data: bytes) -> tuple[str, list[Section]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ExtractionError("the PDF is encrypted")
        sections = [
            Section(page.extract_text() or "", page=number) for number, page in enumerate(reader.pages, start=1)
        ]
        title = str(reader.metadata.get("/Title") or "") if reader.metadata else ""
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, ExtractionError):
            raise
        raise ExtractionError(f"not a readable PDF: {exc}") from None
    return title, [s for s in sections if s.text.strip()]


def _docx(data: bytes) -> tuple[str, list[Section]]:
    import zipfile

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ExtractionError(f"not a readable .docx file: {exc}") from None
    sections: list[Section] = []
    heading, parts = "", list[str]()
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":
            if parts:
                sections.append(Section("\n".join(parts), heading=heading))
            heading, parts = text[:300], []
        else:
            parts.append(text)
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text.strip() for cell in row.cells))
    if parts:
        sections.append(Section("\n".join(parts), heading=heading))
    title = document.core_properties.title or ""
    return title, sections


def extract(name: str, data: bytes) -> Extracted:
    """Sections of a file by its extension; ExtractionError says what is wrong."""
    if not is_supported(name):
        raise ExtractionError(unsupported_message(name))
    doc_type = doc_type_of(name)
    stem = PurePath(name).stem or name
    title = ""
    if doc_type in {"md", "txt"}:
        text = _decode(data)
        sections = _markdown(text) if doc_type == "md" else [Section(text)]
        if doc_type == "md":
            first = next((s.heading for s in sections if s.heading), "")
            title = first
    elif doc_type == "html":
        title, sections = _html(data)
    elif doc_type == "pdf":
        title, sections = _pdf(data)
    else:
        title, sections = _docx(data)
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise ExtractionError("no text found in the file (empty, or a scanned document without a text layer)")
    return Extracted(title=(title or stem)[:300], doc_type=doc_type, sections=sections)


def chunk_sections(sections: list[Section], *, size: int, overlap: int) -> list[ChunkData]:
    """Split on whitespace into windows of ``size`` words sharing ``overlap`` words.

    A chunk never spans two sections, so each keeps its page and heading.
    """
    size = max(20, min(size, 300))
    overlap = max(0, min(overlap, size // 2))
    chunks: list[ChunkData] = []
    for section in sections:
        words = section.text.split()
        start = 0
        while start < len(words):
            window = words[start : start + size]
            text = " ".join(window)
            while len(text) > MAX_CHUNK_CHARS and len(window) > 1:
                window = window[: max(1, len(window) * 3 // 4)]
                text = " ".join(window)
            text = text[:MAX_CHUNK_CHARS]
            chunks.append(ChunkData(len(chunks), text, len(window), section.page, section.heading))
            if start + len(window) >= len(words):
                break
            start += max(1, len(window) - overlap)
    return chunks


def merge_overlap(first: str, second: str) -> str:
    """Join two neighbouring chunks, dropping the words they share."""
    a, b = first.split(), second.split()
    for n in range(min(len(a), len(b)), 0, -1):
        if a[-n:] == b[:n]:
            return " ".join(a + b[n:])
    return f"{first} {second}"
