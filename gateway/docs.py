"""The ``/docs`` page: self-contained HTML that reads ``openapi.json`` and tries routes."""

from __future__ import annotations

__all__ = ["DOCS_HTML"]

# Everything inline: the page must work where no CDN can be reached.
DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>botmon API</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem; }
header { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
input, textarea, button { font: inherit; }
#token { width: 28rem; }
details { border: 1px solid #ccc; border-radius: 4px; margin: .4rem 0; padding: .3rem .6rem; }
summary { cursor: pointer; }
.verb { display: inline-block; width: 4.5rem; font-weight: bold; }
.get { color: #0a6; } .post { color: #06c; } .delete { color: #c30; } .put { color: #a60; }
table { border-collapse: collapse; margin: .4rem 0; }
td { padding: .1rem .4rem; vertical-align: top; }
textarea { width: 100%; min-height: 6rem; font-family: monospace; }
pre { background: #f4f4f4; padding: .5rem; overflow: auto; max-height: 30rem; }
</style>
</head>
<body>
<header>
  <h1>botmon Monitoring API</h1>
  <label>Bearer token <input id="token" type="password" autocomplete="off"></label>
  <button id="reload">Load with this token</button>
  <a id="openapi-link" href="openapi.json">openapi.json</a>
</header>
<p id="intro">Loading the OpenAPI document&hellip;</p>
<main id="routes"></main>
<script>
"use strict";
const tokenInput = document.getElementById("token");
// A token given as ?access_token= (how a browser opens this page) is taken once and then
// dropped from the address bar, so it stays out of the history and of bookmarks.
const pageParams = new URLSearchParams(location.search);
const pageToken = pageParams.get("access_token");
if (pageToken) {
  pageParams.delete("access_token");
  const rest = pageParams.toString();
  history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
  sessionStorage.setItem("botmon-token", pageToken);
}
tokenInput.value = pageToken || sessionStorage.getItem("botmon-token") || "";
tokenInput.addEventListener("change", () => sessionStorage.setItem("botmon-token", tokenInput.value));

function authHeaders() {
  return tokenInput.value ? {"Authorization": "Bearer " + tokenInput.value} : {};
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) node.append(child);
  return node;
}

function operation(path, verb, op) {
  const box = el("details");
  box.append(el("summary", {}, el("span", {class: "verb " + verb}, verb.toUpperCase()),
                path + " \\u2014 " + (op.summary || "")));
  if (op.description) box.append(el("p", {}, op.description));
  const inputs = {};
  const table = el("table");
  for (const p of op.parameters || []) {
    const input = el("input", {placeholder: p.in + (p.required ? ", required" : "")});
    inputs[p.name] = [p, input];
    table.append(el("tr", {}, el("td", {}, p.name), el("td", {}, input),
                    el("td", {}, p.description || "")));
  }
  if (table.children.length) box.append(table);
  let body = null;
  if (op.requestBody) {
    body = el("textarea", {placeholder: "JSON request body"});
    box.append(body);
  }
  const out = el("pre");
  const send = el("button", {}, "Send");
  send.addEventListener("click", async () => {
    let url = path;
    const query = new URLSearchParams();
    for (const [name, [p, input]] of Object.entries(inputs)) {
      if (!input.value) continue;
      if (p.in === "path") url = url.replace("{" + name + "}", encodeURIComponent(input.value));
      else query.append(name, input.value);
    }
    if ([...query].length) url += "?" + query;
    const headers = authHeaders();
    if (body) headers["Content-Type"] = "application/json";
    out.textContent = "\\u2026";
    try {
      const started = performance.now();
      const resp = await fetch(url, {method: verb.toUpperCase(), headers,
                                     body: body ? body.value : undefined});
      const text = await resp.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) {}
      out.textContent = resp.status + " " + resp.statusText + " (" +
        Math.round(performance.now() - started) + " ms)\\n\\n" + shown;
    } catch (e) {
      out.textContent = String(e);
    }
  });
  box.append(send, out);
  return box;
}

// openapi.json needs a viewer token like every GET: the page's own access_token is passed
// on as the same query parameter, a pasted token as the Authorization header.
async function load(query) {
  const intro = document.getElementById("intro");
  const routes = document.getElementById("routes");
  routes.replaceChildren();
  try {
    const resp = await fetch("openapi.json" + query, {headers: authHeaders()});
    const doc = await resp.json();
    if (!resp.ok) {
      intro.textContent = "Cannot load openapi.json (" + resp.status + "): " +
        (doc.error ? doc.error.message : resp.statusText) + ". Paste a token above.";
      return;
    }
    intro.textContent = doc.info.description;
    for (const [path, ops] of Object.entries(doc.paths).sort()) {
      for (const [verb, op] of Object.entries(ops)) routes.append(operation(path, verb, op));
    }
  } catch (e) {
    intro.textContent = "Cannot load openapi.json: " + e;
  }
}

const pageQuery = pageToken ? "?access_token=" + encodeURIComponent(pageToken) : "";
document.getElementById("openapi-link").href = "openapi.json" + pageQuery;
document.getElementById("reload").addEventListener("click", () => {
  sessionStorage.setItem("botmon-token", tokenInput.value);
  load("");
});
load(pageQuery);
</script>
</body>
</html>
"""
