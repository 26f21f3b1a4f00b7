// The qa chat page. Article text only ever reaches the page through textContent/createTextNode
// (never innerHTML), so markup inside an article is shown as text and never runs.
"use strict";

const state = { conversation: null, last: null, sourcesOpen: false, busy: false };
const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function setStatus(message, isError) {
  const status = $("status");
  status.textContent = message || "";
  status.classList.toggle("error", Boolean(isError));
}

async function call(method, path, body) {
  const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

async function busy(work) {
  if (state.busy) return;
  state.busy = true;
  for (const id of ["ask", "more", "reset", "sources-button"]) $(id).disabled = true;
  try {
    await work();
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  } finally {
    state.busy = false;
    for (const id of ["ask", "more", "reset", "sources-button"]) $(id).disabled = false;
  }
}

function citationLine(s) {
  const parts = [s.title || "(untitled)", s.source + ", paragraph " + s.paragraph];
  if (s.date) parts.push(s.date);
  return parts.join(" — ");
}

function sentenceItem(s, marker) {
  const li = el("li", "sentence");
  li.dataset.marker = String(marker);
  li.appendChild(el("span", "text", s.text));
  li.appendChild(el("span", "marker", `[${marker}]`));
  li.appendChild(el("span", "cite", citationLine(s)));
  return li;
}

function renderAnswer(answer) {
  const turn = el("article", "turn");
  turn.appendChild(el("p", "question", answer.question));
  if (answer.interpreted && answer.interpreted !== answer.question) {
    turn.appendChild(el("p", "interpreted", `Reading it as: ${answer.interpreted}`));
  }
  const list = el("ol", "answer");
  if (!answer.answered) {
    turn.appendChild(el("p", "declined", "No answer in the indexed articles. The bot declined rather than guess."));
  } else {
    answer.sentences.forEach((s, i) => list.appendChild(sentenceItem(s, i + 1)));
    turn.appendChild(list);
  }
  $("log").appendChild(turn);
  turn.scrollIntoView({ block: "nearest" });
  state.last = { answer, list, sentences: answer.answered ? answer.sentences.slice() : [] };
}

async function ask(question) {
  setStatus("Asking…");
  const body = { question };
  if (state.conversation) body.conversation = state.conversation;
  let answer;
  try {
    answer = await call("POST", "/api/chat", body);
  } catch (error) {
    if (error.status !== 404 || !state.conversation) throw error;
    state.conversation = null; // expired on the server: start a new conversation
    answer = await call("POST", "/api/chat", { question });
  }
  state.conversation = answer.conversation;
  renderAnswer(answer);
  setStatus(answer.answered ? "" : "Declined: nothing in the articles answers this.");
  if (state.sourcesOpen) await renderSources();
}

async function more() {
  if (!state.conversation || !state.last) { setStatus("Ask a question first."); return; }
  const reply = await call("POST", "/api/more", { conversation: state.conversation });
  if (!reply.sentences.length) { setStatus("Nothing more for the last question."); return; }
  reply.sentences.forEach((s, i) => state.last.list.appendChild(sentenceItem(s, reply.first_marker + i)));
  state.last.sentences.push(...reply.sentences);
  setStatus(`${reply.sentences.length} more.`);
  if (state.sourcesOpen) await renderSources();
}

async function reset() {
  if (state.conversation) await call("POST", "/api/reset", { conversation: state.conversation });
  state.last = null;
  $("log").replaceChildren();
  $("sources-list").replaceChildren();
  setStatus("Conversation cleared.");
  $("question").focus();
}

function safeLink(url) {
  // Only web addresses become links; anything else (javascript:, data:, ...) stays plain text.
  let parsed = null;
  try { parsed = new URL(url); } catch (e) { parsed = null; }
  if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) return el("span", "url", url);
  const a = el("a", "url", url);
  a.href = parsed.href;
  a.rel = "noopener noreferrer";
  return a;
}

function highlighted(paragraph, cites) {
  // The paragraph's text with each cited span wrapped in <mark> (spans in paragraph offsets).
  const p = el("p", "paragraph");
  let done = 0;
  for (const c of cites.slice().sort((a, b) => a.start - b.start)) {
    const start = Math.max(c.start - paragraph.start, done);
    const end = c.end - paragraph.start;
    if (end <= start) continue;
    p.appendChild(document.createTextNode(paragraph.text.slice(done, start)));
    const mark = el("mark", null, paragraph.text.slice(start, end));
    mark.dataset.marker = String(c.marker);
    mark.dataset.start = String(c.start);
    mark.dataset.end = String(c.end);
    mark.dataset.source = c.source;
    p.appendChild(mark);
    p.appendChild(el("span", "marker", `[${c.marker}]`));
    done = end;
  }
  p.appendChild(document.createTextNode(paragraph.text.slice(done)));
  return p;
}

async function renderSources() {
  const list = $("sources-list");
  const last = state.last;
  if (!last || !last.sentences.length) {
    list.replaceChildren(el("p", null, last ? "The last question had no answer, so nothing was cited." : "No cited sources yet: ask a question first."));
    return;
  }
  const groups = new Map(); // one block per cited paragraph, however many citations it holds
  last.sentences.forEach((s, i) => {
    const key = `${s.doc}:${s.paragraph}`;
    if (!groups.has(key)) groups.set(key, { doc: s.doc, paragraph: s.paragraph, cites: [] });
    groups.get(key).cites.push({ start: s.start, end: s.end, source: s.source, marker: i + 1 });
  });
  const blocks = [];
  for (const g of groups.values()) {
    const p = await call("GET", `/api/paragraph?doc=${encodeURIComponent(g.doc)}&paragraph=${encodeURIComponent(g.paragraph)}`);
    const block = el("section", "source");
    block.appendChild(el("h3", null, `${g.cites.map((c) => `[${c.marker}]`).join("")} ${p.title || "(untitled)"}`));
    const meta = el("p", "meta");
    const facts = [];
    if (p.date) facts.push(p.date);
    facts.push(`${p.source}, paragraph ${p.paragraph}`);
    meta.appendChild(document.createTextNode(facts.join(" · ")));
    if (p.url) { meta.appendChild(document.createTextNode(" · ")); meta.appendChild(safeLink(p.url)); }
    block.appendChild(meta);
    block.appendChild(highlighted(p, g.cites));
    blocks.push(block);
  }
  list.replaceChildren(...blocks);
}

async function toggleSources() {
  state.sourcesOpen = !state.sourcesOpen;
  $("sources").hidden = !state.sourcesOpen;
  $("sources-button").setAttribute("aria-expanded", String(state.sourcesOpen));
  if (state.sourcesOpen) {
    await renderSources();
    $("sources").focus();
  }
}

async function showHealth() {
  try {
    const h = await call("GET", "/api/health");
    setStatus(`${h.articles} article${h.articles === 1 ? "" : "s"}, ${h.sentences} sentences indexed.`);
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("question");
    const question = input.value.trim();
    if (!question) return;
    busy(async () => { await ask(question); input.value = ""; input.focus(); });
  });
  $("more").addEventListener("click", () => busy(more));
  $("reset").addEventListener("click", () => busy(reset));
  $("sources-button").addEventListener("click", () => busy(toggleSources));
  document.body.dataset.ready = "true";
  showHealth();
  $("question").focus();
});
