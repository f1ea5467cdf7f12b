"""What an uploaded file really is, judged from its bytes: a client picks the name and the type.

Feature code calls ``upload_text`` / ``upload_json_text`` before parsing, so a PDF renamed to
``tasks.json`` or a screenshot sent as a PRD is refused with a message that names what it is.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# Signatures of the binary files people upload by mistake, to name them in the error message.
# Only prefixes that no real text file starts with (PDF's "%PDF-" is ASCII but unmistakable).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or a .docx/.xlsx document)"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"GGUF", "a GGUF model file"),
    (b"\x7fELF", "an executable"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Office document"),
    (b"\xff\xfe", "UTF-16 text"),
    (b"\xfe\xff", "UTF-16 text"),
)
# Text may hold tabs, newlines and form feeds; any other C0 control character means binary.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


class UploadRejected(ValidationError):
    """The upload's content is not what the form takes; the message says what it is instead."""


def sniff(data: bytes) -> str:
    """``"text"`` for UTF-8 text, otherwise a description such as ``"a PNG image"``."""
    for signature, what in _SIGNATURES:
        if data.startswith(signature):
            return what
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "binary data (not UTF-8 text)"
    if _CONTROL.search(text):
        return "binary data (it holds control characters)"
    return "text"


def upload_text(data: bytes, *, name: str, expected: str) -> str:
    """The upload decoded as UTF-8 text, or ``UploadRejected`` naming what it is instead of ``expected``."""
    what = sniff(data)
    if what != "text":
        raise UploadRejected(f"{name or 'The file'} is {what}; expected {expected}. Nothing was saved.")
    return data.decode("utf-8-sig")


def looks_like_json(text: str) -> bool:
    return text.lstrip()[:1] in ("{", "[")


def upload_json_text(data: bytes, *, name: str, expected: str) -> str:
    """Like ``upload_text``, and the text must start like a JSON document (parsing says the rest)."""
    text = upload_text(data, name=name, expected=expected)
    if not looks_like_json(text):
        start = text.lstrip().partition("\n")[0][:20]
        shown = f"it starts with {start!r}" if start else "it is empty"
        raise UploadRejected(f"{name or 'The file'} is not JSON ({shown}); expected {expected}. Nothing was saved.")
    return text
