// Vigie clinicians' pages: vanilla JS, no build step, nothing fetched from the internet.
// The bearer token lives in sessionStorage (gone when the tab closes; never in a cookie, so
// no cross-site request can act in the user's name). Charts are SVG drawn here.
"use strict";

const ALL_WORDS = JSON.parse(document.getElementById("i18n").textContent);
const root = document.documentElement;
const LANG = localStorage.getItem("vigie.lang") || root.lang || "fr";
root.lang = LANG;
const W = ALL_WORDS[LANG] || ALL_WORDS.fr;
const t = (k) => W[k] || k;
const PAGE = root.dataset.page;
const ARG = root.dataset.arg;
const SEV_ORDER = { urgent: 0, warning: 1, info: 2 };
const SEV_COLOR = { urgent: "#c62828", warning: "#ef6c00", info: "#1565c0" };

// ---------- small helpers ----------
function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v; // CSSOM: allowed by the page's CSP
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}
const $ = (sel) => document.querySelector(sel);
const fmtTime = (iso, timeZone) => new Date(iso).toLocaleString( // timeZone: the browser's
  LANG === "fr" ? "fr-FR" : "en-GB", { dateStyle: "short", timeStyle: "short", timeZone });
function fmtAge(s) {
  if (s < 60) return `${s} ${t("ago_s")}`;
  if (s < 3600) return `${Math.floor(s / 60)} ${t("ago_m")}`;
  if (s < 86400) return `${Math.floor(s / 3600)} ${t("ago_h")}`;
  return `${Math.floor(s / 86400)} ${t("ago_d")}`;
}

// ---------- session ----------
// The access token lasts 15 minutes, the login a shift: a refresh token (single use, each
// refresh returns the next one) renews the access token a minute before it expires, or when a
// request gets a 401. Only a refused refresh sends the nurse back to the login page.
const token = () => sessionStorage.getItem("vigie.token");
const SESSION_KEYS = ["vigie.token", "vigie.refresh", "vigie.renew_at"];
const RENEW_EARLY_S = 60;
function saveTokens(body) {
  sessionStorage.setItem("vigie.token", body.access_token);
  sessionStorage.setItem("vigie.refresh", body.refresh_token);
  const renewIn = Math.max(body.expires_in - RENEW_EARLY_S, body.expires_in / 2);
  sessionStorage.setItem("vigie.renew_at", String(Date.now() + renewIn * 1000));
}
// true: new tokens saved; false: refused (log in again); null: server unreachable, try later
async function refreshTokens() {
  const refreshToken = sessionStorage.getItem("vigie.refresh");
  if (!refreshToken) return false;
  let resp;
  try {
    resp = await fetch("/token/refresh", { method: "POST",
      body: new URLSearchParams({ refresh_token: refreshToken }) });
  } catch (e) { return null; }
  if (resp.status >= 500 || resp.status === 429) return null;
  if (!resp.ok) { sessionStorage.removeItem("vigie.refresh"); return false; }
  saveTokens(await resp.json());
  scheduleRenewal();
  return true;
}
// One refresh at a time: a second one with the same (spent) token would count as a reuse
// and end the session.
let refreshing = null;
function renewTokens() {
  if (!refreshing) refreshing = refreshTokens().finally(() => { refreshing = null; });
  return refreshing;
}
// Renew when a request got a 401 with ``sent``: unless another call renewed it meanwhile.
const renewAfter401 = (sent) => (token() !== sent ? Promise.resolve(true) : renewTokens());
async function freshToken() {
  if (Date.now() >= Number(sessionStorage.getItem("vigie.renew_at") || 0)) await renewTokens();
  return token();
}
let renewTimer = null;
function scheduleRenewal() {
  clearTimeout(renewTimer);
  if (!sessionStorage.getItem("vigie.refresh")) return;  // a 401 will tell
  const wait = Number(sessionStorage.getItem("vigie.renew_at") || 0) - Date.now();
  renewTimer = setTimeout(async () => {
    const ok = await renewTokens();
    if (ok === false) toLogin(true);
    else if (ok === null) renewTimer = setTimeout(scheduleRenewal, 15000);
  }, Math.max(wait, 0));
}
function toLogin(expired) {
  for (const k of SESSION_KEYS) sessionStorage.removeItem(k);
  const next = encodeURIComponent(location.pathname + location.search);
  location.assign(`/ui/login?next=${next}${expired ? "&expired=1" : ""}`);
}

