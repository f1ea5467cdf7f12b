"""Extraction per file type and chunking: pure functions, no database."""

from __future__ import annotations

import pytest

from research.extract import ExtractionError, chunk_sections, extract, merge_overlap
from tests.research.files import HTML, MARKDOWN, TEXT, make_docx, make_pdf


def test_markdown_keeps_headings_and_title() -> None:
    doc = extract("zephyr.md", MARKDOWN)
    assert doc.doc_type == "md"
    assert doc.title == "Zephyr storage"
    assert [s.heading for s in doc.sections] == ["Zephyr storage", "Backups"]
    assert "nightly at 02:00" in doc.sections[1].text


def test_text_file_uses_the_file_name_as_title() -> None:
    doc = extract("orion.txt", TEXT)
    assert (doc.title, doc.doc_type) == ("orion", "txt")
    assert doc.sections[0].text.startswith("The Orion telescope")


def test_html_drops_script_style_and_nav() -> None:
    doc = extract("kestrel.html", HTML)
    text = " ".join(s.text for s in doc.sections)
    assert doc.title == "Kestrel handbook"
    assert "blue-green releases" in text and "previous release" in text
    assert "do not index" not in text and "color:red" not in text and "Menu" not in text and "Copyright" not in text
    assert [s.heading for s in doc.sections] == ["Kestrel deployment", "Rollback"]


def test_pdf_keeps_page_numbers() -> None:
    doc = extract("manual.pdf", make_pdf(["Page one talks about lighthouses.", "Page two covers harbour tides."]))
    assert doc.doc_type == "pdf"
    assert [s.page for s in doc.sections] == [1, 2]
    assert "harbour tides" in doc.sections[1].text


def test_docx_keeps_headings() -> None:
    doc = extract("notes.docx", make_docx("Quarterly plan", ["Ship the Falcon release.", "Hire two engineers."]))
    assert doc.doc_type == "docx"
    assert doc.sections[0].heading == "Quarterly plan"
    assert "Falcon release" in doc.sections[0].text


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("photo.png", b"\x89PNG....", "unsupported type: .png (supported: .md"),
        ("archive", b"data", "unsupported type: (no extension)"),
        ("broken.pdf", b"not a pdf at all", "not a readable PDF"),
        ("broken.docx", b"not a zip", "not a readable .docx"),
        ("empty.md", b"   \n\n", "no text found"),
        ("binary.txt", b"\x00\x01\x02\xff\xfe\x00", "not UTF-8 text"),
    ],
)
def test_bad_files_say_what_is_wrong(name: str, data: bytes, message: str) -> None:
    with pytest.raises(ExtractionError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        extract(name, data)


def test_chunks_overlap_and_keep_page_and_heading() -> None:
    words = " ".join(f"w{i}" for i in range(100))
    doc = extract("long.md", f"# Head\n\n{words}\n".encode())
    chunks = chunk_sections(doc.sections, size=40, overlap=10)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert all(c.heading == "Head" and c.token_count <= 40 for c in chunks)
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert first[-10:] == second[:10]
    assert chunks[-1].text.split()[-1] == "w99"
    merged = merge_overlap(chunks[0].text, chunks[1].text).split()
    assert merged == [f"w{i}" for i in range(len(merged))]
