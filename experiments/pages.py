"""One document model for every page the lab writes, rendered to Markdown and HTML.

A page is a list of blocks (headings, paragraphs, tables, images, code); a
table is headers plus rows of :class:`Cell` (text, optional link, optional
tone such as ``held``/``violated``). Markdown goes through ``tabulate``
(GitHub pipe tables), HTML through a Jinja2 template with autoescaping, so
both formats always carry the same content.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2
from markupsafe import Markup, escape
from tabulate import tabulate


@dataclass(frozen=True)
class Cell:
    """One table cell: ``text``, an optional link ``href`` and an optional ``tone``."""

    text: str
    href: str | None = None
    tone: str | None = None


CellLike = Cell | str | int | float | None


def cell(x: CellLike) -> Cell:
    return x if isinstance(x, Cell) else Cell("" if x is None else str(x))


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)

    def add(self, *cells: CellLike) -> None:
        if len(cells) != len(self.headers):
            raise ValueError(f"row has {len(cells)} cells, table has {len(self.headers)} columns")
        self.rows.append([cell(c) for c in cells])


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    """A paragraph; ``parts`` are plain strings or linked :class:`Cell` s."""

    parts: tuple[CellLike, ...]
    quote: bool = False

    @classmethod
    def of(cls, *parts: CellLike, quote: bool = False) -> Para:
        return cls(tuple(parts), quote)


@dataclass(frozen=True)
class Image:
    src: str
    alt: str
    width: int | None = None  # px, HTML only


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Grid:
    """Small multiples (HTML: a wrapping grid; Markdown: one linked image per line)."""

    items: tuple[tuple[Image, str, str | None], ...]  # (image, caption, link)


Block = Heading | Para | Table | Image | Code | Grid


@dataclass
class Page:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Page:
        self.blocks.extend(blocks)
        return self


# ------------------------------------------------------------------ Markdown

def _md_text(c: Cell) -> str:
    text = c.text.replace("|", "/").replace("\n", " ")
    if c.tone in ("held", "violated", "unknown") and text:
        text = f"**{text}**"
    return f"[{text}]({c.href})" if c.href else text


def table_markdown(t: Table) -> str:
    if not t.rows:
        return "_(none)_"
    return tabulate([[_md_text(c) for c in r] for r in t.rows], headers=t.headers, tablefmt="github",
                    disable_numparse=True)


def _para_md(p: Para) -> str:
    text = "".join(_md_text(cell(x)) for x in p.parts)
    return "> " + text if p.quote else text


def markdown(page: Page) -> str:
    out = [f"# {page.title}", ""]
    for b in page.blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Para):
            out += [_para_md(b), ""]
        elif isinstance(b, Table):
            out += [table_markdown(b), ""]
        elif isinstance(b, Image):
            out += [f"![{b.alt}]({b.src})", ""]
        elif isinstance(b, Code):
            out += ["```", b.text, "```", ""]
        elif isinstance(b, Grid):
            out += [f"[![{img.alt}]({img.src})]({link or img.src}) {caption}" for img, caption, link in b.items]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------ HTML

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_PAGE = _ENV.from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ page.title }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1300px;margin:1.5em auto;padding:0 1em;
color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d0d0d0;padding:4px 8px;vertical-align:top;text-align:left}
th{background:#f3f3f3}
td.held{background:#dff3df}td.violated{background:#f8d6d6}td.unknown{background:#fbefc5}
td.measured{background:#eef2f8}td.muted{color:#777}
blockquote{border-left:4px solid #f0a000;margin:.6em 0;padding:.3em .8em;background:#fff8e6}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0;width:420px}
.grid img{width:420px;border:1px solid #ddd}.grid figcaption{font-size:.85em}
img.plot{max-width:100%;border:1px solid #ddd}
</style></head><body>
<h1>{{ page.title }}</h1>
{% for b in page.blocks %}
{% if b.kind == "heading" %}<h{{ b.level }}>{{ b.text }}</h{{ b.level }}>
{% elif b.kind == "para" %}{% if b.quote %}<blockquote>{% else %}<p>{% endif %}{#
#}{% for c in b.parts %}{{ link(c) }}{% endfor %}{#
#}{% if b.quote %}</blockquote>{% else %}</p>{% endif %}
{% elif b.kind == "table" %}<table><tr>{% for h in b.headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for r in b.rows %}<tr>{% for c in r %}<td{% if c.tone %} class="{{ c.tone }}"{% endif %}>{#
#}{{ link(c) }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% elif b.kind == "image" %}<p><img class="plot" src="{{ b.src }}" alt="{{ b.alt }}"{#
#}{% if b.width %} width="{{ b.width }}"{% endif %}></p>
{% elif b.kind == "code" %}<pre>{{ b.text }}</pre>
{% elif b.kind == "grid" %}<div class="grid">{#
#}{% for img, caption, href in b.figures %}<figure><a href="{{ href or img.src }}">{#
#}<img src="{{ img.src }}" alt="{{ img.alt }}"></a><figcaption>{{ caption }}</figcaption></figure>{#
#}{% endfor %}</div>
{% endif %}
{% endfor %}
</body></html>
""")


def _link(c: CellLike) -> Any:
    c = cell(c)
    text = escape(c.text)
    if c.href:
        return Markup(f'<a href="{escape(c.href)}">{text}</a>')
    return text


def _blocks_for_html(blocks: Iterable[Block]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append({"kind": "heading", "text": b.text, "level": b.level})
        elif isinstance(b, Para):
            out.append({"kind": "para", "parts": b.parts, "quote": b.quote})
        elif isinstance(b, Table):
            out.append({"kind": "table", "headers": b.headers, "rows": b.rows})
        elif isinstance(b, Image):
            out.append({"kind": "image", "src": b.src, "alt": b.alt, "width": b.width})
        elif isinstance(b, Code):
            out.append({"kind": "code", "text": b.text})
        elif isinstance(b, Grid):
            out.append({"kind": "grid", "figures": b.items})
    return out


def html(page: Page) -> str:
    return _PAGE.render(page={"title": page.title, "blocks": _blocks_for_html(page.blocks)}, link=_link)


def links(page: Page) -> list[str]:
    """Every link and image source on the page (for link checks in tests)."""
    out: list[str] = []

    def visit(cs: Sequence[CellLike]) -> None:
        out.extend(c.href for c in map(cell, cs) if c.href)

    for b in page.blocks:
        if isinstance(b, Para):
            visit(b.parts)
        elif isinstance(b, Table):
            for r in b.rows:
                visit(r)
        elif isinstance(b, Image):
            out.append(b.src)
        elif isinstance(b, Grid):
            for img, _caption, href in b.items:
                out += [img.src] + ([href] if href else [])
    return out
