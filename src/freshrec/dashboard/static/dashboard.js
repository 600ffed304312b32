// freshrec dashboard: reads the server's live pulse (server-sent events) and its REST API. No dependencies.
"use strict";

const KEY_STORE = "freshrec-dashboard-key";
const SVG = "http://www.w3.org/2000/svg";
const titles = new Map(); // item id -> title (null: none), filled from /v1/items as items are shown
const state = { key: sessionStorage.getItem(KEY_STORE), pulse: null, user: null, tab: "hybrid", applied: null, loading: false, again: false };

// -- small helpers -------------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}
const $ = (id) => document.getElementById(id);
const count = (n) => (n === null || n === undefined ? "–" : n >= 1e6 ? (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + "M" : n >= 1e4 ? (n / 1e3).toFixed(n >= 1e5 ? 0 : 1) + "k" : Math.round(n).toLocaleString("en-US"));
const pct = (x, digits = 1) => (x === null || x === undefined ? "–" : (100 * x).toFixed(digits) + "%");
const signed = (x) => (x === null || x === undefined ? "–" : (x >= 0 ? "+" : "") + (100 * x).toFixed(1) + "%");
const pvalue = (p) => (p === null || p === undefined ? "–" : p < 0.001 ? "p < 0.001" : "p = " + p.toFixed(3));
const bytes = (b) => (b === null || b === undefined ? "–" : b >= 1 << 30 ? (b / (1 << 30)).toFixed(1) + " GB" : (b / (1 << 20)).toFixed(b >= 100 << 20 ? 0 : 1) + " MB");
function age(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return "now";
  if (seconds < 90) return Math.round(seconds) + " s";
  if (seconds < 5400) return Math.round(seconds / 60) + " min";
  if (seconds < 172800) return (seconds / 3600).toFixed(1) + " h";
  return Math.round(seconds / 86400) + " d";
}
function replace(node, ...children) { node.replaceChildren(...children.flat()); }

// -- the API, with a key when the server asks for one ----------------------------------------------------
function headers() { return state.key ? { Authorization: "Bearer " + state.key } : {}; }
function askKey() {
  return new Promise((resolve) => {
    const dialog = $("key-dialog");
    if (dialog.open) return resolve();
    dialog.addEventListener("close", () => {
      state.key = $("key-input").value.trim() || null;
      if (state.key) sessionStorage.setItem(KEY_STORE, state.key);
      resolve();
    }, { once: true });
    dialog.showModal();
  });
}
async function api(path) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const response = await fetch(path, { headers: headers() });
    if (response.status === 401 || response.status === 403) { await askKey(); continue; }
    if (!response.ok) throw new Error(path + ": " + response.status);
    return response.json();
  }
  throw new Error("no key with the read role");
}

// -- the live stream ----------------------------------------------------------------------------------
function setLive(mode, text) { $("live").dataset.state = mode; $("live-text").textContent = text; }
async function stream() {
  for (;;) {
    try {
      const response = await fetch("/dashboard/stream", { headers: headers() });
      if (response.status === 401 || response.status === 403) { await askKey(); continue; }
      if (!response.ok || !response.body) throw new Error("stream " + response.status);
      setLive("live", "Live");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = message.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (data) render(JSON.parse(data));
        }
      }
    } catch (error) {
      setLive("down", "Reconnecting…");
      await new Promise((r) => setTimeout(r, 1500));
    }
  }
}

