"""HTML frames of the one streaming protocol every page uses (htmx ws extension).

1. the user bubble, 2. an empty assistant bubble, 3. escaped token batches swapped
in with hx-swap-oob="beforeend", 4. a final frame that replaces the bubble with
sanitised markdown. Status lines (queue position, tokens/s) swap a small meta span.
"""

from __future__ import annotations

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from taskmaster.markdown import render_markdown


def user_bubble(container: str, text: str) -> SafeString:
    return format_html('<div id="{}" hx-swap-oob="beforeend"><div class="bubble user">{}</div></div>', container, text)


def assistant_bubble(container: str, bubble_id: str, status: str = "Waiting for a worker…") -> SafeString:
    return format_html(
        '<div id="{c}" hx-swap-oob="beforeend"><div class="bubble assistant" id="{b}">'
        '<span id="{b}-text"></span><span class="meta" id="{b}-meta">{s}</span></div></div>',
        c=container,
        b=bubble_id,
        s=status,
    )


def tokens(bubble_id: str, text: str) -> SafeString:
    return format_html('<span id="{}-text" hx-swap-oob="beforeend">{}</span>', bubble_id, text)


def meta(bubble_id: str, text: str) -> SafeString:
    return format_html('<span class="meta" id="{}-meta" hx-swap-oob="outerHTML">{}</span>', bubble_id, text)


def final(bubble_id: str, markdown_text: str, meta_text: str, extra_html: str = "", error: bool = False) -> SafeString:
    body = mark_safe(render_markdown(markdown_text))  # noqa: S308 - sanitised by nh3 in render_markdown
    return format_html(
        '<div class="bubble assistant final{e}" id="{b}" hx-swap-oob="outerHTML">{body}{extra}'
        '<span class="meta" id="{b}-meta">{m}</span></div>',
        e=" error" if error else "",
        b=bubble_id,
        body=body,
        extra=mark_safe(extra_html),  # noqa: S308 - callers pass template-rendered (escaped) HTML
        m=meta_text,
    )


def error(bubble_id: str, message: str, partial_text: str = "") -> SafeString:
    text = (partial_text + "\n\n" if partial_text else "") + f"**Error:** {message}"
    return final(bubble_id, text, "failed", error=True)
