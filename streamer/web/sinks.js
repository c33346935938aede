// The speaker page's caption destinations (sinks: Zoom, YouTube Live, webhooks; docs/integrations.md): the
// "Caption destinations" form and list, and the session's sinks API. Used by speak.js through one
// `CaptionDestinations`; it owns the destinations and their DOM, and reads the page's phase and session.
//
// The page keeps the destinations it was given, URL and secret included, in memory only; speak.js sends them
// in every `start` (`forStart()`), so a reconnect or a restart attaches them again. Before the session exists
// they are checked here, mirroring streamer/sinks/spec.py; once live, Add and Remove go to the sinks API at
// once (the server checks, and its message is shown), and each sink's status is polled every SINK_POLL_MS
// (GET /sessions/{id}/sinks). A URL is never shown once added: only the masked `scheme://host/…`.

import { pageUrl } from "./common.js";

const SINK_POLL_MS = 2000;
// The limits of a sink (streamer/sinks/spec.py), checked before the session exists.
const MAX_SINKS = 8;
const MAX_URL_CHARS = 2048;
const MIN_SECRET_CHARS = 16;
const MAX_SECRET_CHARS = 256;
const INVALID_URL = "<invalid url>";
const LANGUAGE_TAG = /^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$/;
const SINK_KINDS = {
  zoom: { label: "Zoom", example: "https://wmcc.zoom.us/closedcaption?id=…" },
  youtube: { label: "YouTube Live", example: "http://upload.youtube.com/closedcaption?cid=…" },
  webhook: { label: "Webhook", example: "https://example.com/captions" },
};
const ADD_PHASES = ["idle", "stopped", "error", "live", "reconnecting"]; // not with a `start` in flight
const POLL_PHASES = ["live", "reconnecting", "stopping"]; // the session is on: its sinks' status changes

const $ = (id) => document.getElementById(id);

/**
 * The caption destinations of the speaker page. speak.js calls `forStart()` for the `sinks` of each `start`,
 * `reset()` when captioning starts, `connected()` on each `ready`, and `updateControls()` when its phase
 * changes. `getPhase()` is the page's phase (idle | starting | live | reconnecting | stopping | stopped |
 * error) and `getSession()` its session id; `token` authorises the sinks API.
 */
export class CaptionDestinations {
  constructor({ token, getPhase, getSession }) {
    this.token = token;
    this.getPhase = getPhase;
    this.getSession = getSession;
    this.sinks = new Map(); // id -> the sink as sent in `start` (URL and secret: never rendered)
    this.status = new Map(); // id -> the server's status of the sink (masked URL), in the server's order
    this.timer = null;
    this.generation = 0; // bumped by every add and remove: a status poll that started before is stale
    this.busy = false; // an add or remove is in flight
    $("sink-kind").addEventListener("change", () => {
      this.showFields();
      this.showError("");
    });
    $("sink-form").addEventListener("submit", (event) => this.add(event));
    this.showFields();
  }

  // -- what speak.js calls ----------------------------------------------------------------------------------

  /** The destinations for a `start` message, URL and secret included (empty: none). */
  forStart() {
    return [...this.sinks.values()];
  }

  /** Captioning starts (maybe another session): forgets the server's status of the sinks. */
  reset() {
    this.status.clear();
    this.render();
  }

  /** The session is ready (started, resumed or reconnected): polls the sinks' status now, then on. */
  connected() {
    this.schedulePoll(0);
  }

  /** Enables Add in the phases where a destination can be added (not with a `start` in flight). */
  updateControls() {
    $("sink-add").disabled = !ADD_PHASES.includes(this.getPhase());
  }

  // -- the form ---------------------------------------------------------------------------------------------

  showFields() {
    const kind = $("sink-kind").value;
    for (const field of document.querySelectorAll("#sink-form [data-kinds]")) {
      field.hidden = !field.dataset.kinds.split(" ").includes(kind);
    }
    $("sink-url").placeholder = SINK_KINDS[kind].example;
  }

