"""Markdown to safe HTML for model output: no raw HTML, no remote images, no scripts."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")

_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "code",
    "pre",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "sup",
    "span",
}


def render_markdown(text: str) -> str:
    html = _md.render(text)
    # <img> is not allowed at all: a model (or a poisoned document) must not make the
    # browser fetch remote URLs.
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes={"a": {"href", "title"}, "span": {"class"}, "sup": {"class"}, "code": {"class"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
