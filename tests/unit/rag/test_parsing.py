"""Uploads → blocks: real files of every supported kind, built here, and the ways uploads fail."""

from __future__ import annotations

import io
import zipfile

import docx
import pytest
from fpdf import FPDF

from app.rag.parsing import (
    SUPPORTED,
    Block,
    CorruptDocument,
    EmptyDocument,
    ParseError,
    UnsupportedType,
    detect_kind,
    parse_document,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02" + bytes(40)


def texts(blocks: list[Block]) -> list[str]:
    return [block.text for block in blocks]


# --- PDF --------------------------------------------------------------------------------------


def handbook_pdf() -> bytes:
    """Two pages, each with a running header and a page-number footer; a large first line,
    a smaller section heading, a word hyphenated across lines, and a list."""
    pdf = FPDF()
    pdf.set_auto_page_break(False)
    pages = [
        ("Returns Policy", "Refund window", "You can return any item within thirty days"),
        ("Shipping", "Delivery times", "Parcels leave our warehouse every working day"),
    ]
    for number, (title, section, opening) in enumerate(pages, 1):
        pdf.add_page()
        pdf.set_font("Helvetica", size=9)
        pdf.cell(0, 8, "ACME Corp - Customer Handbook", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 20)
        pdf.cell(0, 12, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 14)
        pdf.cell(0, 10, section, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(
            0,
            6,
            f"{opening} and the refund goes back to the card you paid with. Keep the "
            "receipt as an exam-\nple of proof of purchase.",
        )
        pdf.ln(8)
        pdf.multi_cell(0, 6, f"Questions about page {number}? Call the help line.")
        pdf.ln(4)
        pdf.multi_cell(0, 6, f"- bring the receipt {number}\n- bring the card {number}")
        pdf.set_y(-20)
        pdf.set_font("Helvetica", size=9)
        pdf.cell(0, 8, f"Page {number} of 2")
    return bytes(pdf.output())


def test_pdf_pages_headings_paragraphs_and_lists() -> None:
    doc = parse_document(handbook_pdf(), "handbook.pdf", "application/pdf")

    assert doc.pages == 2
    assert doc.title == "Returns Policy"  # no metadata title: the first heading
    assert texts(doc.blocks) == [
        "You can return any item within thirty days and the refund goes back to the card you "
        "paid with. Keep the receipt as an example of proof of purchase.",
        "Questions about page 1? Call the help line.",
        "bring the receipt 1",
        "bring the card 1",
        "Parcels leave our warehouse every working day and the refund goes back to the card "
        "you paid with. Keep the receipt as an example of proof of purchase.",
        "Questions about page 2? Call the help line.",
        "bring the receipt 2",
        "bring the card 2",
    ]
    assert [b.headings for b in doc.blocks[:4]] == [("Returns Policy", "Refund window")] * 4
    assert [b.headings for b in doc.blocks[4:]] == [("Shipping", "Delivery times")] * 4
    assert [b.kind for b in doc.blocks[:4]] == ["paragraph", "paragraph", "list_item", "list_item"]


def test_pdf_title_comes_from_metadata_when_present() -> None:
    pdf = FPDF()
    pdf.set_title("Acme Customer Handbook")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "Opening hours are nine to five.")
    assert parse_document(bytes(pdf.output()), "a.pdf").title == "Acme Customer Handbook"


def one_line_pdf(text: str = "Opening hours are nine to five.") -> FPDF:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, text)
    return pdf


def test_password_protected_pdf_says_so() -> None:
    pdf = one_line_pdf()
    pdf.set_encryption(owner_password="owner", user_password="secret")

    with pytest.raises(CorruptDocument, match="password"):
        parse_document(bytes(pdf.output()), "locked.pdf")


def test_pdf_encrypted_for_permissions_only_still_opens() -> None:
    pdf = one_line_pdf()
    pdf.set_encryption(owner_password="owner")  # empty user password: anyone may read it

    assert texts(parse_document(bytes(pdf.output()), "perm.pdf").blocks) == [
        "Opening hours are nine to five."
    ]


def test_pdf_without_text_is_empty() -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60)

    with pytest.raises(EmptyDocument, match="scanned"):
        parse_document(bytes(pdf.output()), "scan.pdf")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_pdf_is_corrupt(keep: float) -> None:
    data = handbook_pdf()
    with pytest.raises(CorruptDocument, match="PDF could not be read"):
        parse_document(data[: int(len(data) * keep)], "cut.pdf")


