"""Hybrid retrieval on a small corpus, and team isolation in the selectors."""

from __future__ import annotations

import pytest

from research import services
from research.selectors import hybrid_search
from tests.conftest import Trio, Workers
from tests.research.helpers import add_texts

CORPUS = {
    "Backups": "Zephyr database backups run nightly at 02:00 UTC and are kept for thirty days.",
    "Deploys": "Kestrel services deploy with blue-green releases every Tuesday afternoon.",
    "Onboarding": "New engineers get a laptop, a buddy and a first ticket in their first week.",
    "Cafeteria": "The cafeteria serves soup and sandwiches between noon and two o'clock.",
}


@pytest.fixture
def corpus(trio: Trio, llm: Workers):  # type: ignore[no-untyped-def]
    alpha = services.collection_create(team=trio.team, name="Alpha KB")
    add_texts(alpha, CORPUS)
    beta = services.collection_create(team=trio.other_team, name="Beta KB")
    add_texts(beta, {"Secret": "Beta's secret launch code for the Zephyr backups is PELICAN."})
    return alpha, beta


def test_hybrid_search_ranks_the_right_document_first(corpus, trio: Trio) -> None:  # type: ignore[no-untyped-def]
    alpha, _ = corpus
    cases = {
        "When do the database backups run?": "Backups",
        "How do we release Kestrel?": "Deploys",
        "What does a new hire receive?": "Onboarding",
        "lunch soup": "Cafeteria",
    }
    for query, title in cases.items():
        hits = hybrid_search(user=trio.member, query=query, collection_ids=[alpha.pk], k=3)
        assert hits, query
        assert hits[0].document_title == title, (query, [h.document_title for h in hits])
        assert hits[0].relevant and hits[0].ranks
    irrelevant = hybrid_search(user=trio.member, query="volcano eruption magma", collection_ids=[alpha.pk], k=3)
    assert not any(h.relevant for h in irrelevant)


def test_search_never_crosses_teams(corpus, trio: Trio) -> None:  # type: ignore[no-untyped-def]
    alpha, beta = corpus
    # The member asks for both collections: team B's collection is dropped in SQL.
    hits = hybrid_search(user=trio.member, query="Zephyr backups launch code", collection_ids=[alpha.pk, beta.pk])
    assert hits and all(h.collection_id == alpha.pk for h in hits)
    assert all("PELICAN" not in h.context for h in hits)
    # The outsider asking for team A's collection gets nothing at all.
    assert hybrid_search(user=trio.outsider, query="Zephyr backups", collection_ids=[alpha.pk]) == []
    own = hybrid_search(user=trio.outsider, query="Zephyr backups launch code", collection_ids=[alpha.pk, beta.pk])
    assert own and all(h.collection_id == beta.pk for h in own)


def test_neighbour_window_widens_a_hit(trio: Trio, llm: Workers) -> None:
    kb = services.collection_create(team=trio.team, name="Long", chunk_size=20, chunk_overlap=5)
    words = " ".join(f"filler{i}" for i in range(30))
    add_texts(kb, {"Long": f"{words} The vault combination is kept by the night porter. {words}"})
    hits = hybrid_search(user=trio.owner, query="vault combination night porter", collection_ids=[kb.pk], k=1)
    assert hits
    assert len(hits[0].context.split()) > len(hits[0].text.split())
    assert "vault" in hits[0].context
