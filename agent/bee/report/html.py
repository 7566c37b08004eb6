"""The fleet report as one self-contained HTML file: inline style and script, no fonts, images or
scripts from anywhere, and a Content-Security-Policy that forbids fetching any, so the page
opens offline and cannot call out. Every value from a document is escaped."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from bee import __version__
from bee.report.compare import Fleet
from bee.report.fields import FIELDS
from bee.report.text import headline

STYLE = """
body { font: 13px/1.35 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; }
h1 { font-size: 1.5em; margin: 0 0 .2em; }
h2 { font-size: 1.15em; margin: 1.4em 0 .4em; }
.meta { color: #555; margin: 0 0 1em; }
.headline p { margin: .15em 0; font-size: 1.05em; }
ul.diff { margin: .3em 0; padding-left: 1.2em; }
ul.diff li { margin: .2em 0; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 5px; text-align: left; vertical-align: top; }
#nodes { font-size: 12px; } #nodes td { max-width: 18em; }
th { background: #f0f0f0; position: sticky; top: 0; cursor: pointer; white-space: nowrap; }
th.sorted-up::after { content: " \\25B2"; } th.sorted-down::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafafa; }
td.odd { background: #ffe8a8; font-weight: 600; }
td.v-ACCEPT { background: #d7f5d7; } td.v-REJECT { background: #ffd2d2; font-weight: 600; }
td.v-UNKNOWN { background: #ffd2d2; } td.v-none { color: #777; }
details summary { cursor: pointer; }
.controls { margin: .5em 0; }
.small { color: #666; font-size: .9em; }
"""

# Sorting by a column and "only nodes that differ"; plain DOM, no library.
SCRIPT = """
(function () {
  var table = document.getElementById("nodes");
  var body = table.tBodies[0];
  var key = function (row, i) { return row.cells[i].textContent; };
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
    th.addEventListener("click", function () {
      var up = !th.classList.contains("sorted-up");
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.className = ""; });
      th.className = up ? "sorted-up" : "sorted-down";
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var r = collator.compare(key(a, i), key(b, i));
        return up ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  var hint = document.createElement("span");
  hint.className = "small";
  hint.textContent = " (click a column to sort)";
  document.getElementById("controls").appendChild(hint);
  var only = document.getElementById("only-odd");
  only.addEventListener("change", function () {
    Array.prototype.forEach.call(body.rows, function (r) {
      r.hidden = only.checked && !r.hasAttribute("data-odd");
    });
  });
})();
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def render(fleet: Fleet, *, title: str = "bee fleet report") -> str:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Made by bee {escape(__version__)} at {generated}.</p>',
        '<div class="headline">',
        *(f"<p>{escape(line)}</p>" for line in headline(fleet)),
        "</div>",
    ]
    parts.extend(_differences(fleet))
    if fleet.nodes:
        parts.extend(_table(fleet))
    parts.extend(_skipped(fleet))
    parts.append(f"<script>{SCRIPT}</script></body></html>\n")
    return "\n".join(parts)


def _differences(fleet: Fleet) -> list[str]:
    if not fleet.nodes:
        return []
    found = [*fleet.differences, *([fleet.verdict] if fleet.verdict else [])]
    parts = ['<h2 id="differences">Differs from the majority</h2>']
    if not found:
        parts.append(f"<p>All {len(fleet.nodes)} nodes agree on every field.</p>")
    else:
        parts.append('<ul class="diff">')
        for difference in found:
            label = escape(difference.field.label)
            parts.append(f"<li><b>{label}</b>: {escape(difference.sentence())}</li>")
        parts.append("</ul>")
    for serial, names in fleet.shared_serials:
        line = f"Serial {serial} appears in {len(names)} files: {', '.join(names)}"
        parts.append(f'<p class="small">{escape(line)}</p>')
    return parts


def _table(fleet: Fleet) -> list[str]:
    odd = fleet.odd()
    headers = ["node", "verdict", *(f.label for f in FIELDS)]
    parts = [
        '<h2 id="nodes-title">Nodes</h2>',
        '<div class="controls" id="controls"><label><input type="checkbox" id="only-odd"> only the'
        f" nodes that differ from the majority ({len(odd)})</label></div>",
        '<table id="nodes"><thead><tr>',
        "".join(f"<th>{escape(h)}</th>" for h in headers),
        "</tr></thead><tbody>",
    ]
    for node in fleet.nodes:
        node_odd = odd.get(node.name, set())
        status = node.verdict.status
        css_status = status if status in ("ACCEPT", "REJECT", "UNKNOWN") else "none"
        source = f' title="from {escape(node.verdict.source)}"' if node.verdict.source else ""
        cells = [
            f'<td title="{escape(node.path)}">{escape(node.name)}</td>',
            f'<td class="v-{css_status}"{source}>{escape(node.verdict.words())}</td>',
        ]
        for field in FIELDS:
            value = node.row.get(field.key, "")
            css = ' class="odd"' if field.key in node_odd else ""
            if field.key == "findings" and node.findings:
                lines = "<br>".join(escape(line) for line in node.findings)
                cells.append(
                    f"<td{css}><details><summary>{escape(value)}</summary>{lines}</details></td>"
                )
            else:
                cells.append(f"<td{css}>{escape(value)}</td>")
        marker = " data-odd" if node_odd else ""
        parts.append(f"<tr{marker}>{''.join(cells)}</tr>")
    parts.append("</tbody></table>")
    return parts


def _skipped(fleet: Fleet) -> list[str]:
    skipped = fleet.loaded.skipped
    if not skipped:
        return []
    parts = [
        f'<h2 id="skipped">Skipped files ({len(skipped)})</h2>',
        "<table><thead><tr><th>file</th><th>why</th></tr></thead><tbody>",
    ]
    for entry in skipped:
        parts.append(f"<tr><td>{escape(entry.path)}</td><td>{escape(entry.reason)}</td></tr>")
    parts.append("</tbody></table>")
    return parts
