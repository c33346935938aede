// The speaker page: microphone -> AudioWorklet (16 kHz mono PCM16, 50 ms frames) -> /ws/speak; live
// partial and final captions; "New line" (a `flush`); the session's share links; its caption destinations.
//
// Network drops: the page reconnects by itself and resumes the same session (`start` with its id). Audio
// captured meanwhile waits in a bounded buffer (MAX_BUFFER_SECONDS; on overflow the oldest audio is dropped
// and a warning shown). Audio sent just before a drop that the server never received is sent again: the
// resumed `ready` says where the session's audio clock stands, and the page keeps the last REPLAY_SECONDS of
// what it sent. A connection whose send queue stops draining for STALL_MS is treated as dropped (a network
// that vanished without closing the TCP connection). Finals missed while disconnected come from the session's transcript.json; finals are kept by
// `index`, so none is shown twice.
//
// Caption destinations (sinks: Zoom, YouTube Live, webhooks; docs/integrations.md): the page keeps the ones
// it was given, URL and secret included, in memory only, and sends them in every `start`, so a reconnect or a
// restart attaches them again. Before the session exists the page checks them itself; once live, Add and
// Remove go to the sinks API at once (the server checks, and its message is shown), and each sink's status is
// polled every SINK_POLL_MS. A URL is never shown once added: only the masked `scheme://host/…`.

import {
  FATAL_CLOSE_CODES,
  PROTOCOL_VERSION,
  SAMPLE_RATE,
  backoff,
  copyText,
  pageUrl,
  params,
  wsUrl,
} from "./common.js";

const FRAME_MS = 50;
const FRAME_SAMPLES = (SAMPLE_RATE * FRAME_MS) / 1000;
const MAX_BUFFER_SECONDS = 30;
const REPLAY_SECONDS = 15;
const SEND_BUFFER_LIMIT = 64 * 1024; // bytes queued in the browser's socket before audio waits in `pending`
const STALL_MS = 6000; // queued bytes not moving for this long: the connection is dead (a silent drop)
const READY_TIMEOUT_MS = 10000;
const DRAIN_POLL_MS = 100;
const WARNING_MS = 15000;
const METER_FLOOR_DB = -60;
const METER_ARIA_INTERVAL_MS = 250;
const SESSION_BUSY = 4409; // on a first connection: someone else speaks in that session
const MIC_STORAGE_KEY = "streamer.microphone";
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
const SINK_ADD_PHASES = ["idle", "stopped", "error", "live", "reconnecting"]; // not with a `start` in flight

const $ = (id) => document.getElementById(id);
const query = params();
const token = query.get("token") ?? "";
const viewerToken = query.get("viewer_token") ?? "";

const state = {
  phase: "idle", // idle | starting | live | reconnecting | stopping | stopped | error
  session: query.get("session") ?? "",
  ws: null,
  ready: false,
  attempt: 0,
  reconnects: 0,
  timer: null,
  holdUntil: 0,
  lastError: null,
  pending: [], // Int16Array chunks waiting for a connection, oldest first
  pendingSamples: 0,
  droppedSamples: 0,
  sentLog: [], // the last REPLAY_SECONDS of audio sent, oldest first
  sentLogSamples: 0,
  serverBase: null, // the session clock of the last `ready`
  sentSinceReady: 0, // samples sent since that `ready`
  capture: null,
  finals: new Map(),
  lastRendered: -1,
  partial: null,
  meterAriaAt: 0,
  warningTimer: null,
  buffered: 0, // the socket's bufferedAmount at the last check
  progressAt: 0, // when the send queue last drained or shrank
  sinks: new Map(), // id -> the sink as sent in `start` (URL and secret: never rendered)
  sinkStatus: new Map(), // id -> the server's status of the sink (masked URL), in the server's order
  sinkTimer: null,
  sinkGeneration: 0, // bumped by every add and remove: a status poll that started before is stale
  sinkBusy: false, // an add or remove is in flight
};

// -- status and warnings ------------------------------------------------------------------------------------

function setPhase(phase, text) {
  state.phase = phase;
  const status = $("status");
  status.dataset.state = phase;
  status.textContent = text;
  $("start").disabled = !["idle", "stopped", "error"].includes(phase);
  $("stop").disabled = ["idle", "stopped", "error", "starting"].includes(phase);
  $("stop").textContent = phase === "stopping" ? "Discard and stop" : "Stop";
  $("new-line").disabled = phase !== "live";
  for (const id of ["mic", "session", "title", "refresh-mics"]) $(id).disabled = $("start").disabled;
  updateSinkControls();
}

