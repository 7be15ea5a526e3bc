"""The whole shared corpus (../shared/corpus/email, 120 real messages) through the parser and the
loop classifier, with expectations derived from manifest.tsv's tags."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import pytest

from mail.contact import message_to_contact
from tests.mail.synthetic import offline_settings

CORPUS = Path("/work/shared/corpus/email")
MANIFEST = CORPUS / "manifest.tsv"

# Where the tags are silent about the sender (they describe MIME quirks), the file's headers decide;
# each override names the header that does.
KIND_OVERRIDES = {
    "jhillyerd-enmime/multipart-wo-boundary.eml": "bounce",  # Mailer-Daemon, report, DSN subject
    "mikel-mail/empty_in_reply_to.eml": "list",  # List-Id
    "cpython-test_email/msg_32.eml": "list",  # Precedence: bulk
}
# Reports whose `Action:` is `delayed`: never answered, but not a delivery failure either.
DELAYED = {"sisimai-set-of-emails/maildir__bsd__rfc3464-07.eml", "mikel-mail/report_422.eml"}
# Chinese that must come out exactly (from the reference notes and the messages themselves).
SNIPPETS = {
    "mnako-letters/test_chinese_plaintext_gbk_over_base64.eml": (
        "施氏食狮史",
        "石室诗士施氏，嗜狮",
    ),
    "mnako-letters/test_chinese_plaintext_gb18030_over_quoted-printable.eml": (
        "施氏食狮史",
        "石室诗士施氏，嗜狮",
    ),
    "mnako-letters/test_chinese_multipart_mixed_gbk_over_base64.eml": ("施氏食狮史", "誓食十狮"),
    "mnako-letters/test_chinese_multipart_mixed_gb18030_over_quoted-printable.eml": (
        "施氏食狮史",
        "誓食十狮",
    ),
    "mnako-letters/test_chinese_multipart_related_gbk_over_quoted-printable.eml": ("", "誓食十狮"),
    "mnako-letters/test_chinese_multipart_signed_gb18030_over_base64.eml": ("", "誓食十狮"),
    "jhillyerd-enmime/chardet-success-big-5.eml": ("", "言語不同，生民已來"),
    "mikel-mail/content_transfer_encoding_empty.eml": ("大補泡麵專賣", ""),
    "flufl.bounce-6.0.0/sina_01.eml": ("邮件传输失败！", "邮件无法发送到您指定的地址中"),
    "spamscope-mail-parser/mail_test_9.eml": ("屄", "我把镜头拉近些"),
    "spamscope-mail-parser/mail_test_12.eml": ("代开各地增值税发票", "我公司可代开各类增值税发票"),
    "php-mime-mail-parser/failure.eml": ("", "次の受信者またはグループへの配信に失敗しました"),
}


def _manifest() -> list[tuple[str, str]]:
    with MANIFEST.open(encoding="utf-8") as handle:
        return [(row["file"], row["tags"]) for row in csv.DictReader(handle, delimiter="\t")]


def expected_kind(name: str, tags: str) -> str:
    """The sender kind a mailbox handler reads from the manifest's description of the file."""
    if name in KIND_OVERRIDES:
        return KIND_OVERRIDES[name]
    t = tags.lower()
    words = set(re.findall(r"[a-z0-9/-]+", t))
    if "not a bounce" in t:
        return "auto_reply" if "auto-submitted: auto-replied" in t else "human"
    if "auto-reply" in t:
        return "auto_reply"
    if words & {"mdn", "arf"} or "read receipt" in t:
        return "auto_reply"
    bounce_words = {"bounce", "dsn", "ndr", "ndn", "undeliverable", "rejection", "multipart/report"}
    if words & bounce_words or any(k in t for k in ("failure notice", "too many hops")):
        return "bounce"
    if any(k in t for k in ("list-id", "precedence: list", "precedence: bulk")):
        return "list"
    return "human"


ROWS = _manifest()


def test_manifest_lists_the_whole_corpus() -> None:
    assert len(ROWS) == 120
    assert all((CORPUS / name).is_file() for name, _ in ROWS)