// -- rendering the pulse --------------------------------------------------------------------------------
function render(pulse) {
  state.pulse = pulse;
  const ingest = pulse.ingest;
  $("mode").textContent = pulse.mode;
  $("events-rate").replaceChildren(document.createTextNode(ingest.events_per_second >= 100 ? count(ingest.events_per_second) : ingest.events_per_second.toFixed(1)), el("small", { text: "ev/s" }));
  $("applied").textContent = count(ingest.applied_events);
  $("applied").dataset.value = ingest.applied_events;
  sparkline($("spark"), ingest.history);
  const visible = ingest.write_to_visible_ms;
  if (visible.p50 === null) $("freshness").replaceChildren(document.createTextNode("–"));
  else $("freshness").replaceChildren(document.createTextNode("≤ " + (visible.p50 < 1 ? visible.p50.toFixed(1) : Math.round(visible.p50))), el("small", { text: "ms p50" }));
  $("last-event").textContent = ingest.last_event_applied_seconds_ago === null ? "no events since the page opened" : "last event applied " + age(ingest.last_event_applied_seconds_ago) + (ingest.last_event_applied_seconds_ago >= 1 ? " ago" : "") + (visible.p99 === null ? "" : " · p99 ≤ " + Math.round(visible.p99) + " ms");
  const st = pulse.state;
  $("users").replaceChildren(document.createTextNode(count(st.users)), el("small", { text: "users" }));
  $("state-foot").textContent = count(st.items) + " items · " + bytes(st.rss_bytes) + " memory" + (st.log_bytes === null ? "" : " · log " + bytes(st.log_bytes));
  const cf = pulse.cf;
  if (!cf.enabled) { $("cf-age").textContent = "off"; $("cf-foot").textContent = "collaborative filtering disabled"; }
  else if (cf.version === null) { $("cf-age").textContent = cf.training ? "training" : "–"; $("cf-foot").textContent = "not trained yet"; }
  else { $("cf-age").replaceChildren(document.createTextNode(age(cf.age_seconds)), el("small", { text: "old" })); $("cf-foot").textContent = "v" + cf.version + " · " + count(cf.events) + " events · " + count(cf.users) + " users" + (cf.training ? " · retraining" : ""); }
  renderTrending(pulse.trending);
  renderExperiments(pulse.experiments);
  if (state.user && state.applied !== null && ingest.applied_events !== state.applied) lookup(state.user).catch(() => {});
  state.applied = ingest.applied_events;
}

function sparkline(svg, values) {
  const w = 300, h = 48, n = Math.max(values.length, 2), top = Math.max(1, ...values);
  const points = values.map((v, i) => [(i / (n - 1)) * w, h - 3 - (v / top) * (h - 8)]);
  const line = points.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ");
  const defs = el("svg:defs", {}, el("svg:linearGradient", { id: "spark-fill", x1: 0, y1: 0, x2: 0, y2: 1 }, el("svg:stop", { offset: 0, "stop-color": "#10b981", "stop-opacity": 0.28 }), el("svg:stop", { offset: 1, "stop-color": "#10b981", "stop-opacity": 0 })));
  if (points.length < 2) return replace(svg, defs);
  const last = points[points.length - 1];
  replace(svg, defs, el("svg:path", { class: "area", d: line + ` L${last[0].toFixed(1)} ${h} L0 ${h} Z` }), el("svg:path", { class: "line", d: line }));
}

function renderTrending(groups) {
  const box = $("trending");
  if (!groups.length) return replace(box, el("p", { class: "empty", text: "Nothing is trending yet." }));
  const top = Math.max(...groups.flatMap((g) => g.items.map((i) => i.score)), 1e-9);
  replace(box, groups.map((g) => el("div", { class: "cat" },
    el("h3", {}, el("span", { text: g.category }), el("span", { class: "num", text: g.items.length })),
    el("ol", {}, g.items.map((item) => el("li", {},
      el("span", { class: "id", title: item.item_id, text: item.title || item.item_id }),
      el("span", { class: "num", text: item.score.toFixed(1) }),
      el("span", { class: "bar" }, el("span", { style: `width:${Math.max(4, (100 * item.score) / top).toFixed(1)}%` }))))))));
}

function renderExperiments(experiments) {
  const box = $("experiments");
  if (!experiments.length) return;
  replace(box, experiments.map((exp) => {
    const significant = exp.variants.some((v) => v.lift && v.lift.ctr.p_value !== null && v.lift.ctr.p_value < 0.05);
    return el("div", { class: "experiment", "data-experiment": exp.experiment_id },
      el("div", { class: "experiment-head" },
        el("strong", { text: exp.experiment_id }),
        el("span", { class: "badge" + (exp.active ? "" : " ended"), text: exp.active ? "running" : "ended" }),
        significant ? el("span", { class: "badge sig", text: "significant CTR lift" }) : null),
      ciChart(exp),
      el("div", { class: "table-wrap" }, el("table", { class: "variant-table" },
        el("thead", {}, el("tr", {}, [["variant"], ["users", "opt"], ["exposures"], ["CTR"], ["conversion", "opt"], ["rev / exp", "opt"], ["CTR lift"], ["p-value"]].map(([t, c]) => el("th", { class: c, text: t })))),
        el("tbody", {}, exp.variants.map((v) => el("tr", { "data-variant": v.name },
          el("td", {}, el("strong", { text: v.name }), el("div", { class: "num", text: v.strategy || "" })),
          el("td", { class: "opt", text: count(v.users) }), el("td", { text: count(v.exposures) }),
          el("td", { text: pct(v.ctr.value) }), el("td", { class: "opt", text: pct(v.conversion_rate.value) }),
          el("td", { class: "opt", text: v.revenue_per_exposure.value.toFixed(2) }),
          el("td", { text: v.lift ? signed(v.lift.ctr.lift) : "baseline" }),
          el("td", { text: v.lift ? pvalue(v.lift.ctr.p_value).replace("p ", "") : "" })))))));
  }));
}

