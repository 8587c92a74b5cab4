"""Reading rendered portal pages as a browser's accessibility tree would: headings, links, landmarks, forms."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser


@dataclass
class Element:
    """One start tag: its name and attributes (valueless attributes map to "")."""

    tag: str
    attrs: dict[str, str]
    text: str = ""


class Outline(HTMLParser):
    """The elements of a page in document order, with the text inside each (for headings, links, buttons)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in _VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i].tag == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def all(self, tag: str, **attrs: str) -> list[Element]:
        """Elements named `tag` whose attributes include `attrs` (`class_` for `class`)."""
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [e for e in self.elements if e.tag == tag and all(e.attrs.get(k) == v for k, v in wanted.items())]

    def one(self, tag: str, **attrs: str) -> Element:
        """The single element matching (fails when there are none or several)."""
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}> elements"
        return found[0]

    def hrefs(self) -> list[str]:
        """Every link target on the page."""
        return [e.attrs["href"] for e in self.all("a") if "href" in e.attrs]


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def outline(html: str) -> Outline:
    """Parse a page."""
    parsed = Outline()
    parsed.feed(html)
    parsed.close()
    return parsed


def text_of(element: Element) -> str:
    """An element's text with whitespace collapsed."""
    return " ".join(element.text.split())
