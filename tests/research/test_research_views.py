"""Every research view with the three users: owner, member (editor), outsider (404)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from research import services
from research.answer import message_add_answer
from research.models import Chunk, Collection, Document, Message, Source, Thread
from research.selectors import Hit
from tests.conftest import Trio

pytestmark = pytest.mark.django_db


def _client(user: object) -> Client:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    return client


@pytest.fixture
def world(trio: Trio) -> dict[str, object]:
    kb = services.collection_create(team=trio.team, name="KB", user=trio.owner)
    source = services.source_add_text(collection=kb, user=trio.owner, title="Note", text="Some text.")
    thread = services.thread_create(team=trio.team, owner=trio.owner, collections=[kb], title="Mine")
    doc = Document.objects.create(source=source, collection=kb, key="k", title="Doc", doc_type="md", sha256="0" * 64)
    chunk = Chunk.objects.create(
        document=doc, collection=kb, position=0, text="Passage <b>x</b>", token_count=2, page=3, embedding=[0.1] * 384
    )
    hit = Hit(chunk.pk, doc.pk, "Doc", kb.pk, 0, 3, "H", chunk.text)
    message = message_add_answer(thread=thread, content="Backups run at night [1].", kind="answer", hits=[hit])
    return {"kb": kb, "source": source, "thread": thread, "message": message}


def test_index_and_collections_pages(trio: Trio, world: dict[str, object]) -> None:
    for user in (trio.owner, trio.member):
        c = _client(user)
        assert c.get("/research/").status_code == 200
        page = c.get("/research/collections/")
        assert page.status_code == 200 and b"KB" in page.content
    outsider = _client(trio.outsider)
    assert b"KB" not in outsider.get("/research/collections/").content
    assert b"Mine" not in outsider.get("/research/").content
    # The member does not see the owner's private thread in the list.
    assert b"Mine" not in _client(trio.member).get("/research/").content


def test_collection_detail_and_sources(trio: Trio, world: dict[str, object]) -> None:
    kb = world["kb"]
    assert isinstance(kb, Collection)
    for user in (trio.owner, trio.member):
        assert _client(user).get(f"/research/collections/{kb.pk}/").status_code == 200
        assert _client(user).get(f"/research/collections/{kb.pk}/sources/").status_code == 200
    assert _client(trio.outsider).get(f"/research/collections/{kb.pk}/").status_code == 404
    assert _client(trio.outsider).get(f"/research/collections/{kb.pk}/sources/").status_code == 404


def test_adding_sources_needs_edit(trio: Trio, world: dict[str, object]) -> None:
    kb = world["kb"]
    assert isinstance(kb, Collection)
    url = f"/research/collections/{kb.pk}/add/"
    bad = SimpleUploadedFile("photo.png", b"\x89PNG")
    r = _client(trio.member).post(url, {"kind": "upload", "files": [bad]}, follow=True)
    assert r.status_code == 200 and b"unsupported type: .png" in r.content
    assert _client(trio.outsider).post(url, {"kind": "text", "text": "x"}).status_code == 404
    r = _client(trio.owner).post(url, {"kind": "text", "text": "  "}, follow=True)
    assert b"Paste some text" in r.content
    r = _client(trio.member).post(url, {"kind": "folder", "path": "/tmp"}, follow=True)
    assert b"Only site admins" in r.content
    r = _client(trio.owner).post(url, {"kind": "url", "url": "ftp://x"}, follow=True)
    assert b"http://" in r.content


def test_settings_and_delete_need_manage(trio: Trio, world: dict[str, object]) -> None:
    kb, source = world["kb"], world["source"]
    assert isinstance(kb, Collection) and isinstance(source, Source)
    settings_url = f"/research/collections/{kb.pk}/settings/"
    data = {"name": "KB2", "chunk_size": "100", "chunk_overlap": "10", "embedding_model": ""}
    assert _client(trio.member).post(settings_url, data).status_code == 404
    assert _client(trio.outsider).post(settings_url, data).status_code == 404
    r = _client(trio.owner).post(settings_url, {**data, "chunk_size": "5"}, follow=True)
    assert b"between 20 and 300" in r.content
    assert _client(trio.outsider).post(f"/research/sources/{source.pk}/delete/").status_code == 404
    assert _client(trio.member).post(f"/research/sources/{source.pk}/delete/").status_code == 302
    assert not Source.objects.filter(pk=source.pk).exists()
    assert _client(trio.member).post(f"/research/collections/{kb.pk}/delete/").status_code == 404
    assert _client(trio.owner).post(f"/research/collections/{kb.pk}/delete/").status_code == 302
    assert not Collection.objects.filter(pk=kb.pk).exists()


def test_threads_are_private_unless_shared(trio: Trio, world: dict[str, object]) -> None:
    thread, message = world["thread"], world["message"]
    assert isinstance(thread, Thread) and isinstance(message, Message)
    urls = [f"/research/threads/{thread.pk}/", f"/research/messages/{message.pk}/sources/1/"]
    page = _client(trio.owner).get(urls[0])
    assert page.status_code == 200 and b"ws-connect" in page.content
    assert f"/research/messages/{message.pk}/sources/1/".encode() in page.content
    panel = _client(trio.owner).get(urls[1], HTTP_HX_REQUEST="true")
    assert b"Passage &lt;b&gt;x&lt;/b&gt;" in panel.content and b"Page 3" in panel.content
    for user in (trio.member, trio.outsider):
        assert all(_client(user).get(u).status_code == 404 for u in urls)
    assert _client(trio.member).post(f"/research/threads/{thread.pk}/edit/", {"shared": "on"}).status_code == 404
    assert _client(trio.owner).post(f"/research/threads/{thread.pk}/edit/", {"shared": "on"}).status_code == 302
    member_view = _client(trio.member).get(urls[0])
    assert member_view.status_code == 200 and b"ws-connect" not in member_view.content
    assert _client(trio.outsider).get(urls[0]).status_code == 404
    assert _client(trio.member).post(f"/research/threads/{thread.pk}/delete/").status_code == 404
    assert _client(trio.outsider).post(f"/research/messages/{message.pk}/feedback/", {"rating": "1"}).status_code == 404
    r = _client(trio.member).post(f"/research/messages/{message.pk}/feedback/", {"rating": "7"})
    assert r.status_code == 400 and b"+1" in r.content
    assert _client(trio.member).post(f"/research/messages/{message.pk}/feedback/", {"rating": "1"}).status_code == 200
    assert _client(trio.owner).post(f"/research/threads/{thread.pk}/delete/").status_code == 302


def test_thread_create_only_uses_own_team_collections(trio: Trio, world: dict[str, object]) -> None:
    kb = world["kb"]
    assert isinstance(kb, Collection)
    r = _client(trio.outsider).post("/research/threads/new/", {"collections": [kb.pk]})
    thread = Thread.objects.get(owner=trio.outsider)
    assert r.status_code == 302 and thread.team == trio.other_team
    assert not thread.collections.exists()


def test_search_page_without_query(trio: Trio, world: dict[str, object]) -> None:
    assert _client(trio.member).get("/research/search/").status_code == 200
    assert _client(trio.outsider).get("/research/search/").status_code == 200


def test_admin_shows_collections_sources_and_job_progress(trio: Trio, world: dict[str, object]) -> None:
    from django.contrib.auth import get_user_model

    from taskmaster.services import job_create

    kb = world["kb"]
    assert isinstance(kb, Collection)
    job_create(team=trio.team, kind="research.ingest", title="Index KB", params={"collection_id": kb.pk}, total=4)
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    c = _client(admin)
    page = c.get(f"/admin/research/collection/{kb.pk}/change/")
    assert page.status_code == 200 and b'role="progressbar"' in page.content and b"Index KB" in page.content
    assert c.get("/admin/research/source/").status_code == 200
    assert c.get("/admin/research/document/").status_code == 200
    assert _client(trio.owner).get("/admin/research/collection/").status_code == 302
