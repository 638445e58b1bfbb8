"""``--flop-budget-html``: one self-contained page to *see* where each model's compute goes.

Per model: a gauge of the count against its budget, an icicle of the module tree (click a
module to zoom into it, click the path above it to zoom out), the heaviest modules, and for a
regression the modules that changed, before and after side by side. The data travels as JSON
inside the page and a few dozen lines of plain JavaScript draw it: no network at view time, no
build step, nothing to install to read it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..budgets.config import Settings
from ..budgets.record import TestRecord
from ..budgets.stale import StaleEntry
from ..budgets.units import format_quantity
from ..budgets.verdict import Verdict
from ..counting.count import top_modules
from . import rows
from .files import write_atomically

TITLE = "flop budget report"


def data(
    records: Sequence[TestRecord], settings: Settings, stale: Sequence[StaleEntry] = ()
) -> dict[str, Any]:
    """What the page draws: plain JSON, every number also pre-formatted for reading."""
    verdicts = [verdict for record in records for verdict in record.verdicts]
    prefixes = rows.family_prefixes(verdicts)
    return {
        "convention": f"{settings.convention}; {settings.ops_convention}",
        "tally": _tally(verdicts),
        "models": [_model(verdict, settings, prefixes) for verdict in verdicts],
        "stale": [entry.describe() for entry in stale],
    }


def _model(verdict: Verdict, settings: Settings, prefixes: rows.Prefixes) -> dict[str, Any]:
    cells = rows.cells(verdict, settings, prefixes=prefixes)
    return {
        "test": verdict.nodeid,
        "name": verdict.name,
        "status": verdict.status,
        "label": verdict.status_label,
        "flops": verdict.flops,
        "cells": {
            key: cells[key]
            for key in (
                "FLOPs",
                "MACs",
                "params",
                "memory",
                "time",
                "budget",
                "used",
                "vs baseline",
            )
        },
        "peak_memory": verdict.peak_memory,
        "seconds": verdict.seconds,
        "used": verdict.used,
        "tolerance": verdict.tolerance,
        "message": verdict.message,
        "modules": dict(verdict.by_module),
        "formatted": {
            path: format_quantity(value, "flops")
            for path, value in {"": verdict.flops or 0, **verdict.by_module}.items()
        },
        "top": [
            {"path": path, "flops": format_quantity(value, "flops"), "value": value}
            for path, value in top_modules(verdict.by_module)
        ],
        "changes": [
            {
                "path": path or "(root)",
                "before": format_quantity(before, "flops"),
                "after": format_quantity(after, "flops"),
                "before_value": before,
                "after_value": after,
            }
            for path, before, after in verdict.module_changes
        ],
        "unknown_ops": dict(verdict.unknown_ops),
        "notes": list(verdict.notes),
    }


def _tally(verdicts: Sequence[Verdict]) -> str:
    """The terminal's last line: worst first, errors that counted nothing apart."""
    from .table import tally

    return tally(verdicts)


def build(
    records: Sequence[TestRecord], settings: Settings, stale: Sequence[StaleEntry] = ()
) -> str:
    payload = json.dumps(data(records, settings, stale), sort_keys=True, allow_nan=False)
    # inside <script>, "</" would end the element; "<\/" is the same JSON string
    payload = payload.replace("</", "<\\/")
    return (
        PAGE.replace("{title}", html.escape(TITLE))
        .replace("{style}", STYLE)
        .replace("{script}", SCRIPT)
        .replace("{data}", payload)
    )


def looks_like_report(content: bytes) -> bool:
    """Whether an existing file is one of these reports, which a new run may replace."""
    return b'id="flopbudget-data"' in content[-2_000_000:] and content.lstrip().lower().startswith(
        b"<!doctype html>"
    )


def write(
    path: Path,
    records: Sequence[TestRecord],
    settings: Settings,
    stale: Sequence[StaleEntry] = (),
) -> None:
    write_atomically(path, build(records, settings, stale))


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
  <h1>Flop budget</h1>
  <p id="convention"></p>
  <p id="tally"></p>
</header>
<main id="models"></main>
<footer id="stale"></footer>
<script type="application/json" id="flopbudget-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