  fromForm() {
    const kind = $("sink-kind").value;
    const sink = { kind, url: $("sink-url").value.trim() };
    if (kind === "zoom") {
      sink.lang = $("sink-lang").value.trim() || "en-US";
      if ($("sink-partials").checked) sink.partials = true;
    }
    if (kind === "webhook") sink.secret = $("sink-secret").value.trim();
    return sink;
  }

  async add(event) {
    event.preventDefault();
    if (this.busy || !ADD_PHASES.includes(this.getPhase())) return;
    const sink = this.fromForm();
    this.showError("");
    this.setBusy(true);
    try {
      sink.id = await sinkId(sink.kind, sink.url);
      if (this.getPhase() === "live") {
        const answer = await this.request("POST", "", sink);
        if (!answer.ok) return this.showError(answer.message);
        this.generation += 1;
        for (const status of answer.data) this.status.set(status.id, status);
      } else {
        const problem = sinkProblem(sink, this.sinks);
        if (problem) return this.showError(problem);
      }
      this.sinks.set(sink.id, sink);
      $("sink-url").value = "";
      $("sink-secret").value = "";
      $("sink-note").textContent = `${SINK_KINDS[sink.kind].label} destination added.`;
      this.render();
    } finally {
      this.setBusy(false);
    }
  }

  /** Removes a destination: from the server while it lists the sink (live or still draining), and from the
   * page. */
  async remove(id) {
    if (this.busy) return;
    const status = this.status.get(id);
    const kind = status?.kind ?? this.sinks.get(id)?.kind;
    const hadFocus = document.activeElement?.dataset?.id === id;
    this.setBusy(true);
    try {
      if (status) {
        const answer = await this.request("DELETE", id);
        if (!answer.ok && answer.status !== 404) return this.showError(answer.message);
      }
      this.generation += 1;
      this.sinks.delete(id);
      this.status.delete(id);
      this.showError("");
      $("sink-note").textContent = `${SINK_KINDS[kind]?.label ?? kind} destination removed.`;
      this.render();
      if (hadFocus) ($("sink-list").querySelector("button") ?? $("sink-kind")).focus();
    } finally {
      this.setBusy(false);
    }
  }

  /** Marks an add or remove request in flight; others wait for it (buttons stay enabled, keeping focus). */
  setBusy(busy) {
    this.busy = busy;
    $("sink-form").setAttribute("aria-busy", String(busy));
  }

  showError(text) {
    $("sink-error").textContent = text;
    $("sink-error").hidden = !text;
  }

  // -- the sinks API ----------------------------------------------------------------------------------------