/** Shows `text` in the warning box (empty: hides it); it clears itself after WARNING_MS unless repeated. */
function warn(text) {
  const box = $("warning");
  box.textContent = text;
  box.hidden = !text;
  clearTimeout(state.warningTimer);
  if (text) state.warningTimer = setTimeout(() => warn(""), WARNING_MS);
}

// -- microphones --------------------------------------------------------------------------------------------

async function listMicrophones() {
  const select = $("mic");
  if (!navigator.mediaDevices?.enumerateDevices) return;
  const wanted = select.value || localStorage.getItem(MIC_STORAGE_KEY) || "";
  const devices = await navigator.mediaDevices.enumerateDevices();
  const mics = devices.filter((d) => d.kind === "audioinput" && d.deviceId && d.deviceId !== "default");
  select.replaceChildren(new Option("Default microphone", ""));
  mics.forEach((device, i) => select.add(new Option(device.label || `Microphone ${i + 1}`, device.deviceId)));
  select.value = mics.some((d) => d.deviceId === wanted) ? wanted : "";
}

async function startCapture() {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    throw new Error("microphone access needs https:// or http://localhost (a secure context)");
  }
  const deviceId = $("mic").value;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: {
      deviceId: deviceId ? { exact: deviceId } : undefined,
      channelCount: 1,
      echoCancellation: false,
      noiseSuppression: false,
      autoGainControl: false,
    },
  });
  localStorage.setItem(MIC_STORAGE_KEY, deviceId);
  listMicrophones().catch(() => {}); // labels are readable once permission is granted
  const context = new AudioContext({ latencyHint: "interactive" });
  await context.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "streamer-capture", {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    processorOptions: { targetRate: SAMPLE_RATE, frameSamples: FRAME_SAMPLES },
  });
  node.port.onmessage = (event) => onFrame(new Int16Array(event.data.pcm), event.data.rms, event.data.peak);
  source.connect(node);
  node.connect(context.destination); // keeps the node pulled; it outputs silence
  await context.resume();
  stream.getAudioTracks()[0]?.addEventListener("ended", () => {
    warn("The microphone was disconnected.");
    if (state.phase === "live" || state.phase === "reconnecting") stop();
  });
  return { stream, context, node, source };
}

function stopCapture() {
  const capture = state.capture;
  state.capture = null;
  if (!capture) return;
  capture.node.port.onmessage = null;
  capture.source.disconnect();
  capture.node.disconnect();
  capture.stream.getTracks().forEach((track) => track.stop());
  capture.context.close().catch(() => {});
  updateMeter(0, 0);
}

function updateMeter(rms, peak) {
  const db = 20 * Math.log10(rms + 1e-9);
  const level = Math.max(0, Math.min(1, (db - METER_FLOOR_DB) / -METER_FLOOR_DB));
  const meter = $("level");
  meter.style.setProperty("--level", level.toFixed(3));
  meter.classList.toggle("clipping", peak >= 0.99);
  const now = performance.now();
  if (now - state.meterAriaAt > METER_ARIA_INTERVAL_MS) {
    state.meterAriaAt = now;
    meter.setAttribute("aria-valuenow", String(Math.round(level * 100)));
  }
}

// -- audio out ----------------------------------------------------------------------------------------------

function onFrame(pcm, rms, peak) {
  updateMeter(rms, peak);
  if (state.phase === "stopped" || state.phase === "error") return;
  state.pending.push(pcm);
  state.pendingSamples += pcm.length;
  const limit = MAX_BUFFER_SECONDS * SAMPLE_RATE;
  let dropped = 0;
  while (state.pendingSamples > limit && state.pending.length > 1) {
    const oldest = state.pending.shift();
    state.pendingSamples -= oldest.length;
    dropped += oldest.length;
  }
  if (dropped) {
    state.droppedSamples += dropped;
    warn(
      `Offline for more than ${MAX_BUFFER_SECONDS} s: the oldest audio is being dropped ` +
        `(${(state.droppedSamples / SAMPLE_RATE).toFixed(1)} s lost so far).`,
    );
  }
  checkStall();
  flushPending();
}

function canSend() {
  const ws = state.ws;
  return state.ready && ws?.readyState === WebSocket.OPEN && ws.bufferedAmount < SEND_BUFFER_LIMIT;
}