STYLE = """
:root { --ok: #2e7d32; --bad: #c62828; --warn: #ef6c00; --none: #757575; --line: #ddd; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 16px;
       color: #212121; }
h1 { margin: 0 0 4px; font-size: 22px; }
#convention, #tally { margin: 2px 0; color: #555; }
section.model { border: 1px solid var(--line); border-radius: 6px; margin: 16px 0; padding: 12px; }
section.model h2 { font-size: 16px; margin: 0; display: flex; gap: 8px; align-items: baseline; }
.test { color: #555; font: 12px monospace; word-break: break-all; margin: 2px 0 8px; }
.badge { font-size: 12px; padding: 1px 8px; border-radius: 10px; color: white; }
.badge.ok { background: var(--ok); }
.badge.over, .badge.regression, .badge.error, .badge.unknown-ops { background: var(--bad); }
.badge.warn { background: var(--warn); }
.badge.no-budget { background: var(--none); }
.numbers { display: flex; flex-wrap: wrap; gap: 4px 18px; margin: 6px 0; }
.numbers span b { font-weight: 600; }
.gauge { position: relative; height: 14px; background: #eee; border-radius: 7px; margin: 8px 0;
         overflow: hidden; }
.gauge .fill { height: 100%; background: var(--ok); }
.gauge .fill.over { background: var(--bad); }
.gauge .limit { position: absolute; top: 0; bottom: 0; width: 2px; background: #000; }
.hint { color: #777; font-size: 12px; margin: 2px 0; }
.overview td.test, .overview th:nth-child(2) { text-align: left; }
.crumbs { margin: 8px 0 4px; font-size: 12px; }
.crumbs a { color: #1565c0; cursor: pointer; text-decoration: underline; }
.icicle { display: flex; flex-direction: column; gap: 2px; }
.icicle .row { display: flex; height: 26px; gap: 0; }
.icicle .cell { box-sizing: border-box; border: 1px solid white; background: #90caf9;
                overflow: hidden; white-space: nowrap; font-size: 11px; padding: 4px;
                cursor: pointer; }
.icicle .cell.leaf { cursor: default; background: #bbdefb; }
.icicle .cell.self { background: #e3f2fd; cursor: default; color: #555; }
.icicle .cell:hover { filter: brightness(0.92); }
table { border-collapse: collapse; margin: 8px 0; font-size: 12px; }
td, th { border-bottom: 1px solid var(--line); padding: 2px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; font-family: monospace; }
.bar { display: inline-block; height: 8px; background: #90caf9; vertical-align: middle; }
.bar.after { background: #ef9a9a; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
pre { background: #fafafa; border: 1px solid var(--line); padding: 6px; white-space: pre-wrap;
      font-size: 12px; }
"""

SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("flopbudget-data").textContent);
  const el = (tag, attrs, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };
  document.getElementById("convention").textContent = "Convention: " + data.convention;
  document.getElementById("tally").textContent =
    data.models.length + " counted" + (data.tally ? ": " + data.tally : "");
  if (data.stale.length) {
    const footer = document.getElementById("stale");
    footer.append(el("h2", {}, "Stale entries"));
    for (const line of data.stale) footer.append(el("p", {}, line));
  }

  function tree(modules, rootName, total) {
    const root = { path: "", name: rootName, value: total, children: [] };
    const nodes = { "": root };
    const paths = Object.keys(modules).sort((a, b) => a.split(".").length - b.split(".").length);
    for (const path of paths) {
      const cut = path.lastIndexOf(".");
      const parentPath = cut < 0 ? "" : path.slice(0, cut);
      const parent = nodes[parentPath] || root;
      const node = { path, name: path.slice(cut + 1), value: modules[path], children: [] };
      nodes[path] = node;
      parent.children.push(node);
    }
    return nodes;
  }

  function icicle(model, nodes, view, box, crumbs) {
    box.replaceChildren();
    crumbs.replaceChildren();
    const parts = view.path ? view.path.split(".") : [];
    const trail = [""].concat(parts.map((_, i) => parts.slice(0, i + 1).join(".")));
    trail.forEach((path, i) => {
      if (i) crumbs.append(" > ");
      const label = path ? path.split(".").pop() : model.name;
      const link = el("a", { "data-path": path, onclick: () => show(nodes[path]) }, label);
      crumbs.append(i === trail.length - 1 ? el("b", {}, label) : link);
    });
    function show(node) { icicle(model, nodes, node, box, crumbs); }
    let level = [view];
    for (let depth = 0; depth < 5 && level.length; depth++) {
      const row = el("div", { class: "row" });
      const next = [];
      for (const node of level) {
        const share = view.value ? node.value / view.value : 0;
        if (share <= 0) continue;
        const text = (node.name || model.name) + " " + (model.formatted[node.path] || "");
        const title = (node.path || model.name) + ": " + (model.formatted[node.path] || "") +
          " (" + (share * 100).toFixed(1) + "% of " + (view.path || model.name) + ")";
        const leaf = node.children.length === 0 || node.self;
        const cell = el("div", {
          class: "cell" + (node.self ? " self" : leaf ? " leaf" : ""),
          style: "width:" + (share * 100) + "%", title, "data-path": node.path,
        }, text);
        if (!leaf && node !== view) cell.addEventListener("click", () => show(node));
        row.append(cell);
        const inner = node.children.reduce((sum, child) => sum + child.value, 0);
        next.push(...node.children);
        if (node.children.length && node.value > inner) {
          next.push({ path: node.path + "#self", name: "(own)", value: node.value - inner,
                      children: [], self: true });
        }
      }
      box.append(row);
      level = next;
    }
  }

  const main = document.getElementById("models");
  if (data.models.length > 1) {
    const overview = el("table", { class: "overview" }, el("tr", {},
      ...["model", "test", "FLOPs", "budget", "used", "status"].map(h => el("th", {}, h))));
    data.models.forEach((model, index) => {
      overview.append(el("tr", {},
        el("td", {}, el("a", { href: "#model-" + index }, model.name)),
        el("td", { class: "test" }, model.test), el("td", {}, model.cells.FLOPs),
        el("td", {}, model.cells.budget), el("td", {}, model.cells.used), el("td", {}, model.label)));
    });
    main.append(overview);
  }
  data.models.forEach((model, index) => {
    const warn = model.label.endsWith("(warn)");
    const badge = warn ? "warn" : model.status.replace(/ /g, "-");
    const section = el("section", { class: "model", id: "model-" + index });
    section.append(el("h2", {}, model.name, el("span", { class: "badge " + badge }, model.label)));
    section.append(el("div", { class: "test" }, model.test));
    const numbers = el("div", { class: "numbers" });
    for (const [key, value] of Object.entries(model.cells)) {
      if (value && value !== "-") numbers.append(el("span", {}, key + " ", el("b", {}, value)));
    }
    section.append(numbers);
    if (model.used !== null) {
      const scale = Math.max(1 + model.tolerance, model.used) * 1.1;
      const gauge = el("div", { class: "gauge", title: (model.used * 100).toFixed(1) + "% of the budget" });
      gauge.append(el("div", { class: "fill" + (model.used > 1 + model.tolerance ? " over" : ""),
                               style: "width:" + (100 * model.used / scale) + "%" }));
      gauge.append(el("div", { class: "limit", style: "left:" + (100 / scale) + "%" }));
      section.append(gauge);
    }
    if (model.flops !== null && Object.keys(model.modules).length) {
      const nodes = tree(model.modules, model.name, model.flops);
      const crumbs = el("div", { class: "crumbs" });
      const box = el("div", { class: "icicle" });
      section.append(crumbs, box);
      icicle(model, nodes, nodes[""], box, crumbs);
      const table = el("table", {}, el("tr", {}, el("th", {}, "top modules"), el("th", {}, "FLOPs"), el("th", {}, "share")));
      for (const top of model.top) {
        table.append(el("tr", {}, el("td", {}, top.path), el("td", {}, top.flops),
          el("td", {}, model.flops ? (100 * top.value / model.flops).toFixed(1) + "%" : "-")));
      }
      section.append(el("p", { class: "hint" }, "Click a module to zoom into it; click a name in the path to zoom out."));
      section.append(table);
    }
    if (model.changes.length) {
      const widest = Math.max(...model.changes.map(c => Math.max(c.before_value, c.after_value)), 1);
      const before = el("table", {}, el("tr", {}, el("th", {}, "before (baseline)"), el("th", {}, "FLOPs"), el("th", {})));
      const after = el("table", {}, el("tr", {}, el("th", {}, "after (this run)"), el("th", {}, "FLOPs"), el("th", {})));
      for (const change of model.changes) {
        before.append(el("tr", {}, el("td", {}, change.path), el("td", {}, change.before),
          el("td", {}, el("span", { class: "bar", style: "width:" + (120 * change.before_value / widest) + "px" }))));
        after.append(el("tr", {}, el("td", {}, change.path), el("td", {}, change.after),
          el("td", {}, el("span", { class: "bar after", style: "width:" + (120 * change.after_value / widest) + "px" }))));
      }
      section.append(el("h3", {}, "Modules that changed"), el("div", { class: "pair" }, before, after));
    }
    if (model.message && model.status !== "ok") section.append(el("pre", {}, model.message));
    const unknown = Object.entries(model.unknown_ops);
    if (unknown.length) {
      section.append(el("p", {}, "Not counted (unknown ops): " +
        unknown.map(([op, n]) => op + " x" + n).join(", ")));
    }
    for (const note of model.notes) section.append(el("p", {}, note));
    main.append(section);
  });
})();
"""
