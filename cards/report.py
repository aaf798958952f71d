"""A one-page HTML report of a pipeline run: counts per stage, pictures, tables."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
.note { background: #fff6d6; border-left: 4px solid #e0b000; padding: 0.6em 1em; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
.flow { display: flex; gap: 0.5em; flex-wrap: wrap; align-items: center; }
.flow div { background: #eef4ff; border: 1px solid #a9c1ee; border-radius: 6px; padding: 0.5em 0.8em; }
</style></head><body>
<h1>{{ title }}</h1>
{% for n in notes %}<p class="note">{{ n }}</p>{% endfor %}
<h2>Pipeline</h2>
<div class="flow">{% for s in stages %}<div><b>{{ s.name }}</b>{% for k, v in s.counts.items() %}<br>{{ k }}: {{ v }}{% endfor %}</div>{% if not loop.last %}&rarr;{% endif %}{% endfor %}</div>
{% for s in stages %}
<h2 id="{{ s.anchor }}">{{ loop.index }}. {{ s.name }}</h2>
{% if s.text %}<p>{{ s.text }}</p>{% endif %}
{% if s.counts %}<table><tr><th>count</th><th>value</th></tr>{% for k, v in s.counts.items() %}<tr><td>{{ k }}</td><td>{{ v }}</td></tr>{% endfor %}</table>{% endif %}
{% for t in s.tables %}<table><tr>{% for h in t[0] %}<th>{{ h }}</th>{% endfor %}</tr>{% for row in t[1:] %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}</table>{% endfor %}
{% for img, cap in s.images %}<figure><img src="{{ img }}" alt="{{ cap }}"><figcaption>{{ cap }}</figcaption></figure>{% endfor %}
{% endfor %}
</body></html>
"""


@dataclass
class Stage:
    """One stage of the run as the report shows it."""

    name: str
    counts: dict[str, object] = field(default_factory=dict)
    text: str = ""
    images: list[tuple[Path, str]] = field(default_factory=list)  # (PNG path, caption)
    tables: list[list[list[object]]] = field(default_factory=list)  # header row, then rows

    @property
    def anchor(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.name.lower())


def write_report(path: str | Path, title: str, stages: list[Stage], notes: list[str] = ()) -> Path:
    """Write the HTML page; image paths are made relative to it so the folder can move."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rel_stages = []
    for s in stages:
        imgs = [(Path(os.path.relpath(Path(p).resolve(), path.parent.resolve())).as_posix(), cap) for p, cap in s.images]
        rel_stages.append(Stage(s.name, s.counts, s.text, imgs, s.tables))
    env = Environment(autoescape=True)
    page = env.from_string(_TEMPLATE).render(title=html.unescape(title), stages=rel_stages, notes=list(notes))
    path.write_text(page, encoding="utf-8")
    return path
