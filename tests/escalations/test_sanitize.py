from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from escalations.sanitize import body_as_safe_html, sanitize_html, text_to_html

HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    '<img src="x" onerror="alert(1)">',
    '<body onload="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
    '<a data-mention-user-id="7" href="#">@Jane</a>',
    '<div data-foo="bar" onclick="x()">div</div>',
    '<iframe src="https://evil.example"></iframe>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<form action="https://evil.example"><input name=p></form>',
    '<style>body{background:url("https://evil.example/t.gif")}</style>',
    '<img src="https://tracker.example/pixel.gif" width=1 height=1>',
    '<img src="data:image/png;base64,iVBORw0KGgo=">',
    '<svg onload="alert(1)"><circle/></svg>',
    '<p style="background:url(javascript:alert(1))">styled</p>',
    "<!-- <script>alert(1)</script> -->",
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<a href="vbscript:msgbox(1)">vb</a>',
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_corpus_is_neutralised(payload: str) -> None:
    out = sanitize_html(f"<p>before</p>{payload}<p>after</p>").lower()
    assert "<script" not in out
    assert not re.search(r"\son\w+\s*=", out)
    assert "data-" not in out
    assert "javascript:" not in out
    assert "vbscript:" not in out
    assert "data:" not in out
    assert "<img" not in out
    assert "<iframe" not in out
    assert "<style" not in out
    assert "style=" not in out
    assert "before" in out
    assert "after" in out


def test_remote_image_leaves_a_visible_placeholder_with_alt_text() -> None:
    out = sanitize_html('<p>logo: <img src="https://x.example/l.png" alt="ACME logo"></p>')
    assert "[image removed: ACME logo]" in out


def test_ordinary_mail_survives() -> None:
    html = (
        '<p>Hello,<br>the line is <b>down</b> again. See <a href="https://status.example">'
        "status</a>.</p><ul><li>since 09:00</li></ul><table><tr><td>a</td></tr></table>"
    )
    out = sanitize_html(html)
    for kept in ("<b>down</b>", "<li>since 09:00</li>", 'href="https://status.example"', "<td>"):
        assert kept in out


def test_plain_text_is_escaped_and_keeps_lines() -> None:
    out = text_to_html("line 1\n<script>x</script>\r\nline 3 & more")
    assert out == "<p>line 1<br>&lt;script&gt;x&lt;/script&gt;<br>line 3 &amp; more</p>"


def test_content_type_picks_the_path() -> None:
    assert body_as_safe_html("<b>x</b>", "text/plain") == "<p>&lt;b&gt;x&lt;/b&gt;</p>"
    assert body_as_safe_html("<b>x</b>", "text/html") == "<b>x</b>"


@given(st.text())
def test_any_text_body_is_inert(text: str) -> None:
    out = text_to_html(text)
    assert "<" not in out.replace("<p>", "").replace("</p>", "").replace("<br>", "")


@given(st.text(alphabet=st.sampled_from(list("<>/=\"' abcdefghijklmnopqrstuvwxyz:-"))))
def test_any_markup_soup_never_yields_handlers_or_scripts(soup: str) -> None:
    out = sanitize_html(soup).lower()
    assert "<script" not in out
    assert not re.search(r"<[^>]*\son\w+\s*=", out)
    assert not re.search(r"<[^>]*\sdata-", out)


PLACEHOLDER_RE = re.compile(r"<span>\[image removed(?:: [^<]*)?\]</span>")
"""A placeholder as `sanitize_html` writes it: its alt text is escaped, so holds no ``<``."""


def _outside_placeholders(out: str) -> str:
    return PLACEHOLDER_RE.sub("", out)


def test_a_quoted_gt_in_alt_does_not_end_the_image() -> None:
    # Issue 10 item 13: the placeholder regex stopped at the first ">", so the rest of the
    # image's attributes showed in the copy as escaped text.
    out = sanitize_html('<p>a<img alt=">" src="cid:x">b</p>')
    assert out == "<p>a<span>[image removed: &gt;]</span>b</p>"


@pytest.mark.parametrize(
    "image",
    [
        '<img alt=">" src="cid:x">',
        "<img alt='>' src='cid:x'>",
        '<img alt="a > b < c" src="cid:x">',
        '<img alt=\'say "hi" >\' src="cid:x">',
        '<img alt="&quot;>&lt;b&gt;" src="cid:x">',
        '<img\nalt="line\n>\nbreak"\nsrc="cid:x"\n>',
        '<IMG SRC="cid:x" ALT=">">',
        '<img/src="cid:x"/alt=">">',
        '<img src="cid:x" title=">"/>',
        '<img src="cid:x" alt=">" />',
        "<img src=cid:x alt=a/b title='>' width=1>",
        '<img title=">" src="cid:x" width=1>',
        '<img src="cid:x" alt="" title="a>b">',
    ],
)
def test_no_attribute_text_of_an_image_leaks(image: str) -> None:
    out = sanitize_html(f"<p>a{image}z</p>")
    assert len(PLACEHOLDER_RE.findall(out)) == 1
    rest = _outside_placeholders(out)
    assert rest == "<p>az</p>"
    for leak in ("src=", "cid:", "title", "width"):
        assert leak not in out
    for leak in ("&quot;", '&gt;"', "&lt;", "alt"):
        assert leak not in rest


def test_alt_text_is_unescaped_once_and_escaped_once() -> None:
    out = sanitize_html('<img alt="Tom &amp; Jerry <3 &quot;x&quot;" src="cid:x">')
    assert out == "<span>[image removed: Tom &amp; Jerry &lt;3 &quot;x&quot;]</span>"


def test_markup_that_only_looks_like_an_image_is_text() -> None:
    out = sanitize_html('<a href="https://x.example" title="<img alt=x>">&lt;img alt=y&gt;</a>')
    assert "[image removed" not in out
    assert 'title="&lt;img alt=x&gt;"' in out
    assert ">&lt;img alt=y&gt;</a>" in out


@given(st.lists(st.text(), min_size=1, max_size=4))
def test_every_image_becomes_one_placeholder_and_nothing_else(alts: list[str]) -> None:
    body = "".join(f'<img alt="{html.escape(alt)}" src="x">' for alt in alts)
    out = sanitize_html(f"<p>{body}</p>")
    assert len(PLACEHOLDER_RE.findall(out)) == len(alts)
    assert _outside_placeholders(out) == "<p></p>"
    assert "src" not in _outside_placeholders(out)
    # html5ever reads a NUL as U+FFFD and a CR (or CR LF) as LF, as a browser does.
    shown = [
        alt.replace("\r\n", "\n").replace("\r", "\n").replace("\0", "\ufffd").strip()
        for alt in alts
    ]
    labels = [
        f"[image removed: {html.escape(text)}]" if text else "[image removed]" for text in shown
    ]
    assert out == "<p>" + "".join(f"<span>{label}</span>" for label in labels) + "</p>"