@pytest.fixture(scope="module")
def contacts(tmp_path_factory):  # type: ignore[no-untyped-def]
    monkeypatch = pytest.MonkeyPatch()
    settings = offline_settings(monkeypatch, tmp_path_factory.mktemp("corpus"))
    monkeypatch.undo()
    results = {}
    for name, _ in ROWS:
        started = time.perf_counter()
        contact = message_to_contact((CORPUS / name).read_bytes(), settings=settings, source="imap")
        results[name] = (contact, time.perf_counter() - started)
    return results


@pytest.mark.parametrize(("name", "tags"), ROWS, ids=[name for name, _ in ROWS])
def test_corpus_message_parses_and_classifies(contacts, name: str, tags: str) -> None:  # type: ignore[no-untyped-def]
    contact, seconds = contacts[name]
    assert contact.external_id.startswith("<") and contact.external_id.endswith(">")
    assert contact.external_id == contact.external_id.lower()
    assert contact.sender_kind == expected_kind(name, tags), contact.meta["loop_reasons"]
    assert seconds < 5, f"{name} took {seconds:.1f}s"
    if contact.sender_kind == "bounce":
        assert contact.meta["bounce"]["failed"] is (name not in DELAYED)
    subject_snippet, text_snippet = SNIPPETS.get(name, ("", ""))
    assert subject_snippet in (contact.subject or "")
    assert text_snippet in contact.text


def test_delayed_dsn_is_a_bounce_but_not_a_failure(contacts) -> None:  # type: ignore[no-untyped-def]
    """sisimai rfc3464-07 and mikel report_422 say `Action: delayed`: never answered, not failed."""
    for name in DELAYED:
        contact, _ = contacts[name]
        assert contact.sender_kind == "bounce"
        assert contact.meta["bounce"]["failed"] is False
        assert contact.meta["bounce"]["action"] == "delayed"
        assert contact.meta["mail_class"] == "dsn_delayed"


def test_flanker_delayed_is_a_final_failure_after_five_days(contacts) -> None:  # type: ignore[no-untyped-def]
    """Its tag says "delayed", but its report says `Action: failed` (4.0.0, deleted from queue)."""
    contact, _ = contacts["mailgun-flanker/delayed.eml"]
    assert contact.meta["bounce"] == {
        "failed": True,
        "action": "failed",
        "status": "4.0.0",
        "recipient": "foo@example.com",
        "diagnostic": "smtp; 426 connection timed out",
    }


def test_bounces_name_the_original_message_and_recipient(contacts) -> None:  # type: ignore[no-untyped-def]
    contact, _ = contacts["sisimai-set-of-emails/maildir__bsd__lhost-postfix-01.eml"]
    assert contact.meta["bounce"]["recipient"] == "r@p351355.pool.example.ne.jp"
    contact, _ = contacts["sisimai-set-of-emails/maildir__bsd__rfc3464-01.eml"]
    original = "<e1c50f1b-1c83-4820-bc36-ac6fbfbe8568@example.org>"
    assert contact.meta["bounce"]["original_message_id"] == original
    assert original in contact.references
    contact, _ = contacts["sisimai-set-of-emails/maildir__bsd__lhost-exim-01.eml"]
    assert contact.meta["bounce"]["recipient"] == "kijitora@example.ed.jp"


def test_raw_8bit_and_mislabelled_headers_are_recovered(contacts) -> None:  # type: ignore[no-untyped-def]
    assert contacts["flufl.bounce-6.0.0/sina_01.eml"][0].subject == "邮件传输失败！"
    subject = contacts["mikel-mail/content_transfer_encoding_empty.eml"][0].subject or ""
    assert "(大補泡麵專賣)" in subject and "\ufffd" not in subject
    gbk = contacts["mnako-letters/test_chinese_plaintext_gbk_over_base64.eml"][0]
    assert gbk.subject == "📧 Test 施氏食狮史"
    assert gbk.language_hint == "zh-Hans"


def test_unknown_and_x_gbk_labels_do_not_break_parsing(contacts) -> None:  # type: ignore[no-untyped-def]
    assert contacts["webklex-php-imap/gbk_charset.eml"][0].text.strip()
    assert contacts["mnako-letters/test_english_plaintext_unknown_charset.eml"][0].text == "body"