/** Drops a connection whose queued audio has stopped moving; the reconnect and replay take over. */
function checkStall() {
  const ws = state.ws;
  if (!ws || !state.ready) return;
  const now = performance.now();
  const buffered = ws.bufferedAmount;
  if (buffered === 0 || buffered < state.buffered) state.progressAt = now;
  state.buffered = buffered;
  if (now - state.progressAt < STALL_MS) return;
  state.ws = null;
  state.ready = false;
  ws.onclose = null;
  ws.onmessage = null;
  ws.close(4000, "stalled");
  onClose({ code: 1006, reason: "the connection stalled" });
}

function flushPending() {
  while (state.pending.length && canSend()) {
    const chunk = state.pending.shift();
    state.pendingSamples -= chunk.length;
    state.ws.send(chunk);
    state.sentSinceReady += chunk.length;
    state.sentLog.push(chunk);
    state.sentLogSamples += chunk.length;
    while (state.sentLogSamples - state.sentLog[0].length >= REPLAY_SECONDS * SAMPLE_RATE) {
      state.sentLogSamples -= state.sentLog.shift().length;
    }
  }
}

/** Takes the last `count` samples off the sent log (the server never got them) to send them again. */
function takeUnreceived(count) {
  const parts = [];
  let wanted = Math.min(count, state.sentLogSamples);
  while (wanted > 0) {
    const last = state.sentLog.pop();
    if (last.length <= wanted) {
      parts.unshift(last);
      wanted -= last.length;
      state.sentLogSamples -= last.length;
    } else {
      parts.unshift(last.slice(last.length - wanted));
      state.sentLog.push(last.slice(0, last.length - wanted));
      state.sentLogSamples -= wanted;
      wanted = 0;
    }
  }
  return parts;
}

// -- the connection -----------------------------------------------------------------------------------------

function connect() {
  clearTimeout(state.timer);
  const ws = new WebSocket(wsUrl("/ws/speak", { token }));
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  state.ready = false;
  state.lastError = null;
  let readyTimer = null;
  ws.onopen = () => {
    const start = {
      type: "start",
      version: PROTOCOL_VERSION,
      sample_rate: SAMPLE_RATE,
      encoding: "pcm16",
      channels: 1,
    };
    if (state.session) start.session = state.session;
    const title = $("title").value.trim();
    if (title) start.title = title;
    if (state.sinks.size) start.sinks = [...state.sinks.values()];
    ws.send(JSON.stringify(start));
    readyTimer = setTimeout(() => ws.close(4000, "no ready in time"), READY_TIMEOUT_MS);
  };
  ws.onmessage = (event) => {
    if (typeof event.data !== "string") return;
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "ready") clearTimeout(readyTimer);
    onMessage(message);
  };
  ws.onclose = (event) => {
    clearTimeout(readyTimer);
    if (state.ws !== ws) return;
    state.ready = false;
    onClose(event);
  };
}

function onClose(event) {
  const detail = state.lastError?.message || event.reason || `connection closed (${event.code})`;
  if (state.phase === "stopped" || state.phase === "idle") return;
  const neverJoined = state.serverBase === null && event.code === SESSION_BUSY;
  if (FATAL_CLOSE_CODES.has(event.code) || neverJoined) {
    stopCapture();
    setPhase("error", `Stopped: ${detail}`);
    return;
  }
  const delay = Math.max(backoff(state.attempt), state.holdUntil - Date.now());
  state.attempt += 1;
  if (state.phase !== "stopping") setPhase("reconnecting", `Reconnecting… (${detail})`);
  state.timer = setTimeout(() => {
    state.reconnects += 1;
    connect();
  }, delay);
}

function onMessage(message) {
  switch (message.type) {
    case "ready":
      onReady(message);
      break;
    case "partial":
      state.partial = message;
      renderPartial();
      break;
    case "final":
      addFinals([message]);
      break;
    case "warning":
      warn(message.message ?? "warning");
      break;
    case "error":
      state.lastError = message;
      break;
    case "ended":
      if (state.phase === "stopping") {
        state.ws?.close(1000, "done");
        finish(`Stopped. Session ${message.session}: ${message.finals} captions, ${message.time.toFixed(1)} s.`);
      }
      break;
    default:
      break; // speech_started / speech_ended and unknown types
  }
}

