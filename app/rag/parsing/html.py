"""HTML → blocks with BeautifulSoup: page chrome dropped, headings, lists, tables and <pre>."""

from __future__ import annotations

from typing import Any, Final

from app.rag.parsing.model import (
    LIST_ITEM,
    NO_TEXT,
    PARAGRAPH,
    TABLE_ROW,
    BlockBuilder,
    ParsedDocument,
)
from app.rag.parsing.text import clean

_HTML_NOISE: Final = (
    "script",
    "style",
    "nav",
    "footer",
    "header",
    "noscript",
    "template",
    "head",
    "title",
    "svg",
    "iframe",
    "canvas",
    "object",
    "embed",
    "button",
    "select",
)
# A <header> or <footer> inside the content (an article's title block) is content: only the
# page's own banner and footer are chrome. (<form> is not noise: ASP.NET wraps whole pages.)
_CHROME: Final = frozenset({"header", "footer"})
_NOISE_ROLES: Final = ("navigation", "banner", "contentinfo", "search")
_HTML_BLOCKS: Final = frozenset(
    "address article aside blockquote body caption dd details dialog div dl dt fieldset "
    "figcaption figure hr html li main ol p section summary table tbody tfoot thead ul".split()
)
_HTML_HEADINGS: Final = {f"h{level}": level for level in range(1, 7)}


def parse_html(text: str) -> ParsedDocument:
    from bs4 import BeautifulSoup, Tag

    soup = BeautifulSoup(text, "html.parser")
    builder = BlockBuilder()
    if soup.title is not None:
        builder.set_title(soup.title.get_text())
    first_h1 = soup.find("h1")
    if isinstance(first_h1, Tag):
        builder.set_title(first_h1.get_text())
    for br in soup.find_all("br"):
        br.replace_with(" ")
    _drop_html_noise(soup)
    root = soup.body if soup.body is not None else soup
    _HtmlWalker(builder).walk(root)
    return builder.build(empty=NO_TEXT)


def _drop_html_noise(soup: Any) -> None:
    from bs4 import Tag

    doomed = list(soup.find_all(list(_HTML_NOISE)))
    doomed += soup.find_all(attrs={"hidden": True})
    doomed += soup.find_all(attrs={"aria-hidden": "true"})
    doomed += soup.find_all(attrs={"role": list(_NOISE_ROLES)})
    for tag in doomed:
        if not isinstance(tag, Tag) or tag.decomposed:
            continue
        if tag.name in _CHROME and tag.find_parent(["article", "main"]) is not None:
            continue
        tag.decompose()


class _HtmlWalker:
    """Depth-first over the tree with an explicit stack: uploaded pages can nest deeper than
    Python's recursion limit. Inline text accumulates until the next block boundary."""

    def __init__(self, builder: BlockBuilder) -> None:
        self.builder = builder
        self.buffer: list[str] = []
        self.kinds: list[str] = [PARAGRAPH]

    def walk(self, root: Any) -> None:
        from bs4.element import NavigableString, PreformattedString, Tag

        stack: list[Any] = list(reversed(list(root.children)))
        while stack:
            node = stack.pop()
            if node is None:  # the end of a block element
                self._flush()
                self.kinds.pop()
            elif isinstance(node, NavigableString):
                if not isinstance(node, PreformattedString):  # comments, doctype, CDATA
                    self.buffer.append(str(node))
            elif isinstance(node, Tag):
                stack.extend(self._enter(node))

    def _enter(self, tag: Any) -> list[Any]:
        """Handle a tag; return what to push (children reversed, after an end marker)."""
        name = tag.name.lower()
        if name in _HTML_HEADINGS:
            self._flush()
            self.builder.heading(_HTML_HEADINGS[name], tag.get_text())
            return []
        if name == "tr":
            self._flush()
            cells = [cell.get_text(" ") for cell in tag.find_all(["td", "th"], recursive=False)]
            self.builder.add(" | ".join(c for c in map(clean, cells) if c), TABLE_ROW)
            return []
        if name == "pre":
            self._flush()
            self.builder.add(tag.get_text(), keep_lines=True)
            return []
        children = list(reversed(list(tag.children)))
        if name not in _HTML_BLOCKS:
            return children  # inline: its text joins the current block
        self._flush()
        self.kinds.append(LIST_ITEM if name == "li" else PARAGRAPH)
        return [None, *children]

    def _flush(self) -> None:
        if self.buffer:
            self.builder.add("".join(self.buffer), self.kinds[-1])
            self.buffer.clear()