async function api(path, opts = {}) {
  const extra = Object.assign({}, opts.headers || {});
  if (opts.json !== undefined) {
    extra["Content-Type"] = "application/json";
    opts.body = JSON.stringify(opts.json);
  }
  const send = (tok) => fetch(path, { method: opts.method || "GET", body: opts.body,
    headers: Object.assign({ Authorization: `Bearer ${tok}` }, extra) });
  const sent = await freshToken();
  let resp = await send(sent);
  if (resp.status === 401) {  // refused before the route ran: safe to send again
    const renewed = await renewAfter401(sent);
    if (renewed === null) throw new Error(t("offline"));
    if (renewed) resp = await send(token());
  }
  if (resp.status === 401) { toLogin(true); throw new Error("401"); }
  const body = resp.headers.get("content-type")?.includes("json") ? await resp.json() : null;
  if (!resp.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail
      : JSON.stringify(body.detail)) : resp.statusText;
    throw new Error(`${resp.status}: ${detail}`);
  }
  return body;
}
function flash(msg, kind = "error") {
  const box = el("div", { class: `flash ${kind}`, role: "status" }, msg);
  $("#main").prepend(box);
  setTimeout(() => box.remove(), 6000);
}

// ---------- frame ----------
function header() {
  const links = [["/ui/", "inbox"], ["/ui/patients", "patients"], ["/ui/gateways", "gateways"],
    ["/ui/attribution", "attribution"]];
  const nav = el("nav", {}, links.map(([href, key]) =>
    el("a", { href, class: PAGE === key || (PAGE === "patient" && key === "patients")
      ? "here" : null, id: `nav-${key}` }, t(key))));
  const lang = el("button", { class: "ghost", id: "lang", onclick: () => {
    localStorage.setItem("vigie.lang", LANG === "fr" ? "en" : "fr"); location.reload(); } },
  t("language"));
  const user = sessionStorage.getItem("vigie.user") || "";
  const out = el("button", { class: "ghost", id: "logout", onclick: async () => {
    const refreshToken = sessionStorage.getItem("vigie.refresh");
    try {  // revoke this login's refresh tokens; the access token dies within 15 min
      await api("/logout", { method: "POST",
        json: refreshToken ? { refresh_token: refreshToken } : {} });
    } catch (e) { /* unreachable or already logged out: forget the tokens anyway */ }
    sessionStorage.clear(); location.assign("/ui/login"); } }, t("logout"));
  $("#top").append(el("span", { class: "brand" }, "Vigie"), nav,
    el("span", { class: "who" }, user), lang, out);
}

// ---------- login ----------
function loginPage() {
  const params = new URLSearchParams(location.search);
  const msg = el("p", { class: "error", id: "login-error" },
    params.get("expired") ? t("session_expired") : "");
  const form = el("form", { id: "login", class: "card narrow" },
    el("h1", {}, "Vigie"),
    el("label", {}, t("username"), el("input", { name: "username", autocomplete: "username",
      required: true, autocapitalize: "none" })),
    el("label", {}, t("password"), el("input", { name: "password", type: "password",
      autocomplete: "current-password", required: true })),
    msg, el("button", { type: "submit", class: "primary" }, t("login")),
    el("button", { type: "button", class: "ghost", onclick: () => {
      localStorage.setItem("vigie.lang", LANG === "fr" ? "en" : "fr"); location.reload(); } },
    t("language")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new URLSearchParams(new FormData(form));
    const resp = await fetch("/token", { method: "POST", body: data });
    if (!resp.ok) { msg.textContent = t("login_failed"); return; }
    saveTokens(await resp.json());
    sessionStorage.setItem("vigie.user", data.get("username"));
    const next = params.get("next");
    location.assign(next && next.startsWith("/ui/") ? next : "/ui/");
  });
  $("#main").append(form);
}

