"""Allow-list HTML sanitiser for customer email copied into escalation tickets.

Customer email is attacker-controlled. The copy is posted as an *agent* note, so anything a
helpdesk would act on in an agent's note must go: scripts, event handlers, ``javascript:`` and
``data:`` URLs, every ``data-*`` attribute (a helpdesk may take one for an instruction, such as
an anchor that subscribes the agent it names), and images (a remote one is a tracking pixel):
each becomes a visible placeholder that shows its alt text.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

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


class _ImageFinder(HTMLParser):
    """Finds the ``<img>`` elements in nh3's output: where each starts, its length, its alt."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[tuple[tuple[int, int], int, str]] = []

    def handle_starttag(self, name: str, attrs: list[tuple[str, str | None]]) -> None:
        if name == "img":
            alt = next((value or "" for key, value in attrs if key == "alt"), "")
            self.images.append((self.getpos(), len(self.get_starttag_text() or ""), alt))


def _image_placeholder(alt: str) -> str:
    text = alt.strip()
    label = f"[image removed: {html.escape(text)}]" if text else "[image removed]"
    return f"<span>{label}</span>"


def _replace_images(cleaned: str) -> str:
    """Each ``<img>`` of nh3's output replaced by its placeholder.

    nh3's HTML5 parser (html5ever) has decided what is an image, as a browser would, and written
    each back as ``<img>`` or ``<img alt="…">`` with the value escaped (``<``, ``>``, ``"`` and
    ``&`` included); no text or other attribute holds a raw ``<``. On that normalised output
    ``HTMLParser`` finds the same elements, and unescapes each alt exactly once.
    """
    finder = _ImageFinder()
    finder.feed(cleaned)
    finder.close()
    line_starts = [0]
    line_starts += [i + 1 for i, char in enumerate(cleaned) if char == "\n"]
    parts: list[str] = []
    done = 0
    for (line, column), length, alt in finder.images:
        start = line_starts[line - 1] + column
        parts += [cleaned[done:start], _image_placeholder(alt)]
        done = start + length
    parts.append(cleaned[done:])
    return "".join(parts)


def sanitize_html(body: str) -> str:
    """Clean an HTML body down to the allow-list, each image left as a visible placeholder."""
    cleaned = nh3.clean(
        body,
        tags=set(ALLOWED_TAGS) | {"img"},
        clean_content_tags=set(DROP_WITH_CONTENT),
        attributes={k: set(v) for k, v in ALLOWED_ATTRIBUTES.items()} | {"img": {"alt"}},
        url_schemes=set(URL_SCHEMES),
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )
    return _replace_images(cleaned)


def text_to_html(body: str) -> str:
    """A plain-text body as safe HTML, line breaks kept."""
    return "<p>" + html.escape(body).replace("\r\n", "\n").replace("\n", "<br>") + "</p>"


def body_as_safe_html(body: str, content_type: str) -> str:
    if content_type.lower().startswith("text/html"):
        return sanitize_html(body)
    return text_to_html(body)
