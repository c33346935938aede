// The index page: links to the speaker page, a form to follow a session, and the server's sessions.

import { clock, pageUrl, params } from "./common.js";

const token = params().get("token") ?? "";
const $ = (id) => document.getElementById(id);

$("speak-link").href = pageUrl("/speak", { token });

$("watch-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const page = event.submitter?.dataset.page ?? "/view";
  location.href = pageUrl(page, { session: $("watch-session").value.trim(), token });
});

async function listSessions() {
  const list = $("sessions");
  let sessions;
  try {
    const response = await fetch(pageUrl("/sessions", { token }), { cache: "no-store" });
    if (!response.ok) throw new Error((await response.json()).message ?? response.statusText);
    sessions = await response.json();
  } catch (error) {
    list.replaceChildren(Object.assign(document.createElement("li"), { className: "hint", textContent: `Cannot list sessions: ${error.message}` }));
    return;
  }
  if (!sessions.length) {
    list.replaceChildren(Object.assign(document.createElement("li"), { className: "hint", textContent: "No sessions yet." }));
    return;
  }
  sessions.sort((a, b) => String(b.created ?? "").localeCompare(String(a.created ?? "")));
  list.replaceChildren(
    ...sessions.map((s) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = pageUrl("/view", { session: s.id, token });
      link.textContent = s.title ? `${s.title} (${s.id})` : s.id;
      const overlay = document.createElement("a");
      overlay.href = pageUrl("/overlay", { session: s.id, token });
      overlay.textContent = "overlay";
      const meta = document.createElement("span");
      meta.className = `badge ${s.live ? "live" : ""}`;
      meta.textContent = s.live ? "live" : `${s.finals} captions · ${clock(s.duration ?? 0)}`;
      item.append(link, " ", meta, " ", overlay);
      return item;
    }),
  );
}

listSessions();