  /** One call to the session's sinks API; resolves to `{ok, status, data, message}`, never throws. */
  async request(method, id = "", body = undefined) {
    let path = `/sessions/${encodeURIComponent(this.getSession())}/sinks`;
    if (id) path += `/${encodeURIComponent(id)}`;
    try {
      const response = await fetch(pageUrl(path, { token: this.token }), {
        method,
        cache: "no-store",
        headers: body ? { "Content-Type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      const data = await response.json().catch(() => null);
      const message = data?.message ?? `HTTP ${response.status}`;
      return { ok: response.ok, status: response.status, data, message };
    } catch (error) {
      const message = `The server did not answer (${error.message ?? error}).`;
      return { ok: false, status: 0, data: null, message };
    }
  }

  schedulePoll(delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.poll(), delay);
  }

  /** Polls the sinks' status while the session is on, and after it while its sinks still drain. */
  async poll() {
    this.timer = null;
    const generation = this.generation;
    const answer = await this.request("GET");
    const listed = answer.ok && Array.isArray(answer.data) ? answer.data : null;
    if (listed && generation === this.generation) {
      this.status = new Map(listed.map((status) => [status.id, status]));
      this.render();
    }
    const on = POLL_PHASES.includes(this.getPhase());
    if (this.timer === null && (on || listed?.length)) this.schedulePoll(SINK_POLL_MS);
  }

  // -- the list ---------------------------------------------------------------------------------------------

  render() {
    const list = $("sink-list");
    const focused = document.activeElement?.closest?.("#sink-list button")?.dataset.id;
    const ids = [...new Set([...this.sinks.keys(), ...this.status.keys()])];
    list.replaceChildren(...ids.map((id) => this.item(id, this.sinks.get(id), this.status.get(id))));
    $("sinks-empty").hidden = ids.length > 0;
    this.updateControls();
    if (focused) list.querySelector(`button[data-id="${CSS.escape(focused)}"]`)?.focus();
  }

  item(id, sink, status) {
    const kind = status?.kind ?? sink.kind;
    const label = SINK_KINDS[kind]?.label ?? kind;
    const target = status?.target ?? maskedUrl(sink.url);
    const item = element("li", "sink");
    item.dataset.id = id;
    item.dataset.state = status?.state ?? "waiting";
    const remove = element("button", "secondary small", "Remove");
    remove.type = "button";
    remove.dataset.id = id;
    remove.setAttribute("aria-label", `Remove ${label} destination ${target}`);
    remove.addEventListener("click", () => this.remove(id));
    const head = element("div", "sink-head");
    head.append(
      element("strong", "", label),
      element("code", "sink-target", target),
      element("span", "sink-state", status?.state ?? "waiting"),
      remove,
    );
    item.append(head);
    if (!status) {
      item.append(element("p", "hint", "Attached when captioning (re)starts."));
      return item;
    }
    const stats = {
      "Last seq": status.acked,
      Delivered: status.partials
        ? `${status.delivered} (+ ${status.partials_delivered} partial)`
        : status.delivered,
      Failures: status.failures,
      Backlog: status.dropped ? `${status.backlog} (${status.dropped} dropped)` : status.backlog,
    };
    if (status.last_error) stats["Last error"] = status.last_error;
    const details = element("dl", "sink-stats");
    for (const [name, value] of Object.entries(stats)) {
      const pair = element("div");
      pair.append(element("dt", "", name), element("dd", "", String(value)));
      details.append(pair);
    }
    item.append(details);
    return item;
  }
}

// -- the rules of streamer/sinks/spec.py --------------------------------------------------------------------

/** The server's default id of a destination, `KIND-` + a hash of its URL (default_sink_id in
 * streamer/sinks/spec.py): the same URL is the same sink, whose numbering goes on across restarts. */
async function sinkId(kind, url) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${kind} ${url}`));
  const hex = [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${kind}-${hex.slice(0, 12)}`;
}

/** What the server would refuse in `sink`, added to `sinks` (streamer/sinks/spec.py), for before the session
 * exists; "" if nothing. */
function sinkProblem(sink, sinks) {
  if (!/^https?:\/\/[^/?#]/i.test(sink.url) || maskedUrl(sink.url) === INVALID_URL) {
    return "The URL must be an http:// or https:// URL with a host.";
  }
  if (sink.url.length > MAX_URL_CHARS || /[\s\x00-\x1f]/.test(sink.url)) {
    return `The URL must be at most ${MAX_URL_CHARS} characters, without spaces.`;
  }
  const secret = sink.secret ?? "";
  if (sink.kind === "webhook" && (secret.length < MIN_SECRET_CHARS || secret.length > MAX_SECRET_CHARS)) {
    return `A webhook needs a signing secret of ${MIN_SECRET_CHARS} to ${MAX_SECRET_CHARS} characters.`;
  }
  if (sink.lang !== undefined && !LANGUAGE_TAG.test(sink.lang)) {
    return "The caption language must be a language tag such as en-US.";
  }
  if (sinks.has(sink.id)) return "That destination is already in the list.";
  if (sinks.size >= MAX_SINKS) return `A session has at most ${MAX_SINKS} destinations.`;
  return "";
}

/** `scheme://host/…`, as the server masks a URL (masked_url in streamer/sinks/spec.py). */
function maskedUrl(url) {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.hostname}/…`;
  } catch {
    return INVALID_URL;
  }
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