// ---------- inbox ----------
let inboxFresh = new Set();
async function loadInbox() {
  const items = await api("/alerts/inbox");
  const list = $("#inbox-list");
  list.replaceChildren();
  if (!items.length) list.append(el("p", { class: "empty" }, t("no_alerts")));
  for (const a of items) list.append(alertCard(a));
  $("#inbox-count").textContent = String(items.filter((a) => !a.acknowledged).length);
}
// The alert's message in the page's language (rendered by the API), else its English one.
const alertText = (a) => (a.messages && a.messages[LANG]) || a.message;
function alertCard(a) {
  const card = el("article", { class: `alert sev-${a.severity} st-${a.state}` +
      (inboxFresh.has(a.id) ? " fresh" : ""), id: `alert-${a.id}`, "data-alert": a.id },
    el("div", { class: "alert-head" },
      el("span", { class: `badge sev-${a.severity}` }, t(a.severity)),
      el("a", { href: `/ui/patients/${encodeURIComponent(a.patient)}`, class: "patient" },
        a.patient),
      el("span", { class: "rule" }, a.rule),
      el("span", { class: "state" }, t(a.state)),
      el("span", { class: "age", title: fmtTime(a.time) }, fmtAge(a.age_s))),
    el("p", { class: "msg" }, alertText(a)),
    el("div", { class: "actions" },
      a.acknowledged ? null : el("button", { class: "primary ack", onclick: () => ackDialog(a) },
        t("acknowledge")),
      el("select", { class: "snooze", "aria-label": t("snooze"), onchange: (ev) =>
        snooze(a, ev.target.value) },
      el("option", { value: "" }, `${t("snooze")}…`),
      [15, 60, 240, 1440].map((m) => el("option", { value: m }, t(`snooze_${m}`)))),
      el("button", { class: "ghost", onclick: () => resolveDialog(a) }, t("resolve")),
      el("button", { class: "ghost history", onclick: () => historyDialog(a) }, t("history")),
      el("a", { class: "button ghost", href: `/ui/patients/${encodeURIComponent(a.patient)}` },
        t("open_trend"))));
  return card;
}
function commentDialog(title, onok) {
  const text = el("textarea", { id: "comment", rows: 3, maxlength: 2000,
    placeholder: t("comment") });
  const dlg = el("dialog", { id: "dialog" }, el("form", { method: "dialog" },
    el("h2", {}, title), text,
    el("div", { class: "actions" },
      el("button", { value: "cancel", class: "ghost" }, t("cancel")),
      el("button", { value: "ok", class: "primary", id: "confirm" }, t("confirm")))));
  dlg.addEventListener("close", async () => {
    if (dlg.returnValue === "ok") {
      try { await onok(text.value.trim() || null); } catch (e) { flash(e.message); }
    }
    dlg.remove();
  });
  document.body.append(dlg);
  dlg.showModal();
  text.focus();
}
// Who did what to an alert, and when: the system's lines in the page's language (rendered by
// the API), a clinician's comment as written.
async function historyDialog(a) {
  let rows;
  try { rows = await api(`/alerts/${a.id}/history`); } catch (e) { flash(e.message); return; }
  const said = (h) => (h.messages && h.messages[LANG]) || h.comment;
  const list = el("ol", { class: "history" }, rows.map((h) => el("li", {},
    el("div", { class: "history-head" }, el("time", { datetime: h.at }, fmtTime(h.at)),
      el("span", { class: "who" }, h.who === "system" ? t("system") : h.who),
      el("span", { class: `state st-${h.to_state}` }, t(h.to_state))),
    said(h) ? el("p", { class: "history-text" }, said(h)) : null)));
  const dlg = el("dialog", { id: "history-dialog" }, el("form", { method: "dialog" },
    el("h2", {}, `${t("history")} — ${a.patient} · ${alertText(a)}`), list,
    el("div", { class: "actions" },
      el("button", { value: "close", class: "primary" }, t("close_dialog")))));
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}
const ackDialog = (a) => commentDialog(`${t("acknowledge")} — ${a.patient} · ${a.rule}`,
  async (comment) => {
    await api(`/alerts/${a.id}/acknowledge`, { method: "POST", json: { comment } });
    inboxFresh.delete(a.id); await loadInbox();
  });
const resolveDialog = (a) => commentDialog(`${t("resolve")} — ${a.patient} · ${a.rule}`,
  async (comment) => {
    await api(`/alerts/${a.id}/resolve`, { method: "POST", json: { comment } });
    await loadInbox();
  });
async function snooze(a, minutes) {
  if (!minutes) return;
  const until = new Date(Date.now() + Number(minutes) * 60000).toISOString();
  try { await api(`/alerts/${a.id}/snooze`, { method: "POST", json: { until } }); }
  catch (e) { flash(e.message); }
  await loadInbox();
}

