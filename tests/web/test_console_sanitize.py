"""Untrusted email HTML: nothing runs, nothing loads from outside, nothing escapes its box."""

from __future__ import annotations

import pytest

from web.sanitize import PLACEHOLDER, sanitize_email_html, split_quoted_text

ATTACKS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<svg onload="alert(1)"><circle/></svg>',
    '<iframe src="https://evil.example"></iframe>',
    '<object data="x.swf"></object>',
    '<form action="https://evil.example"><input name=p></form>',
    '<div style="position:fixed;inset:0;z-index:99999">over</div>',
    "<style>*{display:none}</style>",
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<base href="https://evil.example/">',
    '<p class="top" id="language-form">spoof</p>',
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<img src="https://evil.example/t.gif" srcset="https://evil.example/t2.gif 2x">',
    '<table background="https://evil.example/bg.png"><tr><td>x</td></tr></table>',
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_are_neutralised(attack):
    clean = sanitize_email_html(f"<p>hello</p>{attack}").lower()
    for bad in (
        "<script",
        "onerror",
        "onload",
        "javascript:",
        "data:text",
        "<iframe",
        "<object",
        "<form",
        "<input",
        "style",
        "<link",
        "<meta",
        "<base",
        'class="top',
        "id=",
        "srcset",
        "background=",
        "<svg",
    ):
        assert bad not in clean, (attack, clean)
    assert ' src="https://' not in clean and ' src="//' not in clean


def test_remote_images_wait_for_a_click_and_cid_images_use_the_stored_attachment():
    html = '<img src="https://cdn.example.com/a.png" alt="logo"><img src="cid:part1@x"><img src="//cdn.example.com/b.png">'
    clean = sanitize_email_html(html, {"part1@x": "/attachments/7"}.get)
    assert clean.count(f'src="{PLACEHOLDER}"') == 2
    assert 'data-remote-src="https://cdn.example.com/a.png"' in clean
    assert 'data-remote-src="//cdn.example.com/b.png"' in clean
    assert 'src="/attachments/7"' in clean


def test_links_open_without_referrer():
    clean = sanitize_email_html('<a href="https://example.com/x">x</a>')
    assert 'rel="noopener noreferrer nofollow"' in clean


def test_the_quoted_history_is_folded_and_stays_well_formed():
    clean = sanitize_email_html(
        "<div>新的內容<blockquote>舊的內容</blockquote></div>", quoted_label="引用"
    )
    assert (
        clean
        == '<div>新的內容<details class="quoted"><summary>引用</summary><blockquote>舊的內容</blockquote></details></div>'
    )
    assert "<details" not in sanitize_email_html("<blockquote>only a quote</blockquote>")


def test_plain_text_quotes_are_split():
    own, quoted = split_quoted_text("好的，謝謝。\n\n陳大文 於 2026年11月2日 寫道：\n> 請問")
    assert own == "好的，謝謝。" and quoted.startswith("陳大文 於")
    assert split_quoted_text("Thanks!\n\nOn Mon, 2 Nov 2026, Desk wrote:\n> hi") == (
        "Thanks!",
        "On Mon, 2 Nov 2026, Desk wrote:\n> hi",
    )
    assert split_quoted_text("no quote here") == ("no quote here", "")