function onReady(message) {
  const wasConnected = state.serverBase !== null;
  if (wasConnected && message.resumed) {
    const expected = state.serverBase + state.sentSinceReady / SAMPLE_RATE;
    const unreceived = Math.round((expected - message.time) * SAMPLE_RATE);
    if (unreceived > state.sentLogSamples) {
      const lost = (unreceived - state.sentLogSamples) / SAMPLE_RATE;
      warn(`${lost.toFixed(1)} s of audio sent before the drop never reached the server and is lost.`);
    }
    if (unreceived > 0) {
      const parts = takeUnreceived(unreceived);
      state.pending.unshift(...parts);
      state.pendingSamples += parts.reduce((n, p) => n + p.length, 0);
    }
  }
  state.serverBase = message.time;
  state.sentSinceReady = 0;
  state.session = message.session;
  state.ready = true;
  state.attempt = 0;
  state.buffered = 0;
  state.progressAt = performance.now();
  showSession(message.session);
  if (state.phase === "stopping") {
    drainThenEnd();
  } else {
    setPhase("live", wasConnected ? "Live (reconnected)" : `Live${message.resumed ? " (resumed)" : ""}`);
    flushPending();
  }
  if (message.resumed) fetchMissedFinals().catch((error) => console.warn("transcript fetch failed", error));
  scheduleSinkPoll(0);
}

async function fetchMissedFinals() {
  const url = pageUrl(`/sessions/${encodeURIComponent(state.session)}/transcript.json`, { token });
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) return;
  const document = await response.json();
  addFinals(document.finals ?? []);
}

function drainThenEnd() {
  flushPending();
  if (!state.ready || state.phase !== "stopping") return;
  if (state.pending.length) {
    state.timer = setTimeout(drainThenEnd, DRAIN_POLL_MS);
    return;
  }
  state.ws.send(JSON.stringify({ type: "end" }));
  setPhase("stopping", "Finishing the last captions…");
}

/** Commits the caption being spoken now (a `flush`), e.g. before another person speaks. Audio still waiting
 * for the socket (a slow network) goes after the cut, into the next caption. */
function newLine() {
  if (state.phase !== "live" || !state.ready) return;
  flushPending();
  state.ws.send(JSON.stringify({ type: "flush" }));
}

// -- start / stop -------------------------------------------------------------------------------------------

async function start() {
  const sessionInput = $("session").value.trim();
  if (sessionInput && !$("session").checkValidity()) {
    warn("A session id is 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit.");
    return;
  }
  warn("");
  if (sessionInput !== state.session || !sessionInput) {
    // another session: forget the captions shown (the same id resumes, and keeps them)
    state.finals.clear();
    state.lastRendered = -1;
    state.partial = null;
    $("finals").replaceChildren();
    renderPartial();
    $("captions-empty").hidden = false;
  }
  Object.assign(state, {
    session: sessionInput,
    pending: [],
    pendingSamples: 0,
    droppedSamples: 0,
    sentLog: [],
    sentLogSamples: 0,
    serverBase: null,
    sentSinceReady: 0,
    attempt: 0,
    holdUntil: 0,
  });
  state.sinkStatus.clear();
  renderSinks();
  setPhase("starting", "Starting the microphone…");
  try {
    state.capture = await startCapture();
  } catch (error) {
    setPhase("error", `Microphone unavailable: ${error.message ?? error}`);
    return;
  }
  setPhase("starting", "Connecting…");
  connect();
}

function stop() {
  if (state.phase === "stopping") {
    finish("Stopped; buffered audio discarded.");
    state.ws?.close(1000, "stopped");
    return;
  }
  stopCapture();
  setPhase("stopping", state.ready ? "Finishing the last captions…" : "Stopping: waiting for the connection");
  if (state.ready) drainThenEnd();
}

function finish(text) {
  clearTimeout(state.timer);
  stopCapture();
  state.ready = false;
  setPhase("stopped", text);
}

// -- captions -----------------------------------------------------------------------------------------------