// Server-sent events read through fetch (EventSource cannot send the bearer header).
async function follow(onEvent, setStatus) {
  let last = null;
  for (;;) {
    try {
      // each (re)connection with a fresh token: the server ends the stream when it expires
      const sent = await freshToken();
      const headers = { Authorization: `Bearer ${sent}`, Accept: "text/event-stream" };
      if (last !== null) headers["Last-Event-ID"] = last;
      const resp = await fetch("/alerts/stream", { headers });
      if (resp.status === 401) {
        if (await renewAfter401(sent) === false) { toLogin(true); return; }
        throw new Error("401");  // reconnect below with the renewed token
      }
      if (!resp.ok || !resp.body) throw new Error(String(resp.status));
      setStatus(true);
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
          const ev = { event: "message", data: "" };
          for (const line of block.split("\n")) {
            const i = line.indexOf(":");
            if (i <= 0) continue;
            const key = line.slice(0, i), val = line.slice(i + 1).trimStart();
            if (key === "id") last = val;
            else if (key === "event") ev.event = val;
            else if (key === "data") ev.data += val;
          }
          if (ev.event === "alert") onEvent(JSON.parse(ev.data));
        }
      }
    } catch (e) { /* network blip: reconnect below */ }
    setStatus(false);
    await new Promise((r) => setTimeout(r, 2000));
  }
}
function inboxPage() {
  $("#main").append(el("section", {},
    el("h1", {}, t("inbox"), " ", el("span", { class: "count", id: "inbox-count" }, ""),
      el("span", { class: "feed", id: "feed" }, t("offline_feed"))),
    el("div", { id: "inbox-list" })));
  loadInbox().catch((e) => flash(e.message));
  follow(async (change) => {
    if (change.change === "open") {
      inboxFresh.add(change.alert.id);
      flash(`${t("new_alert")}: ${change.alert.patient} · ${change.alert.rule}`, "info");
    }
    await loadInbox();
  }, (up) => {
    const f = $("#feed");
    f.textContent = up ? `● ${t("live")}` : t("offline_feed");
    f.className = up ? "feed up" : "feed";
  });
}

// ---------- patients ----------
async function patientsPage() {
  const main = $("#main");
  const [patients, sites] = await Promise.all([api("/patients"), api("/sites")]);
  const rows = patients.map((p) => el("tr", {},
    el("td", {}, el("a", { href: `/ui/patients/${encodeURIComponent(p.id)}` }, p.id)),
    el("td", {}, p.site || ""), el("td", {}, p.profile.map(t).join(", ")),
    el("td", {}, p.age_group || ""),
    el("td", {}, p.live_alerts ? el("span", { class: `badge sev-${p.worst_severity}` },
      p.live_alerts) : "0")));
  main.append(el("h1", {}, t("patients")), el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, ["patient", "site", "profile", "age_group", "live_alerts"]
      .map((k) => el("th", {}, t(k))))), el("tbody", {}, rows)));
  const form = el("form", { class: "card", id: "add-patient" }, el("h2", {}, t("add_patient")),
    el("label", {}, t("pseudonym"), el("input", { name: "id", required: true,
      pattern: "[A-Za-z0-9][A-Za-z0-9_.:\\-]{0,127}" })),
    el("label", {}, t("site"), el("select", { name: "site" },
      sites.map((s) => el("option", { value: s.id }, s.name)))),
    el("fieldset", {}, el("legend", {}, t("profile")),
      ["heart_failure", "diabetes"].map((p) => el("label", { class: "check" },
        el("input", { type: "checkbox", name: "profile", value: p }), t(p)))),
    el("label", {}, t("age_group"), el("select", { name: "age_group" },
      el("option", { value: "" }, "—"),
      ["18-64", "65-69", "70-79", "80-89", "90+"].map((g) => el("option", { value: g }, g)))),
    el("button", { class: "primary" }, t("save")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    try {
      await api("/patients", { method: "POST", json: { id: f.get("id"), site: f.get("site"),
        profile: f.getAll("profile"), age_group: f.get("age_group") || null } });
      location.reload();
    } catch (e) { flash(e.message); }
  });
  main.append(form);
}