function ciChart(exp) {
  const room = $("experiments").clientWidth || 640;
  const rows = exp.variants, rowH = 34, width = Math.max(330, Math.min(640, room));
  const label = width < 480 ? 70 : 110, right = width < 480 ? 108 : 128;
  const height = rows.length * rowH + 18;
  const top = Math.max(0.01, ...rows.map((v) => v.ctr.high)) * 1.1;
  const plot = width - label - right;
  const x = (v) => label + (v / top) * plot;
  const svg = el("svg:svg", { class: "ci-chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "CTR per variant with 95% intervals" },
    el("svg:defs", {}, el("svg:linearGradient", { id: "ci-fill", x1: 0, y1: 0, x2: 1, y2: 0 }, el("svg:stop", { offset: 0, "stop-color": "#10b981" }), el("svg:stop", { offset: 1, "stop-color": "#0ea5e9" }))));
  rows.forEach((v, i) => {
    const y = i * rowH + 4, mid = y + 11;
    svg.append(
      el("svg:text", { x: 0, y: mid + 4, text: v.name }),
      el("svg:rect", { class: "track", x: label, y: y + 3, width: plot, height: 16, rx: 5 }),
      el("svg:rect", { class: "bar" + (i === 0 ? " base" : ""), x: label, y: y + 3, width: Math.max(2, x(v.ctr.value) - label), height: 16, rx: 5 }),
      el("svg:line", { class: "whisker", x1: x(v.ctr.low), x2: x(v.ctr.high), y1: mid, y2: mid }),
      el("svg:line", { class: "whisker", x1: x(v.ctr.low), x2: x(v.ctr.low), y1: mid - 6, y2: mid + 6 }),
      el("svg:line", { class: "whisker", x1: x(v.ctr.high), x2: x(v.ctr.high), y1: mid - 6, y2: mid + 6 }),
      el("svg:text", { x: label + plot + 10, y: mid + 4, text: pct(v.ctr.value, 2) }));
    if (v.lift) {
      const lift = v.lift.ctr;
      const cls = lift.p_value !== null && lift.p_value < 0.05 ? (lift.lift === null || lift.lift >= 0 ? "up" : "down") : "muted";
      svg.append(el("svg:text", { class: cls, x: label + plot + 62, y: mid + 4, text: lift.lift === null ? (lift.p_value !== null && lift.p_value < 0.05 ? "new ↑" : "–") : signed(lift.lift) }));
    }
  });
  const ticks = [0, top / 2, top].map((t) => el("svg:text", { class: "muted", x: x(t), y: height - 2, "text-anchor": "middle", text: pct(t, top < 0.1 ? 1 : 0) }));
  svg.append(...ticks);
  return svg;
}

// -- user lookup -------------------------------------------------------------------------------------------
async function lookup(user) {
  if (state.loading) { state.again = true; return; }
  state.loading = true;
  try {
    const strategies = state.pulse ? state.pulse.strategies : ["hybrid", "personalized", "session", "trending_for_you", "trending"];
    const path = "/v1/users/" + encodeURIComponent(user);
    const [profile, ...answers] = await Promise.all([
      api(path + "/profile?limit=8"),
      ...strategies.map((s) => api(path + "/recommendations?k=8&explain=true&strategy=" + s).catch(() => null)),
    ]);
    if (user !== state.user) return;
    const found = strategies.map((s, i) => [s, answers[i]]).filter(([, a]) => a);
    await learnTitles([...found.flatMap(([, a]) => a.items.map((i) => i.item_id)), ...profile.recent_items.map((e) => e.item_id)]);
    if (user !== state.user) return;
    renderUser(profile, found);
  } finally {
    state.loading = false;
    if (state.again) { state.again = false; if (state.user) lookup(state.user); }
  }
}

async function learnTitles(ids) {
  const missing = [...new Set(ids)].filter((id) => !titles.has(id)).slice(0, 40);
  if (!missing.length) return;
  const found = await api("/dashboard/titles?" + missing.map((id) => "id=" + encodeURIComponent(id)).join("&"));
  for (const id of missing) titles.set(id, found[id] || null);
}
const titleOf = (id) => titles.get(id) || id;

function renderUser(profile, answers) {
  const box = $("user");
  box.hidden = false;
  if (!answers.some(([s]) => s === state.tab) && answers.length) state.tab = answers[0][0];
  const cats = profile.top_categories.slice(0, 5);
  const topCat = Math.max(1e-9, ...cats.map((c) => c.affinity_score));
  const recent = profile.recent_categories.slice(0, 3);
  const topRecent = Math.max(1e-9, ...recent.map((c) => c.recent_score));
  const chosen = answers.find(([s]) => s === state.tab);
  replace(box,
    el("div", { class: "panel" },
      el("div", { class: "profile-name", text: profile.user_id }),
      el("div", { class: "profile-sub", text: profile.known ? "known user" + (profile.preferred_price_tier ? " · buys " + profile.preferred_price_tier : "") : "no history yet: cold start" }),
      el("h3", { text: "Lifetime affinity" }),
      el("div", { class: "affinity" }, cats.length ? cats.map((c) => el("div", { class: "row" }, el("span", { text: c.category }), el("span", { class: "bar" }, el("span", { style: `width:${((100 * c.affinity_score) / topCat).toFixed(1)}%` })), el("span", { class: "num", text: c.affinity_score.toFixed(1) }))) : el("p", { class: "empty", text: "No categories yet." })),
      el("h3", { text: "This hour" }),
      el("div", { class: "affinity" }, recent.length ? recent.map((c) => el("div", { class: "row recent" }, el("span", { text: c.category }), el("span", { class: "bar" }, el("span", { style: `width:${((100 * c.recent_score) / topRecent).toFixed(1)}%` })), el("span", { class: "num", text: c.recent_score.toFixed(1) }))) : el("p", { class: "empty", text: "Quiet in the last hour." }))),
    el("div", { class: "panel recs-panel" },
      el("h3", { text: "Recommendations now" }),
      el("div", { class: "tabs", role: "tablist" }, answers.map(([s]) => el("button", { class: "tab", role: "tab", "data-strategy": s, "aria-selected": s === state.tab ? "true" : "false", text: s, on: { click: () => { state.tab = s; lookup(state.user); } } }))),
      chosen ? el("ol", { class: "recs", "data-testid": "recs", "data-strategy": chosen[0] }, chosen[1].items.map((item, i) => el("li", { "data-item": item.item_id },
        el("span", { class: "rank", text: i + 1 }),
        el("div", {}, el("div", { class: "item", title: item.item_id, text: titleOf(item.item_id) }), el("div", { class: "reasons" }, reasons(item.reasons))),
        el("span", { class: "num", text: item.score.toFixed(2) })))) : el("p", { class: "empty", text: "No strategy answered." })),
    el("div", { class: "panel" },
      el("h3", { text: "Last events" }),
      profile.recent_items.length ? el("ol", { class: "events", "data-testid": "last-events" }, profile.recent_items.map((e) => el("li", {},
        el("span", { class: "type " + e.type, text: e.type.replace(/_/g, " ") }),
        el("span", { class: "item", title: e.item_id, text: titleOf(e.item_id) }),
        el("span", { class: "num", text: age(Date.now() / 1000 - e.timestamp) })))) : el("p", { class: "empty", text: "No events yet." })));
}

function reasons(found) {
  if (!found) return [];
  return Object.entries(found).slice(0, 4).map(([name, value]) => el("span", { class: "reason" + (name === "session_intent" ? " intent" : ""), text: name.replace(/_/g, " ") + ": " + (typeof value === "number" ? (Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2)) : typeof value === "object" ? JSON.stringify(value) : value) }));
}

// -- start ---------------------------------------------------------------------------------------------
$("lookup").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = $("user-id").value.trim();
  if (!user) return;
  state.user = user;
  history.replaceState(null, "", "#user=" + encodeURIComponent(user));
  lookup(user).catch((error) => replace($("user"), el("p", { class: "empty", text: String(error) })));
});
const fromHash = new URLSearchParams(location.hash.slice(1)).get("user");
if (fromHash) { $("user-id").value = fromHash; state.user = fromHash; lookup(fromHash).catch(() => {}); }
stream();
