// Live alert feed: load the latest page, then follow /api/alerts/stream.
// On every (re)connect of the stream the list is refetched, so alerts stored while the
// connection was down still appear; cards are keyed by alert id, so nothing shows twice.
"use strict";

const PAGE = 50;
const MAX_CARDS = 200; // keep the page light when it stays open for days

const KIND_LABELS = {
  intrusion: "区域入侵 (Intrusion)",
  line_crossing: "越线 (Line crossing)",
  loitering: "徘徊 (Loitering)",
  crowd: "人员聚集 (Crowd)",
  stationary_vehicle: "车辆滞留 (Stationary vehicle)",
};

const feed = document.getElementById("feed");
const tpl = document.getElementById("card-tpl");
const countEl = document.getElementById("count");
const connEl = document.getElementById("conn");
const emptyEl = document.getElementById("empty");
const errorEl = document.getElementById("error");
const timeFmt = new Intl.DateTimeFormat("zh-CN", {
  year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});

const cards = new Map(); // alert id -> { el, ts }
let total = null;

function setConn(state) {
  const text = {
    live: "实时 (Live)",
    connecting: "重连中 (Reconnecting)",
    offline: "离线 (Offline)",
  }[state];
  connEl.textContent = text;
  connEl.className = `conn conn-${state}`;
}

function renderCount() {
  countEl.textContent = `告警 (Alerts): ${total ?? "–"}`;
  emptyEl.hidden = cards.size > 0;
}

function buildCard(a) {
  const el = tpl.content.firstElementChild.cloneNode(true);
  const img = el.querySelector("img");
  img.src = a.snapshot_url;
  img.alt = `${a.station}/${a.camera} ${a.label}`;
  el.querySelector(".thumb").addEventListener("click", () => openLightbox(a));
  el.querySelector(".kind").textContent = KIND_LABELS[a.rule_kind] ?? a.rule_kind;
  el.querySelector(".score").textContent = `${a.label} ${(a.score * 100).toFixed(0)}%`;
  el.querySelector(".station").textContent = a.station;
  el.querySelector(".camera").textContent = a.camera;
  el.querySelector(".rule").textContent = a.rule;
  el.querySelector(".zone").textContent = a.zone;
  const t = el.querySelector(".ts");
  t.dateTime = a.ts;
  t.textContent = timeFmt.format(new Date(a.ts));
  t.title = `接收 (received): ${timeFmt.format(new Date(a.received_at))}`;
  return el;
}

// Insert by capture time, newest first; a late delivery (station back online) lands in place.
function addAlert(a, isNew) {
  if (cards.has(a.id)) return false;
  const ts = Date.parse(a.ts);
  const el = buildCard(a);
  if (isNew) el.classList.add("new");
  let before = null;
  for (const node of feed.children) {
    const other = cards.get(Number(node.dataset.id));
    if (other && (other.ts < ts || (other.ts === ts && Number(node.dataset.id) < a.id))) {
      before = node;
      break;
    }
  }
  el.dataset.id = String(a.id);
  feed.insertBefore(el, before);
  cards.set(a.id, { el, ts });
  while (feed.children.length > MAX_CARDS) {
    const last = feed.lastElementChild;
    cards.delete(Number(last.dataset.id));
    last.remove();
  }
  return true;
}

async function loadLatest() {
  try {
    const resp = await fetch(`api/alerts?limit=${PAGE}`, { cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const page = await resp.json();
    for (const a of page.items) addAlert(a, false);
    total = page.total;
    errorEl.hidden = true;
  } catch (err) {
    errorEl.textContent = `加载失败 (Failed to load alerts): ${err.message}`;
    errorEl.hidden = false;
  }
  renderCount();
}

function follow() {
  const es = new EventSource("api/alerts/stream");
  es.addEventListener("open", () => {
    setConn("live");
    loadLatest();
  });
  es.addEventListener("alert", (ev) => {
    const a = JSON.parse(ev.data);
    if (addAlert(a, true) && total !== null) total += 1;
    renderCount();
  });
  es.addEventListener("error", () => {
    // EventSource retries by itself unless the server refused the stream outright.
    setConn(es.readyState === EventSource.CLOSED ? "offline" : "connecting");
    if (es.readyState === EventSource.CLOSED) setTimeout(follow, 5000);
  });
}

const lightbox = document.getElementById("lightbox");
const lightboxImg = document.getElementById("lightbox-img");

function openLightbox(a) {
  lightboxImg.src = a.snapshot_url;
  lightboxImg.alt = `${a.station}/${a.camera}`;
  document.getElementById("lightbox-caption").textContent =
    `${a.station} / ${a.camera} · ${a.rule} · ${a.zone} · ${a.label} ${(a.score * 100).toFixed(0)}% · ` +
    timeFmt.format(new Date(a.ts));
  document.getElementById("lightbox-link").href = a.snapshot_url;
  lightbox.hidden = false;
}

function closeLightbox() {
  lightbox.hidden = true;
  lightboxImg.removeAttribute("src");
}

document.getElementById("lightbox-close").addEventListener("click", closeLightbox);
lightbox.addEventListener("click", (ev) => { if (ev.target === lightbox) closeLightbox(); });
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape" && !lightbox.hidden) closeLightbox(); });

setConn("connecting");
renderCount();
loadLatest(); // shows the list even when the stream cannot connect
follow(); // and each stream (re)connect refetches it, closing any gap