// ---------- patient trend page (SVG) ----------
const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids.flat()) if (k) e.append(k instanceof Node ? k : document.createTextNode(k));
  return e;
}
const CH = { w: 900, h: 190, l: 48, r: 12, tp: 10, b: 24 };
// The time axis speaks the local days of the trend's ``day_zone`` (IANA, e.g. Europe/Paris),
// the days of its daily summaries, whatever the browser's own zone: ticks at local midnights.
function dayZone(zone) {
  try { new Intl.DateTimeFormat("en-GB", { timeZone: zone }); return zone; } catch { return "UTC"; }
}
function wallParts(ms, zone) { // the wall clock of an instant in the zone, as numbers
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone: zone, hourCycle: "h23",
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit" }).formatToParts(ms);
  const n = Object.fromEntries(parts.filter((q) => q.type !== "literal")
    .map((q) => [q.type, Number(q.value)]));
  return { y: n.year, m: n.month, d: n.day, wall: Date.UTC(n.year, n.month - 1, n.day,
    n.hour, n.minute, n.second) };
}
function localMidnight(y, m, d, zone) { // the instant the local day starts, DST-proof: the
  const wall = Date.UTC(y, m - 1, d); // offset is taken at the guess, then at the result;
  let ms = wall - (wallParts(wall, zone).wall - wall); // where 00:00 is skipped (clocks
  ms = wall - (wallParts(ms, zone).wall - ms); //       jump to 01:00) that day starts after
  const early = wall - wallParts(ms, zone).wall; //     the jump
  return early > 0 ? ms + early : ms;
}
function dayTicks(t0, t1, zone, step) { // local midnights in [t0, t1), every ``step`` days
  const { y, m, d } = wallParts(t0, zone);
  const ticks = [];
  for (let k = 0; ; k += step) {
    const day = new Date(Date.UTC(y, m - 1, d + k)); // calendar arithmetic, no zone
    const ms = localMidnight(day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), zone);
    if (ms >= t1) return ticks;
    if (ms >= t0) ticks.push(new Date(ms).toISOString());
  }
}
function chart(title, axis, opts) {
  // opts: { lines: [{pts, color, label}], bands: [{pts:[{t,low,high}], color}],
  //         hband: [lo, hi, color], alerts, fixed: [ymin, ymax] }
  const x = (iso) => CH.l + (new Date(iso) - axis.t0) / (axis.t1 - axis.t0) * (CH.w - CH.l - CH.r);
  const values = [];
  for (const ln of opts.lines || []) for (const p of ln.pts) values.push(p.min, p.max);
  for (const b of opts.bands || []) for (const p of b.pts) values.push(p.low, p.high);
  if (opts.hband) values.push(opts.hband[0], opts.hband[1]);
  let [lo, hi] = opts.fixed || [Math.min(...values), Math.max(...values)];
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  const pad = (hi - lo) * 0.08 || 1; lo -= pad; hi += pad;
  const y = (v) => CH.tp + (hi - v) / (hi - lo) * (CH.h - CH.tp - CH.b);
  const g = svg("svg", { viewBox: `0 0 ${CH.w} ${CH.h}`, class: "chart", role: "img",
    "aria-label": title });
  if (opts.hband) {
    const [a, b, c] = opts.hband;
    g.append(svg("rect", { x: CH.l, y: y(b), width: CH.w - CH.l - CH.r, height: y(a) - y(b),
      fill: c, class: "hband" }));
  }
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    g.append(svg("line", { x1: CH.l, x2: CH.w - CH.r, y1: y(v), y2: y(v), class: "grid" }),
      svg("text", { x: CH.l - 4, y: y(v) + 4, class: "tick", "text-anchor": "end" },
        v.toFixed(hi - lo < 10 ? 1 : 0)));
  }
  for (const tick of axis.ticks) {
    g.append(svg("line", { x1: x(tick), x2: x(tick), y1: CH.tp, y2: CH.h - CH.b, class: "grid" }),
      svg("text", { x: x(tick), y: CH.h - 6, class: "tick day", "text-anchor": "middle",
        "data-t": tick }, new Date(tick).toLocaleDateString(LANG === "fr" ? "fr-FR" : "en-GB",
        { day: "2-digit", month: "2-digit", timeZone: axis.zone })));
  }
  for (const b of opts.bands || []) {
    if (!b.pts.length) continue;
    const up = b.pts.map((p) => `${x(p.t)},${y(p.high)}`);
    const down = b.pts.slice().reverse().map((p) => `${x(p.t)},${y(p.low)}`);
    g.append(svg("polygon", { points: up.concat(down).join(" "), fill: b.color,
      class: "band" }));
  }
  for (const a of opts.alerts || []) {
    g.append(svg("line", { x1: x(a.time), x2: x(a.time), y1: CH.tp, y2: CH.h - CH.b,
      stroke: SEV_COLOR[a.severity] || "#555", class: "alert-mark" },
    svg("title", {}, `${fmtTime(a.time, axis.zone)} ${a.rule}: ${alertText(a)}`)));
  }
  for (const ln of opts.lines || []) {
    if (ln.pts.some((p) => p.n > 1)) {
      const up = ln.pts.map((p) => `${x(p.t)},${y(p.max)}`);
      const down = ln.pts.slice().reverse().map((p) => `${x(p.t)},${y(p.min)}`);
      g.append(svg("polygon", { points: up.concat(down).join(" "), fill: ln.color,
        class: "minmax" }));
    }
    g.append(svg("polyline", { points: ln.pts.map((p) => `${x(p.t)},${y(p.mean)}`).join(" "),
      stroke: ln.color, class: "line" }));
    if (ln.pts.length < 120) {
      for (const p of ln.pts) g.append(svg("circle", { cx: x(p.t), cy: y(p.mean), r: 2.5,
        fill: ln.color }));
    }
  }
  const legend = el("div", { class: "legend" },
    (opts.lines || []).map((l) => el("span", {}, el("i", { style: `background:${l.color}` }),
      l.label)),
    (opts.bands || []).map((b) => el("span", {}, el("i", { class: "soft",
      style: `background:${b.color}` }), b.label)),
    opts.hband ? el("span", {}, el("i", { class: "soft", style: `background:${opts.hband[2]}` }),
      opts.hband[3]) : null);
  const empty = !(opts.lines || []).some((l) => l.pts.length);
  return el("figure", { class: "card chart-card", id: opts.id },
    el("figcaption", {}, title), empty ? el("p", { class: "empty" }, t("no_data")) : g, legend);
}
function tirChart(days) {
  const wrap = el("div", { class: "tir", id: "tir" });
  for (const d of days) {
    const n = d.n || 1;
    wrap.append(el("div", { class: "tir-day", title: `${d.day}: ${Math.round(d.in_range / n * 100)}%` },
      el("div", { class: "above", style: `height:${d.above / n * 100}%` }),
      el("div", { class: "in", style: `height:${d.in_range / n * 100}%` }),
      el("div", { class: "below", style: `height:${d.below / n * 100}%` })));
  }
  return el("figure", { class: "card" }, el("figcaption", {}, t("tir")), days.length ? wrap
    : el("p", { class: "empty" }, t("no_data")),
  el("div", { class: "legend" }, el("span", {}, el("i", { class: "below" }), t("below")),
    el("span", {}, el("i", { class: "in" }), t("in_range")),
    el("span", {}, el("i", { class: "above" }), t("above"))));
}
function alertLane(alerts, axis) {
  const x = (iso) => (new Date(iso) - axis.t0) / (axis.t1 - axis.t0) * 100;
  return el("figure", { class: "card lane", id: "alert-lane" }, el("figcaption", {}, t("alerts_axis")),
    el("div", { class: "lane-track" }, alerts.map((a) => el("span", {
      class: `pin sev-${a.severity}`, style: `left:calc(${CH.l / CH.w * 100}% + ${x(a.time)} * ` +
        `${(CH.w - CH.l - CH.r) / CH.w} * 1%)`,
      title: `${fmtTime(a.time, axis.zone)} ${a.rule}: ${alertText(a)}`,
    }, "▲"))));
}
async function patientPage() {
  const main = $("#main");
  const pid = ARG;
  const days = Number(new URLSearchParams(location.search).get("days") || 14);
  const [p, data] = await Promise.all([api(`/patients/${encodeURIComponent(pid)}`),
    api(`/patients/${encodeURIComponent(pid)}/trend?days=${days}`)]);
  const t0 = new Date(data.start).getTime(), t1 = new Date(data.end).getTime();
  const step = (t1 - t0) / 86400000 > 30 ? 7 : (t1 - t0) / 86400000 > 10 ? 2 : 1;
  const zone = dayZone(data.day_zone);
  const axis = { t0, t1, zone, ticks: dayTicks(t0, t1, zone, step) };
  const s = data.series;
  const note = data.interval_s ? `${t("downsampled")} ${fmtAge(data.interval_s)}` : t("raw");
  main.append(el("section", { class: "patient-head" },
    el("h1", {}, `${t("patient")} ${pid}`),
    el("p", {}, [p.profile.map(t).join(" · "), p.age_group, p.site].filter(Boolean).join(" — ")),
    el("div", { class: "range" }, el("span", {}, `${t("period")}:`),
      [7, 14, 28, 90].map((d) => el("a", { class: `button ${d === days ? "primary" : "ghost"}`,
        href: `?days=${d}`, id: `days-${d}` }, `${d} ${t("days")}`)),
      el("span", { class: "note" }, note))));
  const A = data.alerts;
  main.append(alertLane(A, axis));
  main.append(chart(t("weight"), axis, { id: "chart-weight",
    lines: [{ pts: s.weight || [], color: "#37474f", label: t("weight") }],
    bands: [{ pts: data.weight_baseline, color: "#90caf9", label: t("baseline") }], alerts: A }));
  main.append(chart(t("glucose"), axis, { id: "chart-glucose",
    lines: [{ pts: s.glucose || [], color: "#6a1b9a", label: t("glucose") }],
    hband: [data.glucose_range[0], data.glucose_range[1], "#c8e6c9", t("target_range")],
    alerts: A }));
  main.append(tirChart(data.time_in_range));
  main.append(chart(t("bp"), axis, { id: "chart-bp",
    lines: [{ pts: s.bp_systolic || [], color: "#c62828", label: t("systolic") },
      { pts: s.bp_diastolic || [], color: "#1565c0", label: t("diastolic") }], alerts: A }));
  main.append(chart(t("spo2"), axis, { id: "chart-spo2",
    lines: [{ pts: s.spo2 || [], color: "#00838f", label: t("spo2") }], alerts: A }));
  if ((s.heart_rate || []).length) {
    main.append(chart(t("heart_rate"), axis, { id: "chart-hr",
      lines: [{ pts: s.heart_rate, color: "#ad1457", label: t("heart_rate") }], alerts: A }));
  }
}

