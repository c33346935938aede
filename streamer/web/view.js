// The audience page: the session's transcript so far (the viewer `history`, then live finals) in
// paragraphs with the N-minute marks of the Markdown export, the live partial line, search with
// highlighting, and the export downloads. Finals are kept by `index`: a reconnect's fresh history adds only
// what was missed.

import {
  EXPORT_FORMATS,
  ParagraphBuilder,
  ViewerConnection,
  clock,
  highlight,
  pageUrl,
  params,
  serverConfig,
} from "./common.js";

const FOLLOW_SLACK_PX = 80;
const FORMAT_LABELS = { md: "Markdown", srt: "SRT", vtt: "WebVTT", txt: "Text", json: "JSON" };

const $ = (id) => document.getElementById(id);
const query = params();
const session = query.get("session") ?? "";
const token = query.get("token") ?? "";

const state = {
  finals: new Map(),
  lastIndex: -1,
  builder: null,
  minutes: 4,
  paragraph: null, // the <p> receiving finals
  partial: null,
  search: "",
  matches: [],
  current: -1,
  live: false,
  connection: "connecting",
};

// -- status -------------------------------------------------------------------------------------------------

function showStatus() {
  const status = $("status");
  const connection = state.connection;
  let key = connection;
  let text = { connecting: "Connecting…", reconnecting: "Reconnecting…", waiting: "Waiting for the session…" }[
    connection
  ];
  if (connection === "live") {
    key = state.live ? "live" : "ended";
    text = state.live ? "Live" : "Not live";
  } else if (connection === "error") {
    text = `Error: ${state.error}`;
  }
  status.dataset.state = key;
  status.textContent = text;
}

// -- transcript ---------------------------------------------------------------------------------------------

function follow(fn) {
  const scroller = $("scroller");
  const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < FOLLOW_SLACK_PX;
  fn();
  if (atBottom) scroller.scrollTop = scroller.scrollHeight;
  updateJump();
}

function openParagraph(opened) {
  const section = document.createElement("section");
  section.className = "paragraph";
  const mark = document.createElement("p");
  mark.className = opened.mark === null ? "mark first" : "mark";
  const time = document.createElement("time");
  time.textContent = clock(opened.time);
  time.dateTime = `PT${opened.time.toFixed(1)}S`;
  mark.append(time);
  if (opened.mark !== null) mark.append(` · ${opened.mark} minutes mark`);
  const text = document.createElement("p");
  text.className = "text";
  section.append(mark, text);
  $("transcript").append(section);
  state.paragraph = text;
}

function appendFinal(final) {
  const opened = state.builder.add(final);
  if (opened) openParagraph(opened);
  const span = document.createElement("span");
  span.className = "final";
  span.dataset.index = String(final.index);
  span.dataset.text = final.text.trim();
  span.title = clock(final.start);
  highlight(span, span.dataset.text, state.search);
  if (state.paragraph.childNodes.length) state.paragraph.append(" ");
  state.paragraph.append(span);
  state.lastIndex = final.index;
}

function rebuild() {
  $("transcript").replaceChildren();
  state.builder = new ParagraphBuilder(state.minutes);
  state.paragraph = null;
  state.lastIndex = -1;
  for (const final of [...state.finals.values()].sort((a, b) => a.index - b.index)) appendFinal(final);
}

function addFinals(finals) {
  let needRebuild = false;
  const fresh = [];
  for (const final of finals) {
    if (state.finals.has(final.index)) continue;
    state.finals.set(final.index, final);
    if (final.index < state.lastIndex) needRebuild = true;
    else fresh.push(final);
    if (state.partial?.utterance_id === final.utterance_id) state.partial = null;
  }
  if (!needRebuild && fresh.length === 0) return;
  follow(() => {
    if (needRebuild) rebuild();
    else fresh.sort((a, b) => a.index - b.index).forEach(appendFinal);
    renderPartial();
  });
  if (state.search) updateMatches(false);
}

function renderPartial() {
  const text = state.partial?.unstable ?? "";
  $("partial").textContent = text;
  $("partial").hidden = !text;
  $("empty").hidden = state.finals.size > 0 || Boolean(text);
}

