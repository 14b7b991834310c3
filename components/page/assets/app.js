// framewire page: live camera cards kept current from /api/state, and the
// media library from the media route's JSON listing. No external fetches.
"use strict";

// Browsers allow six HTTP/1.1 connections per host and every live view holds
// one: over HTTP/1.1, beyond three cameras cards start paused (refreshing
// snapshots). HTTP/2 (framewire over TLS) carries them all on one
// connection; stay under the server's live streams per client (32).
const PROTOCOL = (performance.getEntriesByType("navigation")[0] || {}).nextHopProtocol || "";
const MAX_LIVE = PROTOCOL === "h2" || PROTOCOL === "h3" ? 24 : 3;
const POLL_MS = 1000;
const SNAPSHOT_MS = 2000;
const RETRY_MS = 2000;
const MEDIA_ROOT = "/media/";

const cards = [...document.querySelectorAll(".camera")].map((el, i) => ({
  el,
  name: el.dataset.camera,
  img: el.querySelector("img"),
  message: el.querySelector(".message"),
  pauseButton: el.querySelector(".pause"),
  wantLive: i < MAX_LIVE,
  timer: 0,
}));

function showing() {
  return document.visibilityState !== "hidden";
}

function stopCard(card) {
  clearTimeout(card.timer);
  card.img.onerror = null;
  card.img.removeAttribute("src");
}

function startCard(card) {
  stopCard(card);
  card.pauseButton.textContent = card.wantLive ? "Pause" : "Live";
  if (!showing()) return;
  if (card.wantLive) {
    card.img.onerror = () => {
      // The stream broke (server restart, network): try again shortly.
      stopCard(card);
      card.timer = setTimeout(() => startCard(card), RETRY_MS);
    };
    card.img.src = `/cameras/${card.name}/stream?t=${Date.now()}`;
  } else {
    card.img.onerror = null;
    card.img.src = `/cameras/${card.name}/snapshot?t=${Date.now()}`;
    card.timer = setTimeout(() => startCard(card), SNAPSHOT_MS);
  }
}

for (const card of cards) {
  card.pauseButton.addEventListener("click", () => {
    card.wantLive = !card.wantLive;
    startCard(card);
  });
  card.el.querySelector(".recordings").addEventListener("click", (e) => {
    e.preventDefault();
    loadFolder(e.currentTarget.getAttribute("href"));
    document.getElementById("files").scrollIntoView({ behavior: "smooth" });
  });
  card.el.querySelector(".snapshot").addEventListener("click", (e) => {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    e.currentTarget.download = `${card.name}-${stamp}.jpg`;
  });
  startCard(card);
}

document.addEventListener("visibilitychange", () => {
  // A hidden tab should not hold streams (or server instances) open.
  for (const card of cards) showing() ? startCard(card) : stopCard(card);
});

const STATUS_TEXT = {
  starting: () => "Waiting for the first frame…",
  "no-signal": (c) => `No signal from the camera; retrying.${c.error ? " " + c.error : ""}`,
  failed: (c) => `Camera failed: ${c.error || "unknown error"}`,
};

function updateCard(card, state) {
  if (!state) return;
  card.el.dataset.status = state.status;
  card.el.querySelector(".status").textContent = state.status;
  card.el.querySelector(".fps").textContent = state.fps.toFixed(1);
  card.el.querySelector(".viewers").textContent = String(state.clients);
  // A recording camera: REC while a file is written, "REC stopped" (and
  // why) after a write failed; its recordings a click away in the library.
  const rec = card.el.querySelector(".rec");
  const recording = state.recording;
  rec.hidden = !recording || (!recording.file && !recording.error);
  rec.textContent = recording && recording.error ? "REC stopped" : "REC";
  rec.title = recording ? recording.error || `Recording ${recording.file || ""}` : "";
  rec.classList.toggle("stopped", Boolean(recording && recording.error));
  const link = card.el.querySelector(".recordings");
  link.hidden = !recording;
  if (recording) link.href = MEDIA_ROOT + recording.folder.split("/").map(encodeURIComponent).join("/") + "/";
  const text = STATUS_TEXT[state.status];
  card.message.hidden = !text;
  card.message.textContent = text ? text(state) : "";
}

const connection = document.getElementById("connection");
let lost = false;

async function poll() {
  try {
    const res = await fetch("/api/state", { cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const state = await res.json();
    const byName = new Map(state.cameras.map((c) => [c.name, c]));
    for (const card of cards) updateCard(card, byName.get(card.name));
    if (lost) {
      lost = false;
      connection.hidden = true;
      cards.forEach(startCard);
    }
  } catch (e) {
    lost = true;
    connection.hidden = false;
  }
  setTimeout(poll, POLL_MS);
}
if (cards.length) poll();

// Media library.
const player = document.getElementById("player");
const nowPlaying = document.getElementById("now-playing");
const list = document.getElementById("files");
const crumbs = document.getElementById("crumbs");
const libraryMessage = document.getElementById("library-message");

function formatSize(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function playable(entry) {
  const type = entry.content_type || "";
  return (type.startsWith("video/") || type.startsWith("audio/")) && player.canPlayType(type) !== "";
}

function select(entry, li) {
  for (const other of list.querySelectorAll("li.playing")) other.classList.remove("playing");
  li.classList.add("playing");
  player.src = entry.href;
  nowPlaying.textContent = entry.name;
  player.play().catch(() => {});
}

player.addEventListener("error", () => {
  nowPlaying.textContent = `This browser cannot play ${decodeURIComponent(player.currentSrc.split("/").pop())}.`;
});

function renderCrumbs(path) {
  crumbs.replaceChildren();
  const parts = path.slice(MEDIA_ROOT.length).split("/").filter(Boolean);
  let href = MEDIA_ROOT;
  const link = (text, to) => {
    const a = document.createElement("a");
    a.href = to;
    a.textContent = text;
    a.addEventListener("click", (e) => { e.preventDefault(); loadFolder(to); });
    return a;
  };
  crumbs.append(link("media", href));
  for (const part of parts) {
    href += part + "/";
    crumbs.append(" / ", link(decodeURIComponent(part), href));
  }
}

async function loadFolder(path) {
  renderCrumbs(path);
  list.replaceChildren();
  libraryMessage.hidden = true;
  let listing;
  try {
    const res = await fetch(path, { headers: { accept: "application/json" }, cache: "no-store" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    listing = await res.json();
  } catch (e) {
    libraryMessage.textContent = `The media library is not available (${e.message}).`;
    libraryMessage.hidden = false;
    return;
  }
  if (!listing.entries.length) {
    libraryMessage.textContent = path === MEDIA_ROOT
      ? "The media library is empty: put video, audio or other files in the media folder."
      : "This folder is empty.";
    libraryMessage.hidden = false;
    return;
  }
  for (const entry of listing.entries) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.className = "name";
    a.href = entry.href;
    a.textContent = entry.type === "dir" ? entry.name + "/" : entry.name;
    li.append(a);
    if (entry.type === "dir") {
      a.addEventListener("click", (e) => { e.preventDefault(); loadFolder(entry.href); });
    } else {
      const size = document.createElement("span");
      size.className = "size";
      size.textContent = formatSize(entry.size);
      li.append(size);
      if (playable(entry)) {
        const play = document.createElement("button");
        play.type = "button";
        play.textContent = "Play";
        play.addEventListener("click", () => select(entry, li));
        li.append(play);
      }
    }
    list.append(li);
  }
}

loadFolder(MEDIA_ROOT);
