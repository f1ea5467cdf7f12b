"""URL sources: the real jobs worker fetches pages from a local web server (the outside world)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError

from research import services
from research.models import Chunk, Collection, Document, Source
from research.selectors import hybrid_search
from tests.conftest import Trio, Workers
from tests.research.files import HTML, TEXT
from tests.research.helpers import wait_job

PAGES: dict[str, tuple[str, bytes]] = {
    "/kestrel": ("text/html; charset=utf-8", HTML),
    "/notes/orion.txt": ("application/octet-stream", TEXT),  # no useful type: the extension decides
    "/logo.png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
    "/feed": ("application/json", b'{"items": []}'),
}


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path not in PAGES:
            self.send_error(404, "Not Found")
            return
        ctype, body = PAGES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def collection(trio: Trio, llm: Workers) -> Collection:
    return services.collection_create(team=trio.team, name="Web", user=trio.owner)


def _ingest(collection: Collection, urls: list[str]) -> tuple[list[Source], dict[str, object]]:
    sources = [services.source_add_url(collection=collection, user=None, url=u) for u in urls]
    job = wait_job(services.ingest_start(collection=collection, user=None, source_ids=[s.pk for s in sources]))
    assert job.status == "succeeded", job.error
    for s in sources:
        s.refresh_from_db()
    return sources, job.result


def test_web_pages_are_fetched_indexed_and_refetched_once(trio: Trio, collection: Collection, site: str) -> None:
    (page, text), result = _ingest(collection, [f"{site}/kestrel", f"{site}/notes/orion.txt"])
    assert (page.status, text.status) == ("ready", "ready")
    assert result["added"] == 2 and result["failures"] == []
    doc = Document.objects.get(source=page)
    # Main text of the HTML, titled by <title>; scripts and navigation are not indexed.
    assert (doc.title, doc.doc_type, doc.key) == ("Kestrel handbook", "html", f"{site}/kestrel")
    indexed = " ".join(Chunk.objects.filter(document=doc).values_list("text", flat=True))
    assert "blue-green releases" in indexed and "do not index" not in indexed
    assert Document.objects.get(source=text).doc_type == "txt"
    hits = hybrid_search(user=trio.owner, query="How do Kestrel services deploy?", collection_ids=[collection.pk])
    assert hits and hits[0].document_id == doc.pk

    # Fetching the same unchanged page again indexes nothing twice.
    Source.objects.filter(pk=page.pk).update(status="pending")
    job = wait_job(services.ingest_start(collection=collection, user=None, source_ids=[page.pk]))
    assert job.result["unchanged"] == 1 and job.result["added"] == 0
    assert Chunk.objects.filter(document=doc).count() == doc.chunk_count


def test_missing_and_unsupported_pages_fail_clearly_and_index_nothing(collection: Collection, site: str) -> None:
    (missing, image, feed), result = _ingest(collection, [f"{site}/gone", f"{site}/logo.png", f"{site}/feed"])
    assert missing.status == image.status == feed.status == "failed"
    assert missing.error == f"could not fetch {site}/gone: the server answered 404 Not Found"
    assert image.error.startswith(f"unsupported type: image/png at {site}/logo.png (supported: HTML")
    assert "unsupported type: application/json" in feed.error
    failures = result["failures"]
    assert isinstance(failures, list) and len(failures) == 3
    assert not Document.objects.filter(collection=collection).exists()
    assert not Chunk.objects.filter(collection=collection).exists()


def test_only_web_urls_are_accepted(trio: Trio) -> None:
    collection = services.collection_create(team=trio.team, name="Web")
    for bad in ("file:///etc/passwd", "ftp://example.com/a.txt", "example.com"):
        with pytest.raises(ValidationError):
            services.source_add_url(collection=collection, user=None, url=bad)