function onMessage(message) {
  switch (message.type) {
    case "history":
      state.live = Boolean(message.live);
      addFinals(message.finals ?? []);
      renderPartial();
      break;
    case "final":
      state.live = true;
      addFinals([message]);
      break;
    case "partial":
      state.live = true;
      state.partial = message;
      follow(renderPartial);
      break;
    case "speaker_joined":
      state.live = true;
      break;
    case "ended":
    case "speaker_left":
      state.live = false;
      state.partial = null;
      renderPartial();
      break;
    default:
      return;
  }
  showStatus();
}

// -- search -------------------------------------------------------------------------------------------------

function updateMatches(jump) {
  let count = 0;
  for (const span of document.querySelectorAll("#transcript .final")) {
    count += highlight(span, span.dataset.text, state.search);
  }
  state.matches = [...document.querySelectorAll("#transcript mark")];
  if (state.current >= state.matches.length) state.current = state.matches.length - 1;
  $("search-count").textContent = state.search
    ? `${count} match${count === 1 ? "" : "es"}`
    : "";
  if (jump && state.matches.length) goToMatch(0);
  else markCurrent();
}

function markCurrent() {
  state.matches.forEach((mark, i) => mark.classList.toggle("current", i === state.current));
}

function goToMatch(i) {
  if (!state.matches.length) return;
  state.current = (i + state.matches.length) % state.matches.length;
  markCurrent();
  state.matches[state.current].scrollIntoView({ block: "center" });
  $("search-count").textContent = `${state.current + 1} of ${state.matches.length}`;
  updateJump();
}

// -- page ---------------------------------------------------------------------------------------------------

function updateJump() {
  const scroller = $("scroller");
  const away = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight > FOLLOW_SLACK_PX;
  $("jump").hidden = !away;
}

function downloadLinks() {
  const links = EXPORT_FORMATS.map((fmt) => {
    const a = document.createElement("a");
    a.className = "button secondary";
    a.href = pageUrl(`/sessions/${encodeURIComponent(session)}/transcript.${fmt}`, { token });
    a.download = `${session}.${fmt}`;
    a.dataset.format = fmt;
    a.textContent = fmt.toUpperCase();
    a.title = `Download the transcript as ${FORMAT_LABELS[fmt]}`;
    a.setAttribute("aria-label", `Download ${FORMAT_LABELS[fmt]}`);
    return a;
  });
  $("download-links").replaceChildren(...links);
}

async function showTitle() {
  try {
    const url = pageUrl(`/sessions/${encodeURIComponent(session)}`, { token });
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) return;
    const info = await response.json();
    if (info.title) {
      $("title").textContent = info.title;
      document.title = `${info.title} · Streamer`;
    }
  } catch (error) {
    console.warn("no session info", error);
  }
}

async function main() {
  $("title").textContent = session || "Live transcript";
  $("search").addEventListener("input", () => {
    state.search = $("search").value.trim();
    state.current = -1;
    updateMatches(true);
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    goToMatch(state.current + 1);
  });
  $("search-prev").addEventListener("click", () => goToMatch(state.current - 1));
  $("scroller").addEventListener("scroll", updateJump, { passive: true });
  $("jump").addEventListener("click", () => {
    const scroller = $("scroller");
    scroller.scrollTop = scroller.scrollHeight;
    updateJump();
  });
  document.addEventListener("keydown", (event) => {
    const typing = event.target instanceof HTMLInputElement;
    if (event.key === "/" && !typing) {
      event.preventDefault();
      $("search").focus();
    } else if (event.key === "Escape" && event.target === $("search")) {
      $("search").value = "";
      $("search").dispatchEvent(new Event("input"));
    }
  });
  if (!session) {
    state.connection = "error";
    state.error = "no session given: open this page as /view?session=ID";
    showStatus();
    return;
  }
  downloadLinks();
  const config = await serverConfig();
  const minutes = Number.parseFloat(query.get("minutes") ?? "");
  state.minutes = minutes > 0 ? minutes : config.paragraph_minutes;
  state.builder = new ParagraphBuilder(state.minutes);
  new ViewerConnection({
    session,
    token,
    onMessage,
    onState: (connection, detail) => {
      state.connection = connection;
      state.error = detail;
      if (connection === "live") showTitle();
      showStatus();
    },
  }).start();
}

main();
