"""Allow-list HTML sanitiser for customer email copied into escalation tickets.

Customer email is attacker-controlled. The copy is posted as an *agent* note, so anything a
helpdesk would act on in an agent's note must go: scripts, event handlers, ``javascript:`` and
``data:`` URLs, every ``data-*`` attribute (a helpdesk may take one for an instruction, such as
an anchor that subscribes the agent it names), and remote images (tracking pixels), which
become a visible placeholder.
"""

from __future__ import annotations

import html
import re

import nh3

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "q", "s",
        "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
        "thead", "tr", "u", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "abbr": {"title"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
DROP_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "form", "template"})

_IMG_RE = re.compile(r"<img\b[^>]*>", re.IGNORECASE | re.DOTALL)
_ALT_RE = re.compile(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)


def _image_placeholder(match: re.Match[str]) -> str:
    alt = _ALT_RE.search(match.group(0))
    text = next((g for g in alt.groups() if g), "") if alt else ""
    label = f"[image removed: {html.escape(text.strip())}]" if text.strip() else "[image removed]"
    return f"<span>{label}</span>"


def sanitize_html(body: str) -> str:
    """Clean an HTML body down to the allow-list."""
    without_images = _IMG_RE.sub(_image_placeholder, body)
    return nh3.clean(
        without_images,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROP_WITH_CONTENT),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )


def text_to_html(body: str) -> str:
    """A plain-text body as safe HTML, line breaks kept."""
    return "<p>" + html.escape(body).replace("\r\n", "\n").replace("\n", "<br>") + "</p>"


def body_as_safe_html(body: str, content_type: str) -> str:
    if content_type.lower().startswith("text/html"):
        return sanitize_html(body)
    return text_to_html(body)