function addFinals(finals) {
  let rerender = false;
  const fresh = [];
  for (const final of finals) {
    if (state.finals.has(final.index)) continue;
    state.finals.set(final.index, final);
    if (final.index < state.lastRendered) rerender = true;
    else fresh.push(final);
    if (state.partial && state.partial.utterance_id === final.utterance_id) state.partial = null;
  }
  if (rerender) {
    $("finals").replaceChildren();
    state.lastRendered = -1;
    fresh.length = 0;
    fresh.push(...[...state.finals.values()].sort((a, b) => a.index - b.index));
  }
  fresh.sort((a, b) => a.index - b.index);
  const box = $("captions");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  for (const final of fresh) {
    const span = document.createElement("span");
    span.className = "final";
    span.dataset.index = String(final.index);
    span.textContent = `${final.text.trim()} `;
    $("finals").append(span);
    state.lastRendered = Math.max(state.lastRendered, final.index);
  }
  $("captions-empty").hidden = state.finals.size > 0;
  renderPartial();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function renderPartial() {
  $("partial").textContent = state.partial?.unstable ?? "";
  if (state.partial?.unstable) $("captions-empty").hidden = true;
}

// -- sharing ------------------------------------------------------------------------------------------------

function showSession(session) {
  $("session-id").textContent = session;
  $("share-hint").hidden = true;
  $("session").value = session;
  const links = {
    view: pageUrl("/view", { session, token: viewerToken }),
    overlay: pageUrl("/overlay", { session, token: viewerToken }),
  };
  for (const [name, href] of Object.entries(links)) {
    $(`${name}-link`).value = href;
    $(`${name}-open`).href = href;
  }
  const url = new URL(location.href);
  url.searchParams.set("session", session);
  history.replaceState(null, "", url);
}

// -- caption destinations -----------------------------------------------------------------------------------

function showSinkFields() {
  const kind = $("sink-kind").value;
  for (const field of document.querySelectorAll("#sink-form [data-kinds]")) {
    field.hidden = !field.dataset.kinds.split(" ").includes(kind);
  }
  $("sink-url").placeholder = SINK_KINDS[kind].example;
}

function sinkFromForm() {
  const kind = $("sink-kind").value;
  const sink = { kind, url: $("sink-url").value.trim() };
  if (kind === "zoom") {
    sink.lang = $("sink-lang").value.trim() || "en-US";
    if ($("sink-partials").checked) sink.partials = true;
  }
  if (kind === "webhook") sink.secret = $("sink-secret").value.trim();
  return sink;
}

/** The server's default id of a destination, `KIND-` + a hash of its URL (default_sink_id in
 * streamer/sinks/spec.py): the same URL is the same sink, whose numbering goes on across restarts. */
async function sinkId(kind, url) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${kind} ${url}`));
  const hex = [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${kind}-${hex.slice(0, 12)}`;
}

/** What the server would refuse in `sink` (streamer/sinks/spec.py), for before the session exists; "" if
 * nothing. */