def test_html_only_mail_becomes_text_and_sanitized_html(contacts) -> None:  # type: ignore[no-untyped-def]
    contact, _ = contacts["jhillyerd-enmime/html-only-inline.eml"]
    assert contact.meta["html_only"] is True
    assert "<" not in contact.text and contact.text.strip()
    assert contact.html and "<script" not in contact.html.lower()


def test_attachment_names_are_decoded_and_safe(contacts) -> None:  # type: ignore[no-untyped-def]
    names = {
        name: [a.filename for a in contacts[name][0].attachments]
        for name in (
            "jhillyerd-enmime/mime-bad-8bit-filename.eml",
            "webklex-php-imap/attachment_long_filename.eml",
            "deltachat-core-rust/attach_filename_apostrophed_windows1251.eml",
        )
    }
    assert names["jhillyerd-enmime/mime-bad-8bit-filename.eml"] == ["管理.doc"]
    assert names["deltachat-core-rust/attach_filename_apostrophed_windows1251.eml"] == [
        "программирование.HTM"
    ]
    long_names = names["webklex-php-imap/attachment_long_filename.eml"]
    assert long_names[0].startswith("Buchungsbestätigung- Rechnung-Geschäftsbedingungen")
    assert long_names[2].startswith("02_A€àäąбيد@Z-0123456789")
    for files in names.values():
        for filename in files:
            assert "/" not in filename and "\\" not in filename and "\ufffd" not in filename


def test_long_header_message_stays_within_budget(contacts) -> None:  # type: ignore[no-untyped-def]
    contact, seconds = contacts["mailgun-flanker/long-header.eml"]
    assert contact.subject and contact.subject.startswith("Die heiße Zypernsonne")
    assert seconds < 2


REPLY_PARTS = {
    "mailgun-talon/gmail.eml": "Hello",
    "mailgun-talon/outlook.eml": "Hello",
    "mailgun-talon/iphone.eml": "Hello\n\nSent from my iPhone",
    "mailgun-talon/apple_mail.eml": "Hello",
    "mailgun-talon/yahoo.eml": "Hello",
    "mailgun-talon/android.eml": "Hello",
    "mailgun-talon/hotmail.eml": "Hello",
    "deltachat-core-rust/gmx-quote.eml": "YIPPEEEEEE\n\nMulti-line",
    "webklex-php-imap/issue-412.eml": "Here is my reply to your reply.\n\nTony Marston",
}


@pytest.mark.parametrize("name", sorted(REPLY_PARTS))
def test_reply_layouts_of_real_clients(contacts, name: str) -> None:  # type: ignore[no-untyped-def]
    """The quote is found (talon's client layouts, GMX, Outlook) and the full body is kept."""
    contact, _ = contacts[name]
    start = contact.meta["quoted_text_start"]
    assert contact.text[:start].strip() == REPLY_PARTS[name]
    assert len(contact.text) > start + 10


def test_bottom_posted_thunderbird_reply_is_not_folded(contacts) -> None:  # type: ignore[no-untyped-def]
    contact, _ = contacts["mailgun-talon/thunderbird.eml"]
    assert "quoted_text_start" not in contact.meta
    assert contact.text.rstrip().endswith("Hello")


def test_rfc2231_and_encoded_word_names(contacts) -> None:  # type: ignore[no-untyped-def]
    def names(name: str) -> list[str]:
        return [a.filename for a in contacts[name][0].attachments]

    assert names("deltachat-core-rust/attach_filename_combined.eml") == ["Maßnahmen Okt. 2020.html"]
    assert names("mikel-mail/attachment_nonascii_filename.eml") == ["ciële.txt"]


def test_inline_images_keep_their_content_id(contacts) -> None:  # type: ignore[no-untyped-def]
    contact, _ = contacts["mnako-letters/test_chinese_multipart_mixed_gbk_over_base64.eml"]
    inline = [a for a in contact.attachments if a.inline]
    assert [(a.filename, a.content_id) for a in inline] == [
        ("inline-jpg-image-filename.jpg", "inline-jpg-image.jpg@example.com")
    ]
    assert all(a.sha256 and len(a.sha256) == 64 for a in contact.attachments)