// ---------- gateways & devices ----------
async function gatewaysPage() {
  const main = $("#main");
  const [gws, devices, patients, sites] = await Promise.all([api("/gateways"), api("/devices"),
    api("/patients"), api("/sites")]);
  main.append(el("h1", {}, t("gateways")));
  main.append(el("table", { class: "grid", id: "gateways" }, el("thead", {}, el("tr", {},
    ["gateway", "site", "status", "last_seen", "outbox"].map((k) => el("th", {}, t(k))))),
  el("tbody", {}, gws.map((g) => el("tr", {}, el("td", {}, g.id), el("td", {}, g.site || ""),
    el("td", {}, el("span", { class: `dot ${g.status}` }), t(g.status)),
    el("td", {}, g.last_seen ? fmtTime(g.last_seen) : "—"),
    el("td", {}, g.outbox_depth ?? "—"))))));
  const pending = await api("/gateways/pending").catch(() => []);  // global admins only
  if (pending.length) {
    main.append(el("h2", {}, t("pending_gateways")));
    main.append(el("table", { class: "grid", id: "pending-gateways" }, el("thead", {},
      el("tr", {}, ["gateway", "claimed_site", "messages", "last_seen", "site", "actions"]
        .map((k) => el("th", {}, t(k))))),
    el("tbody", {}, pending.map((p) => {
      const at = el("select", {}, sites.map((s) => el("option", { value: s.id,
        selected: s.id === p.claimed_site }, s.name)));
      return el("tr", { id: `pending-${p.id}` }, el("td", {}, p.id),
        el("td", {}, p.claimed_site || "—"), el("td", {}, String(p.messages)),
        el("td", {}, fmtTime(p.last_seen)), el("td", {}, at),
        el("td", {}, el("button", { class: "primary", onclick: async () => {
          try {
            await api("/gateways", { method: "POST", json: { id: p.id, site: at.value } });
            location.reload();
          } catch (e) { flash(e.message); }
        } }, t("register"))));
    }))));
  }
  main.append(el("h2", {}, t("devices")));
  const gwOptions = (site, sel) => [el("option", { value: "" }, t("none_gateway")),
    gws.filter((g) => g.site === site).map((g) => el("option", { value: g.id,
      selected: g.id === sel }, g.id))];
  const ptOptions = (site, sel) => [el("option", { value: "" }, t("nobody")),
    patients.filter((p) => p.site === site).map((p) => el("option", { value: p.id,
      selected: p.id === sel }, p.id))];
  main.append(el("table", { class: "grid", id: "devices" }, el("thead", {}, el("tr", {},
    ["device", "family", "site", "gateway", "assigned_to", "shared", "last_seen", "actions"]
      .map((k) => el("th", {}, t(k))))),
  el("tbody", {}, devices.map((d) => {
    const gw = el("select", {}, gwOptions(d.site, d.gateway));
    const pt = el("select", {}, ptOptions(d.site, d.patient));
    const sh = el("input", { type: "checkbox", checked: d.shared });
    return el("tr", { id: `device-${d.id}` }, el("td", {}, d.id), el("td", {}, d.family || ""),
      el("td", {}, d.site), el("td", {}, gw), el("td", {}, pt), el("td", {}, sh),
      el("td", {}, d.last_seen ? fmtTime(d.last_seen) : "—"),
      el("td", {}, el("button", { class: "primary", onclick: async () => {
        try {
          await api(`/devices/${encodeURIComponent(d.id)}`, { method: "PUT", json: {
            gateway: gw.value || null, patient: pt.value || null, shared: sh.checked } });
          flash(`${d.id} ✓`, "info");
        } catch (e) { flash(e.message); }
      } }, t("save"))));
  }))));
  const site = el("select", { name: "site" }, sites.map((s) => el("option", { value: s.id }, s.name)));
  const form = el("form", { class: "card", id: "add-device" }, el("h2", {}, t("add_device")),
    el("label", {}, t("device"), el("input", { name: "id", required: true })),
    el("label", {}, t("family"), el("input", { name: "family" })),
    el("label", {}, t("site"), site),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "shared" }), t("shared")),
    el("button", { class: "primary" }, t("save")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    try {
      await api("/devices", { method: "POST", json: { id: f.get("id"), site: f.get("site"),
        family: f.get("family") || null, shared: f.get("shared") === "on" } });
      location.reload();
    } catch (e) { flash(e.message); }
  });
  const gform = el("form", { class: "card", id: "add-gateway" }, el("h2", {}, t("add_gateway")),
    el("label", {}, t("gateway"), el("input", { name: "id", required: true })),
    el("label", {}, t("site"), el("select", { name: "site" },
      sites.map((s) => el("option", { value: s.id }, s.name)))),
    el("button", { class: "primary" }, t("save")));
  gform.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(gform);
    try {
      await api("/gateways", { method: "POST", json: { id: f.get("id"), site: f.get("site") } });
      location.reload();
    } catch (e) { flash(e.message); }
  });
  main.append(el("div", { class: "forms" }, form, gform));
}

