"""The shared look of cleanfit's self-contained HTML pages (the run report and the audit report).

No network: styles are inline, images are embedded as data URIs.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

CSS = """
body{font:15px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
     color:#1f2328;background:#fff;margin:0;padding:24px 32px;max-width:1100px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.sub{color:#59636e;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.sev{font-weight:600;border-radius:10px;padding:1px 8px;font-size:12px;color:#fff}
.critical{background:#cf222e}.warning{background:#9a6700}.info{background:#0969da}.ok{background:#1a7f37}
img{max-width:100%;border:1px solid #d0d7de}
pre{background:#f6f8fa;padding:12px;overflow:auto;font-size:13px}
"""


def esc(value: Any) -> str:
    """HTML-escape any value's ``str``."""
    return html.escape(str(value))


def badge(severity: str) -> str:
    """A coloured severity label (``critical``, ``warning``, ``info`` or ``ok``)."""
    return f'<span class="sev {esc(severity)}">{esc(severity)}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (for cells that already hold HTML)."""
    cell = (lambda v: str(v)) if raw else esc
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def image(png: bytes | str | Path, alt: str) -> str:
    """An ``<img>`` with the PNG embedded as a data URI (bytes, or a path to a PNG file)."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{encoded}">'


def page(title: str, body: str, *, subtitle: str = "") -> str:
    """A complete, self-contained HTML document."""
    sub = f'<p class="sub">{esc(subtitle)}</p>' if subtitle else ""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1>{sub}{body}</body></html>"
    )
