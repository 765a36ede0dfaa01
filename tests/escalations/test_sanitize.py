from __future__ import annotations

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
