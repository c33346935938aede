// The caption overlay (an OBS browser source): the last lines of the session's captions on a transparent
// page. Committed words are plain, the partial tail (may still change) is dimmer and italic; a line that
// got no new word for `fade` seconds fades out. Styling comes from the URL query (see overlay.html).

import { ViewerConnection, params } from "./common.js";

const TICK_MS = 250;
const FADE_MS = 1000; // the CSS transition of a fading line
const KEEP_LINES = 12; // wrapped lines of committed words kept to wrap the next ones against

const query = params();
const options = {
  session: query.get("session") ?? "",
  token: query.get("token") ?? "",
  lines: clampInt(query.get("lines"), 1, 6, 2),
  maxChars: clampInt(query.get("maxchars"), 10, 200, 42),
  fadeMs: clampNumber(query.get("fade"), 0, 600, 6) * 1000,
};

const box = document.getElementById("box");
let words = []; // committed words, oldest first: {text, at}
let tail = []; // the partial's unstable words
let tailUtterance = null;
let lastIndex = -1;
let joined = false;
let allOldSince = null;

function clampInt(value, min, max, fallback) {
  const n = Number.parseInt(value ?? "", 10);
  return Number.isFinite(n) ? Math.max(min, Math.min(max, n)) : fallback;
}

function clampNumber(value, min, max, fallback) {
  const n = Number.parseFloat(value ?? "");
  return Number.isFinite(n) ? Math.max(min, Math.min(max, n)) : fallback;
}

function applyStyle() {
  const root = document.documentElement.style;
  const size = clampNumber(query.get("size"), 8, 400, 48);
  const outline = clampNumber(query.get("outline"), 0, 20, query.get("bg") === "none" ? 3 : 0);
  const settings = {
    "--font": query.get("font"),
    "--size": `${size}px`,
    "--color": query.get("color"),
    "--partial-color": query.get("partial_color"),
    "--bg": query.get("bg") === "none" ? "transparent" : query.get("bg"),
    "--outline": `${outline}px`,
    "--outline-color": query.get("outline_color"),
    "--width": query.has("width") ? `${clampNumber(query.get("width"), 10, 100, 90)}%` : null,
  };
  for (const [name, value] of Object.entries(settings)) if (value) root.setProperty(name, value);
  const stage = document.getElementById("stage");
  stage.dataset.position = query.get("position") === "top" ? "top" : "bottom";
  stage.dataset.align = ["left", "right"].includes(query.get("align")) ? query.get("align") : "center";
  document.body.classList.toggle("outlined", outline > 0);
}

/** Greedy word wrap of `items` ({text}) to lines of at most `maxChars` characters (longer words alone). */
function wrap(items) {
  const lines = [];
  let line = [];
  let length = 0;
  for (const item of items) {
    const add = (line.length ? 1 : 0) + item.text.length;
    if (line.length && length + add > options.maxChars) {
      lines.push(line);
      line = [];
      length = 0;
    }
    length += (line.length ? 1 : 0) + item.text.length;
    line.push(item);
  }
  if (line.length) lines.push(line);
  return lines;
}

function splitWords(text) {
  return text.split(/\s+/).filter(Boolean);
}

function render() {
  const now = Date.now();
  const all = [...words, ...tail.map((text) => ({ text, at: now, tail: true }))];
  let lines = wrap(all);
  const committedLines = wrap(words).length;
  if (committedLines > KEEP_LINES) {
    // forget committed words in whole lines so that the visible lines never re-wrap
    const drop = wrap(words).slice(0, committedLines - KEEP_LINES).flat().length;
    words = words.slice(drop);
    lines = wrap([...words, ...tail.map((text) => ({ text, at: now, tail: true }))]);
  }
  const visible = lines.slice(-options.lines);
  const elements = visible.map((line) => {
    const div = document.createElement("div");
    div.className = "line";
    const newest = Math.max(...line.map((w) => w.at));
    const live = line.some((w) => w.tail);
    if (options.fadeMs > 0 && !live && now - newest > options.fadeMs) div.classList.add("old");
    const committed = line.filter((w) => !w.tail).map((w) => w.text).join(" ");
    const partial = line.filter((w) => w.tail).map((w) => w.text).join(" ");
    if (committed) div.append(partial ? `${committed} ` : committed);
    if (partial) {
      const span = document.createElement("span");
      span.className = "tail";
      span.textContent = partial;
      div.append(span);
    }
    return div;
  });
  reconcile(elements);
  const allOld = elements.length > 0 && elements.every((e) => e.classList.contains("old"));
  if (!allOld) allOldSince = null;
  else if (allOldSince === null) allOldSince = now;
  else if (now - allOldSince > FADE_MS + TICK_MS) {
    words = []; // the screen is clear: the next speech starts on a fresh line
    allOldSince = null;
    box.replaceChildren();
  }
}

/** Updates the box's lines in place (so CSS fade transitions run) instead of replacing them. */
function reconcile(elements) {
  while (box.children.length > elements.length) box.firstElementChild.remove();
  while (box.children.length < elements.length) box.append(document.createElement("div"));
  elements.forEach((element, i) => {
    const current = box.children[i];
    if (current.className !== element.className) current.className = element.className;
    if (current.innerHTML !== element.innerHTML) current.replaceChildren(...element.childNodes);
  });
}

function onFinal(final, now = Date.now()) {
  if (final.index <= lastIndex) return;
  lastIndex = final.index;
  for (const text of splitWords(final.text)) words.push({ text, at: now });
  if (tailUtterance === final.utterance_id) tail = [];
}

function onMessage(message) {
  switch (message.type) {
    case "history": {
      const finals = message.finals ?? [];
      if (!joined) {
        // first join: start from the live edge; the history is the audience page's business
        lastIndex = finals.length ? finals[finals.length - 1].index : -1;
        joined = true;
      } else {
        finals.forEach((final) => onFinal(final)); // missed while reconnecting
      }
      break;
    }
    case "final":
      onFinal(message);
      break;
    case "partial":
      tailUtterance = message.utterance_id;
      tail = splitWords(message.unstable ?? "");
      break;
    case "ended":
    case "speaker_left":
      tail = [];
      break;
    default:
      return;
  }
  render();
}

function notice(text) {
  const element = document.getElementById("notice");
  element.textContent = text;
  element.hidden = !text;
}

applyStyle();
if (!options.session) {
  notice("Caption overlay: add ?session=ID to the address (see the speaker page's overlay link).");
} else {
  new ViewerConnection({
    session: options.session,
    token: options.token,
    onMessage,
    onState: (state, detail) => {
      document.body.dataset.state = state;
      notice(state === "error" ? `Caption overlay: ${detail}` : "");
    },
  }).start();
  setInterval(render, TICK_MS);
}