def test_pdf_with_a_damaged_body_is_corrupt() -> None:
    with pytest.raises(CorruptDocument, match="PDF could not be read"):
        parse_document(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage\n%%EOF", "bad.pdf")


# --- DOCX -------------------------------------------------------------------------------------


def handbook_docx() -> bytes:
    document = docx.Document()
    document.add_paragraph("Acme Handbook", style="Title")
    document.add_paragraph("Read this before calling.")
    document.add_heading("Returns", level=1)
    document.add_paragraph("Items can be returned within 30 days.")
    document.add_heading("Refund window", level=2)
    paragraph = document.add_paragraph("Refunds take ")
    paragraph.add_run("five").bold = True
    paragraph.add_run(" working   days.")
    document.add_paragraph("Keep the receipt", style="List Bullet")
    document.add_paragraph("Use the original box", style="List Number")
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate(
        [("Plan", "Price", "Users"), ("Basic", "$10", "5"), ("Pro", "$30", "")]
    ):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_heading("Shipping", level=1)
    document.add_paragraph("We ship every day.")
    document.add_paragraph("   ")  # empty paragraphs are layout, not blocks
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx_headings_lists_and_tables() -> None:
    doc = parse_document(handbook_docx(), "handbook.docx")

    assert doc.title == "Acme Handbook"
    assert doc.pages is None
    assert [(b.text, b.kind, b.headings) for b in doc.blocks] == [
        ("Read this before calling.", "paragraph", ("Acme Handbook",)),
        ("Items can be returned within 30 days.", "paragraph", ("Acme Handbook", "Returns")),
        (
            "Refunds take five working days.",
            "paragraph",
            ("Acme Handbook", "Returns", "Refund window"),
        ),
        ("Keep the receipt", "list_item", ("Acme Handbook", "Returns", "Refund window")),
        ("Use the original box", "list_item", ("Acme Handbook", "Returns", "Refund window")),
        ("Plan | Price | Users", "table_row", ("Acme Handbook", "Returns", "Refund window")),
        ("Basic | $10 | 5", "table_row", ("Acme Handbook", "Returns", "Refund window")),
        ("Pro | $30", "table_row", ("Acme Handbook", "Returns", "Refund window")),
        ("We ship every day.", "paragraph", ("Acme Handbook", "Shipping")),
    ]


def test_docx_with_a_broken_document_part_is_corrupt() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document><not xml")
    with pytest.raises(CorruptDocument, match="DOCX could not be read"):
        parse_document(buffer.getvalue(), "broken.docx")


def test_docx_without_text_is_empty() -> None:
    buffer = io.BytesIO()
    docx.Document().save(buffer)
    with pytest.raises(EmptyDocument):
        parse_document(buffer.getvalue(), "blank.docx")


# --- HTML -------------------------------------------------------------------------------------

PAGE = b"""<!DOCTYPE html>
<html><head><title>Acme Help</title><style>p { color: red }</style>
<script>var trap = "<p>not text</p>";</script></head>
<body>
<header><nav><a href="/">Home</a> <a href="/shop">Shop</a></nav></header>
<main>
  <h1>Help <em>centre</em></h1>
  <p>Welcome to <b>Acme</b>'s help pages.<br>Call   us anytime.</p>
  <div>Loose text <span>in a div</span><p>and a nested paragraph</p></div>
  <h2>Returns</h2>
  <ul><li>Thirty days<ul><li>unless opened</li></ul></li><li>Free label</li></ul>
  <table><thead><tr><th>Plan</th><th>Price</th></tr></thead>
         <tbody><tr><td>Basic</td><td>$10</td></tr></tbody></table>
  <article><header><h3>Exceptions</h3></header>
  <blockquote>Gift cards cannot be returned.</blockquote>
  <pre>Order code:
  ACME-123</pre>
  <!-- a comment -->
  <div hidden>hidden text</div><noscript>enable JavaScript</noscript></article>
</main>
<footer>Copyright 2025 Acme</footer>
</body></html>"""


def test_html_structure_without_page_chrome() -> None:
    doc = parse_document(PAGE, "help.html", "text/html; charset=utf-8")

    assert doc.title == "Acme Help"
    assert [(b.text, b.kind, b.headings) for b in doc.blocks] == [
        ("Welcome to Acme's help pages. Call us anytime.", "paragraph", ("Help centre",)),
        ("Loose text in a div", "paragraph", ("Help centre",)),
        ("and a nested paragraph", "paragraph", ("Help centre",)),
        ("Thirty days", "list_item", ("Help centre", "Returns")),
        ("unless opened", "list_item", ("Help centre", "Returns")),
        ("Free label", "list_item", ("Help centre", "Returns")),
        ("Plan | Price", "table_row", ("Help centre", "Returns")),
        ("Basic | $10", "table_row", ("Help centre", "Returns")),
        ("Gift cards cannot be returned.", "paragraph", ("Help centre", "Returns", "Exceptions")),
        ("Order code:\n  ACME-123", "paragraph", ("Help centre", "Returns", "Exceptions")),
    ]


def test_html_title_falls_back_to_first_h1_in_a_deeply_nested_form_page() -> None:
    page = "<form>" + "<div>" * 3000 + "<h1>Deep</h1><p>Still read.</p>" + "</div>" * 3000
    doc = parse_document(page.encode(), "deep.htm")
    assert doc.title == "Deep"
    assert texts(doc.blocks) == ["Still read."]


# --- Markdown ---------------------------------------------------------------------------------

NOTES = """---
title: Acme support notes
---
Acme Help
=========

Welcome to **Acme**. See [our site](https://acme.test) or `call us`, \\*not emphasis\\*.
This line continues the same paragraph_with_underscores and _emphasis_.

Returns
-------

- Thirty days
* Free *label*
  continued on the next line
+ Gift cards excluded
1. Print the label
2. Drop it off

## Refund window ##

| Plan | Price |
|------|------:|
| Basic | $10 |

```
# not a heading
keep   this
```

***

> Refunds take five days.
"""


def test_markdown_headings_lists_links_and_code() -> None:
    doc = parse_document(NOTES.encode(), "notes.md")

    assert doc.title == "Acme support notes"
    assert [(b.text, b.kind, b.headings) for b in doc.blocks] == [
        (
            "Welcome to Acme. See our site or call us, *not emphasis*. This line continues the "
            "same paragraph_with_underscores and emphasis.",
            "paragraph",
            ("Acme Help",),
        ),
        ("Thirty days", "list_item", ("Acme Help", "Returns")),
        ("Free label continued on the next line", "list_item", ("Acme Help", "Returns")),
        ("Gift cards excluded", "list_item", ("Acme Help", "Returns")),
        ("1. Print the label", "list_item", ("Acme Help", "Returns")),
        ("2. Drop it off", "list_item", ("Acme Help", "Returns")),
        ("Plan | Price", "table_row", ("Acme Help", "Refund window")),
        ("Basic | $10", "table_row", ("Acme Help", "Refund window")),
        ("# not a heading\nkeep   this", "paragraph", ("Acme Help", "Refund window")),
        ("Refunds take five days.", "paragraph", ("Acme Help", "Refund window")),
    ]


def test_markdown_title_is_the_first_heading_without_front_matter() -> None:
    doc = parse_document(b"# Opening hours\n\nNine to five.\n", "hours.markdown")
    assert doc.title == "Opening hours"
    assert doc.blocks == [Block("Nine to five.", ("Opening hours",))]


# --- Plain text -------------------------------------------------------------------------------

GUIDE = (
    "Café opening hours\n\n"
    "The café opens at nine – every day  except Sunday,\n"
    "when it stays closed.\n\n"
    "- Coffee\n- Tea\n"
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_txt_in_common_encodings(encoding: str) -> None:
    doc = parse_document(GUIDE.encode(encoding), "guide.txt", "text/plain")

    assert [(b.text, b.kind, b.headings) for b in doc.blocks] == [
        (
            "The café opens at nine – every day except Sunday, when it stays closed.",
            "paragraph",
            ("Café opening hours",),
        ),
        ("Coffee", "list_item", ("Café opening hours",)),
        ("Tea", "list_item", ("Café opening hours",)),
    ]


def test_txt_short_last_line_is_not_a_heading() -> None:
    doc = parse_document(b"Call us on weekdays.\n\nThanks", "t.txt")
    assert doc.blocks == [Block("Call us on weekdays.", ()), Block("Thanks", ())]
    assert doc.title is None


def test_whitespace_only_text_is_empty() -> None:
    with pytest.raises(EmptyDocument):
        parse_document(b" \n\t\n  \n", "blank.txt")


# --- Detection and refusals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content_type", "data", "kind"),
    [
        ("a.pdf", None, b"%PDF-1.7\n...", "pdf"),
        ("upload", "application/octet-stream", b"%PDF-1.4", "pdf"),  # bytes beat the name
        ("notes.txt", None, b"%PDF-1.4", "pdf"),
        ("junk-first.pdf", None, b"\r\nGARBAGE%PDF-1.4", "pdf"),
        ("faq.txt", None, b"PDFs start with %PDF-1.7", "txt"),
        ("notes.MD", None, b"# Title", "markdown"),
        ("page.htm", None, b"<p>x</p>", "html"),
        ("upload", "text/markdown; charset=utf-8", b"# Title", "markdown"),
        ("upload", None, b"<!doctype html><p>x</p>", "html"),
        ("upload", None, b"plain words", "txt"),
        ("C:\\Users\\me\\faq.txt", None, b"plain words", "txt"),
        ("faq.text", "text/markdown", b"plain words", "txt"),  # the extension wins
    ],
)
def test_detect_kind(filename: str, content_type: str | None, data: bytes, kind: str) -> None:
    assert detect_kind(filename, content_type, data) == kind


def test_detect_kind_finds_docx_inside_the_zip() -> None:
    assert detect_kind("upload.bin", None, handbook_docx()) == "docx"


def test_supported_lists_extensions_and_mime_types() -> None:
    assert set(SUPPORTED) == {"pdf", "docx", "txt", "markdown", "html"}
    assert ".md" in SUPPORTED["markdown"].extensions
    assert "application/pdf" in SUPPORTED["pdf"].mime_types


def test_image_is_unsupported() -> None:
    with pytest.raises(UnsupportedType, match=r"image/png is not supported: upload PDF, DOCX"):
        parse_document(PNG, "photo.png", "image/png")


def test_image_named_pdf_is_refused_for_what_it_is() -> None:
    with pytest.raises(UnsupportedType, match=r"image/png is not supported \(the file is named"):
        parse_document(PNG, "scan.pdf", "application/pdf")


def test_text_named_pdf_is_corrupt() -> None:
    with pytest.raises(CorruptDocument, match="named as PDF but its contents are not PDF"):
        parse_document(b"just some words", "report.pdf")


def test_empty_upload_is_empty() -> None:
    with pytest.raises(EmptyDocument, match="empty"):
        parse_document(b"", "empty.pdf")


@pytest.mark.parametrize("filename", ["archive.zip", "report.docx"])
def test_zip_that_is_not_a_docx_is_unsupported(filename: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(UnsupportedType, match="ZIP archives are not supported"):
        parse_document(buffer.getvalue(), filename)


def test_spreadsheet_is_named_in_the_refusal() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UnsupportedType, match="Excel"):
        parse_document(buffer.getvalue(), "prices.xlsx")


def test_damaged_zip_named_docx_is_corrupt() -> None:
    with pytest.raises(CorruptDocument, match="DOCX could not be read"):
        parse_document(b"PK\x03\x04" + b"\x01" * 100, "report.docx")


@pytest.mark.parametrize(
    "data",
    [b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" * 20, bytes(range(1, 32)) * 20],
    ids=["nul-bytes", "control-characters"],
)
def test_binary_disguised_as_text_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptDocument, match="binary data"):
        parse_document(data, "notes.txt", "text/plain")


@pytest.mark.parametrize(
    ("filename", "content_type"), [("prices.csv", None), ("upload", "text/csv")]
)
def test_unknown_declared_type_is_unsupported(filename: str, content_type: str | None) -> None:
    with pytest.raises(UnsupportedType, match=r"^(\.csv files are|text/csv is) not supported"):
        parse_document(b"a,b\n1,2\n", filename, content_type)


def test_every_refusal_is_a_value_error_with_a_message() -> None:
    with pytest.raises(ValueError) as caught:
        parse_document(PNG, "x.gif")
    assert isinstance(caught.value, ParseError)
    assert str(caught.value)


def test_txt_dialogue_and_dates_are_not_headings() -> None:
    text = (
        "Returns\n\nParts can be returned within thirty days of delivery for a full refund.\n\n"
        '"I have it, Watson—\n\nHe stopped, and looked at the window for a long while.\n\n'
        "_October 9, 1890._\n\nThe letter arrived in the morning post with no return address.\n"
    )
    doc = parse_document(text.encode(), "notes.txt")
    assert {b.headings for b in doc.blocks} == {("Returns",)}