// ---------- attribution queue ----------
async function attributionPage() {
  const main = $("#main");
  const [rows, patients] = await Promise.all([api("/attribution"), api("/patients")]);
  main.append(el("h1", {}, t("attribution")));
  if (!rows.length) { main.append(el("p", { class: "empty" }, t("nothing_to_attribute"))); return; }
  main.append(el("table", { class: "grid", id: "queue" }, el("thead", {}, el("tr", {},
    ["time", "kind", "value", "device", "site", "patient", "actions"].map((k) =>
      el("th", {}, t(k))))),
  el("tbody", {}, rows.map((r) => {
    const pick = el("select", { "aria-label": t("choose_patient") },
      el("option", { value: "" }, t("choose_patient")),
      patients.filter((p) => p.site === r.site).map((p) => el("option", { value: p.id }, p.id)));
    const row = el("tr", { id: `reading-${r.id}` }, el("td", {}, fmtTime(r.time)),
      el("td", {}, r.kind), el("td", {}, r.value === null ? "—" : `${r.value} ${r.unit || ""}`),
      el("td", {}, r.device), el("td", {}, r.site), el("td", {}, pick),
      el("td", {}, el("button", { class: "primary", onclick: async () => {
        if (!pick.value) return;
        try {
          await api(`/attribution/${encodeURIComponent(r.id)}`, { method: "POST",
            json: { patient: pick.value } });
          row.replaceChildren(el("td", { colspan: 7, class: "done" },
            `${t("assigned")} ${pick.value} ✓`));
        } catch (e) { flash(e.message); }
      } }, t("assign"))));
    return row;
  }))));
}

// ---------- boot ----------
const PAGES = { inbox: inboxPage, patients: patientsPage, patient: patientPage,
  gateways: gatewaysPage, attribution: attributionPage };
if (PAGE === "login") {
  loginPage();
} else if (!token()) {
  toLogin(false);
} else {
  header();
  scheduleRenewal();
  // a tablet waking up: timers were asleep, renew now if the token is (nearly) expired
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") scheduleRenewal();
  });
  Promise.resolve(PAGES[PAGE]()).catch((e) => { if (e.message !== "401") flash(e.message); });
}
