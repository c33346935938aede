// The speaker page: microphone -> AudioWorklet (16 kHz mono PCM16, 50 ms frames) -> /ws/speak; live
// partial and final captions; "New line" (a `flush`); the session's share links. Its caption destinations
// (the form, the list, the sinks API) are sinks.js's; this page sends them in every `start`, so a reconnect
// or a restart attaches them again.
//
// Network drops: the page reconnects by itself and resumes the same session (`start` with its id). Audio
// captured meanwhile waits in a bounded buffer (MAX_BUFFER_SECONDS; on overflow the oldest audio is dropped
// and a warning shown). Audio sent just before a drop that the server never received is sent again: the
// resumed `ready` says where the session's audio clock stands, and the page keeps the last REPLAY_SECONDS of
// what it sent. A connection whose send queue stops draining for STALL_MS is treated as dropped (a network
// that vanished without closing the TCP connection). Finals missed while disconnected come from the
// session's transcript.json; finals are kept by `index`, so none is shown twice.

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
import { CaptionDestinations } from "./sinks.js";

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
};

const destinations = new CaptionDestinations({
  token,
  getPhase: () => state.phase,
  getSession: () => state.session,
});

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
  destinations.updateControls();
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
    const sinks = destinations.forStart();
    if (sinks.length) start.sinks = sinks;
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
  destinations.connected();
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
  destinations.reset();
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