function sinkProblem(sink) {
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
  if (state.sinks.has(sink.id)) return "That destination is already in the list.";
  if (state.sinks.size >= MAX_SINKS) return `A session has at most ${MAX_SINKS} destinations.`;
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

/** One call to the session's sinks API; resolves to `{ok, status, data, message}`, never throws. */
async function sinkRequest(method, id = "", body = undefined) {
  let path = `/sessions/${encodeURIComponent(state.session)}/sinks`;
  if (id) path += `/${encodeURIComponent(id)}`;
  try {
    const response = await fetch(pageUrl(path, { token }), {
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

async function addSink(event) {
  event.preventDefault();
  if (state.sinkBusy || !SINK_ADD_PHASES.includes(state.phase)) return;
  const sink = sinkFromForm();
  sinkError("");
  setSinkBusy(true);
  try {
    sink.id = await sinkId(sink.kind, sink.url);
    if (state.phase === "live") {
      const answer = await sinkRequest("POST", "", sink);
      if (!answer.ok) return sinkError(answer.message);
      state.sinkGeneration += 1;
      for (const status of answer.data) state.sinkStatus.set(status.id, status);
    } else {
      const problem = sinkProblem(sink);
      if (problem) return sinkError(problem);
    }
    state.sinks.set(sink.id, sink);
    $("sink-url").value = "";
    $("sink-secret").value = "";
    $("sink-note").textContent = `${SINK_KINDS[sink.kind].label} destination added.`;
    renderSinks();
  } finally {
    setSinkBusy(false);
  }
}

/** Removes a destination: from the server while it lists the sink (live or still draining), and from the
 * page. */
async function removeSink(id) {
  if (state.sinkBusy) return;
  const status = state.sinkStatus.get(id);
  const kind = status?.kind ?? state.sinks.get(id)?.kind;
  const hadFocus = document.activeElement?.dataset?.id === id;
  setSinkBusy(true);
  try {
    if (status) {
      const answer = await sinkRequest("DELETE", id);
      if (!answer.ok && answer.status !== 404) return sinkError(answer.message);
    }
    state.sinkGeneration += 1;
    state.sinks.delete(id);
    state.sinkStatus.delete(id);
    sinkError("");
    $("sink-note").textContent = `${SINK_KINDS[kind]?.label ?? kind} destination removed.`;
    renderSinks();
    if (hadFocus) ($("sink-list").querySelector("button") ?? $("sink-kind")).focus();
  } finally {
    setSinkBusy(false);
  }
}

/** Marks an add or remove request in flight; others wait for it (buttons stay enabled, keeping focus). */
function setSinkBusy(busy) {
  state.sinkBusy = busy;
  $("sink-form").setAttribute("aria-busy", String(busy));
}

function sinkError(text) {
  $("sink-error").textContent = text;
  $("sink-error").hidden = !text;
}

function scheduleSinkPoll(delay) {
  clearTimeout(state.sinkTimer);
  state.sinkTimer = setTimeout(pollSinks, delay);
}

/** Polls the sinks' status while the session is on, and after it while its sinks still drain. */
async function pollSinks() {
  state.sinkTimer = null;
  const generation = state.sinkGeneration;
  const answer = await sinkRequest("GET");
  const listed = answer.ok && Array.isArray(answer.data) ? answer.data : null;
  if (listed && generation === state.sinkGeneration) {
    state.sinkStatus = new Map(listed.map((status) => [status.id, status]));
    renderSinks();
  }
  const on = ["live", "reconnecting", "stopping"].includes(state.phase);
  if (state.sinkTimer === null && (on || listed?.length)) scheduleSinkPoll(SINK_POLL_MS);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderSinks() {
  const list = $("sink-list");
  const focused = document.activeElement?.closest?.("#sink-list button")?.dataset.id;
  const ids = [...new Set([...state.sinks.keys(), ...state.sinkStatus.keys()])];
  list.replaceChildren(...ids.map((id) => sinkItem(id, state.sinks.get(id), state.sinkStatus.get(id))));
  $("sinks-empty").hidden = ids.length > 0;
  updateSinkControls();
  if (focused) list.querySelector(`button[data-id="${CSS.escape(focused)}"]`)?.focus();
}

function sinkItem(id, sink, status) {
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
  remove.addEventListener("click", () => removeSink(id));
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

function updateSinkControls() {
  $("sink-add").disabled = !SINK_ADD_PHASES.includes(state.phase);
}

// -- wiring -------------------------------------------------------------------------------------------------

$("start").addEventListener("click", start);
$("stop").addEventListener("click", stop);
$("new-line").addEventListener("click", newLine);
document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.target.closest?.("form")) {
    event.preventDefault();
    newLine();
  }
});
$("sink-kind").addEventListener("change", () => {
  showSinkFields();
  sinkError("");
});
$("sink-form").addEventListener("submit", addSink);
$("refresh-mics").addEventListener("click", () => listMicrophones());
navigator.mediaDevices?.addEventListener?.("devicechange", () => listMicrophones());
for (const button of document.querySelectorAll("button.copy")) {
  button.addEventListener("click", async () => {
    const input = $(button.dataset.copy);
    if (!input.value) return;
    const ok = await copyText(input.value, input);
    button.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
}
if (state.session) $("session").value = state.session;
listMicrophones().catch(() => {});
showSinkFields();
setPhase("idle", "Not started");

/** Hooks for the browser tests (harmless in production: they only act when called). */
window.__streamerTest = {
  /** Cuts the connection as a network drop would, keeping it down for at least `offlineMs`. */
  dropConnection(offlineMs = 0) {
    state.holdUntil = Date.now() + offlineMs;
    state.ws?.close(4000, "test: connection dropped");
    return true;
  },
  snapshot() {
    return {
      phase: state.phase,
      session: state.session,
      indexes: [...state.finals.keys()].sort((a, b) => a - b),
      reconnects: state.reconnects,
      pendingSeconds: state.pendingSamples / SAMPLE_RATE,
      droppedSeconds: state.droppedSamples / SAMPLE_RATE,
      sentTime: state.serverBase === null ? null : state.serverBase + state.sentSinceReady / SAMPLE_RATE,
    };
  },
};
