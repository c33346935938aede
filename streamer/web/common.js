// Shared by the Streamer pages: URLs, tokens, the viewer connection with reconnects, the paragraph rules of
// the Markdown export, and small DOM helpers. Plain ES module, no build step, no external requests.

export const SAMPLE_RATE = 16000;
export const PROTOCOL_VERSION = 1;
export const EXPORT_FORMATS = ["md", "srt", "vtt", "txt", "json"];

/** Close codes after which reconnecting cannot help (see docs/protocol.md). */
export const FATAL_CLOSE_CODES = new Set([1003, 1007, 1008, 1009, 4401, 4403]);
const UNKNOWN_SESSION = 4404;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 5000;
const WAIT_FOR_SESSION_MS = 2000;
const SENTENCE_END = [".", "?", "!", "\u2026"];
const MARK_EPSILON = 1e-9;

export function params() {
  return new URLSearchParams(location.search);
}

/** A ws:// (or wss://) URL on this server, with the non-empty `query` values as parameters. */
export function wsUrl(path, query = {}) {
  const url = new URL(path, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  setQuery(url, query);
  return url.href;
}

/** An http(s) URL on this server, with the non-empty `query` values as parameters. */
export function pageUrl(path, query = {}) {
  const url = new URL(path, location.href);
  setQuery(url, query);
  return url.href;
}

function setQuery(url, query) {
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
}

/** Delay before reconnect attempt `attempt` (0, 1, ...): exponential with jitter, capped. */
export function backoff(attempt) {
  const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** ``3603.11`` -> ``01:00:03``. */
export function clock(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return [h, m, s].map((n) => String(n).padStart(2, "0")).join(":");
}

/** The server's settings the pages mirror (the paragraph interval); defaults if unavailable. */
export async function serverConfig() {
  try {
    const response = await fetch(pageUrl("/static/config.json"), { cache: "no-store" });
    if (response.ok) return await response.json();
  } catch (error) {
    console.warn("no server config", error);
  }
  return { version: PROTOCOL_VERSION, paragraph_minutes: 4 };
}

/** Copies `text` to the clipboard; falls back to selecting it for browsers without the API. */
export async function copyText(text, fallbackInput) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (fallbackInput) {
      fallbackInput.select();
      return document.execCommand?.("copy") ?? false;
    }
    return false;
  }
}

/**
 * Applies the paragraph rules of the Markdown export (streamer/core/paragraphs.py) one final at a time:
 * a new paragraph opens at the first utterance or sentence boundary at or after each N-minute mark.
 */
export class ParagraphBuilder {
  constructor(minutes = 4) {
    this.minutes = minutes > 0 ? minutes : 4;
    this.interval = this.minutes * 60;
    this.marksUsed = 0;
    this.previous = null;
  }

  marksPassed(time) {
    return Math.max(0, Math.floor(time / this.interval + MARK_EPSILON));
  }

  /** Adds `final`; returns `{mark, time}` when it opens a paragraph (`mark` null for the first), else null. */
  add(final) {
    const previous = this.previous;
    this.previous = final;
    if (previous === null) {
      this.marksUsed = Math.max(this.marksUsed, this.marksPassed(final.start));
      return { mark: null, time: final.start };
    }
    const candidate =
      final.utterance_id !== previous.utterance_id ||
      SENTENCE_END.some((end) => previous.text.trimEnd().endsWith(end));
    if (!candidate) return null;
    const passed = this.marksPassed(final.start);
    if (passed <= this.marksUsed) return null;
    this.marksUsed = passed;
    return { mark: Math.round(passed * this.minutes * 1e9) / 1e9, time: final.start };
  }
}

/**
 * A viewer's connection to /ws/view?session=ID that reconnects by itself. `onMessage` gets every server
 * message (a fresh `history` after each reconnect: dedupe finals by index); `onState` gets
 * "connecting" | "live" | "waiting" (no such session yet) | "reconnecting" | "error", and a detail.
 */
export class ViewerConnection {
  constructor({ session, token, onMessage, onState }) {
    this.session = session;
    this.token = token;
    this.onMessage = onMessage;
    this.onState = onState ?? (() => {});
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000, "viewer left");
  }

  open() {
    this.onState(this.attempt === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(wsUrl("/ws/view", { session: this.session, token: this.token }));
    this.ws = ws;
    let lastError = null;
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "error") {
        lastError = message;
        return;
      }
      if (message.type === "history") {
        this.attempt = 0;
        this.onState("live");
      }
      this.onMessage(message);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws || this.stopped) return;
      const detail = lastError?.message ?? event.reason ?? "";
      if (FATAL_CLOSE_CODES.has(event.code)) {
        this.onState("error", detail || `closed (${event.code})`);
        return;
      }
      let delay;
      if (event.code === UNKNOWN_SESSION) {
        this.onState("waiting", detail);
        delay = WAIT_FOR_SESSION_MS;
      } else {
        this.onState("reconnecting", detail);
        delay = backoff(this.attempt);
      }
      this.attempt += 1;
      this.timer = setTimeout(() => this.open(), delay);
    };
  }
}

/** Renders `text` into `element`, wrapping case-insensitive matches of `query` in <mark>; returns the count. */
export function highlight(element, text, query) {
  element.replaceChildren();
  if (!query) {
    element.textContent = text;
    return 0;
  }
  const lower = text.toLowerCase();
  const needle = query.toLowerCase();
  let from = 0;
  let count = 0;
  for (let at = lower.indexOf(needle); at !== -1; at = lower.indexOf(needle, from)) {
    if (at > from) element.append(text.slice(from, at));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(at, at + needle.length);
    element.append(mark);
    from = at + needle.length;
    count += 1;
  }
  if (from < text.length) element.append(text.slice(from));
  return count;
}
