/* trajgym dashboard: charts (plotly.js, served locally), table filters and live refresh from the JSON API.
   Every value from the store is put in the page with textContent (never innerHTML) and escaped for plotly. */
"use strict";
(function () {
  const body = document.body;
  const $ = (id) => document.getElementById(id);
  const COLORS = { success: "#2e8b57", failure: "#c0392b", truncated: "#e67e22", policy_error: "#8e44ad",
                   env_error: "#c0392b", infra_error: "#7f8c8d", pending: "#bdc3c7", claimed: "#3498db" };

  function showError(message) {
    const box = $("error");
    if (box) { box.textContent = message; box.hidden = false; }
  }

  async function api(url) {
    const resp = await fetch(url, { headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error(url + ": HTTP " + resp.status);
    return resp.json();
  }

  const fmt = {
    pct: (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%"),
    int: (v) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US")),
    num: (v, d) => (v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US",
      { minimumFractionDigits: d === undefined ? 3 : d, maximumFractionDigits: d === undefined ? 3 : d })),
    dur: (v) => (v === null || v === undefined ? "—" : v < 60 ? v.toFixed(1) + " s"
      : v < 3600 ? (v / 60).toFixed(1) + " min" : (v / 3600).toFixed(1) + " h"),
    when: (v) => (v ? v.replace("T", " ").slice(0, 19) : "—"),
  };

  // plotly reads a few HTML tags in labels: escape store text so it shows as text.
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

  function el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function plot(id, traces, layout) {
    const div = $(id);
    if (!div) return;
    if (!window.Plotly) { div.textContent = "charts unavailable: plotly.min.js did not load"; return; }
    const hasData = traces.some((t) => (t.y || t.r || []).length > 0);
    const base = {
      title: { text: esc(div.dataset.title || "") }, height: 340, margin: { t: 40, l: 50, r: 50, b: 90 },
      font: { size: 12 }, legend: { orientation: "h", y: -0.25 },
      annotations: hasData ? [] : [{ text: "no data", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
    };
    window.Plotly.react(div, traces, Object.assign(base, layout || {}), { displaylogo: false, responsive: true });
    div.dataset.rendered = "1";
  }

  // ----- runs overview ---------------------------------------------------------------
  async function runsPage() {
    if (!$("chart-runs")) return;
    const data = await api(body.dataset.api);
    const runs = data.runs.slice().reverse();
    plot("chart-runs", [{ type: "bar", name: "success rate", x: runs.map((r) => esc(r.name)),
      y: runs.map((r) => r.success_rate), text: runs.map((r) => fmt.pct(r.success_rate)),
      hovertext: runs.map((r) => esc(r.model || "(" + r.policy + ")") + " · " + esc(r.env)) }],
      { yaxis: { range: [0, 1], tickformat: ".0%" } });
  }

  // ----- model comparison ------------------------------------------------------------
  async function comparePage() {
    if (!$("chart-success")) return;
    const data = await api(body.dataset.api);
    const score = (m, e) => data.scores.find((s) => s.model === m && s.env === e) || {};
    const bars = (key) => data.models.map((m) => ({ type: "bar", name: esc(m), x: data.envs.map(esc),
      y: data.envs.map((e) => (score(m, e)[key] === undefined ? null : score(m, e)[key])) }));
    plot("chart-success", bars("success_rate"), { barmode: "group", yaxis: { range: [0, 1], tickformat: ".0%" } });
    plot("chart-reward", bars("mean_reward"), { barmode: "group" });
    const theta = data.envs.map(esc);
    plot("chart-radar", data.models.map((m) => {
      const r = data.envs.map((e) => score(m, e).success_rate || 0);
      return { type: "scatterpolar", fill: "toself", name: esc(m), r: r.concat(r.slice(0, 1)),
               theta: theta.concat(theta.slice(0, 1)) };
    }), { polar: { radialaxis: { range: [0, 1], tickformat: ".0%" } } });
    const select = $("curve-env");
    const envs = [...new Set(data.curves.map((c) => c.env))].sort((a, b) => (a[0] === "(" ? -1 : b[0] === "(" ? 1 : a.localeCompare(b)));
    envs.forEach((e) => select.appendChild(el("option", e, { value: e })));
    const draw = () => {
      const traces = [];
      data.curves.filter((c) => c.env === select.value).forEach((c) => {
        const x = c.progress.map((_, t) => t);
        traces.push({ type: "scatter", mode: "lines+markers", name: esc(c.model) + " progress", x: x, y: c.progress });
        traces.push({ type: "scatter", mode: "lines", line: { dash: "dot" }, name: esc(c.model) + " success", x: x, y: c.success });
      });
      plot("chart-progress", traces, { xaxis: { title: { text: "turn" } }, yaxis: { range: [0, 1], tickformat: ".0%" } });
    };
    select.addEventListener("change", draw);
    draw();
  }

  // ----- run detail ------------------------------------------------------------------
  function badge(outcome, n) {
    return el("span", n === undefined ? outcome : outcome + " " + n, { class: "badge o-" + outcome });
  }

  function renderTasks(table) {
    const tbody = $("tasks").tBodies[0];
    tbody.replaceChildren();
    for (const t of table.tasks) {
      const tr = el("tr");
      const first = el("td");
      first.appendChild(el("a", t.task_id, { href: "/dashboard/episodes/" + t.first_episode }));
      tr.appendChild(first);
      tr.appendChild(el("td", t.split));
      tr.appendChild(el("td", t.done + " / " + t.episodes, { class: "n" }));
      tr.appendChild(el("td", t.successes, { class: "n" }));
      tr.appendChild(el("td", fmt.pct(t.success_rate), { class: "n" }));
      tr.appendChild(el("td", fmt.num(t.mean_reward), { class: "n" }));
      tr.appendChild(el("td", fmt.num(t.mean_turns, 1), { class: "n" }));
      tr.appendChild(el("td", fmt.int(t.tokens), { class: "n" }));
      const outs = el("td");
      for (const [o, n] of Object.entries(t.outcomes)) { outs.appendChild(badge(o, n)); outs.appendChild(document.createTextNode(" ")); }
      tr.appendChild(outs);
      tbody.appendChild(tr);
    }
    $("tasks-total").textContent = fmt.int(table.page.total);
    const pager = el("nav", null, { class: "pager", "data-pages": table.page.pages });
    pager.appendChild(el("span", "page " + table.page.page + " of " + table.page.pages + " · " + fmt.int(table.page.total) + " rows", { class: "pager-info" }));
    const link = (page, text, cls) => {
      const params = new URLSearchParams(filterParams());
      params.set("page", page);
      pager.appendChild(el("a", text, { href: "?" + params, class: cls, "data-page": page }));
    };
    if (table.page.page > 1) link(table.page.page - 1, "← prev", "pager-prev");
    if (table.page.page < table.page.pages) link(table.page.page + 1, "next →", "pager-next");
    $("tasks-pager").replaceChildren(pager);
  }

  function filterParams() {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData($("task-filters"))) if (v !== "") params.set(k, v);
    return params;
  }

  let tasksRequest = 0;  // only the latest request may fill the table (responses can arrive out of order)

  async function loadTasks(page) {
    const form = $("task-filters");
    const params = filterParams();
    params.set("page", page || 1);
    form.elements.page.value = params.get("page");
    const mine = ++tasksRequest;
    const table = await api(form.dataset.api + "?" + params);
    if (mine !== tasksRequest) return;
    renderTasks(table);
    history.replaceState(null, "", "?" + params);
    body.dataset.tasksQuery = params.toString();
    body.dataset.tasksLoaded = String(Number(body.dataset.tasksLoaded || 0) + 1);
  }

  async function runPage() {
    const form = $("task-filters");
    form.addEventListener("submit", (ev) => { ev.preventDefault(); loadTasks(1).catch((e) => showError(e.message)); });
    form.querySelectorAll("select").forEach((s) => s.addEventListener("change", () => loadTasks(1).catch((e) => showError(e.message))));
    $("tasks-pager").addEventListener("click", (ev) => {
      const a = ev.target.closest("a[data-page], a.pager-prev, a.pager-next");
      if (!a) return;
      ev.preventDefault();
      const page = a.dataset.page || new URL(a.href).searchParams.get("page");
      loadTasks(page).catch((e) => showError(e.message));
    });
    const data = await api(body.dataset.api);
    const h = data.reward_histogram;
    plot("chart-reward-hist", [{ type: "bar", name: "episodes", x: h.map((b) => (b.lo + b.hi) / 2), y: h.map((b) => b.count),
      width: h.map((b) => Math.max(b.hi - b.lo, 0.02) * 0.95) }], { xaxis: { title: { text: "reward" } } });
    const outs = Object.keys(data.outcome_counts);
    plot("chart-outcomes", [{ type: "bar", name: "episodes", x: outs.map(esc), y: outs.map((o) => data.outcome_counts[o]),
      marker: { color: outs.map((o) => COLORS[o] || "#555") } }]);
    const turns = Object.keys(data.turns_histogram).map(Number).sort((a, b) => a - b);
    plot("chart-turns", [{ type: "bar", name: "episodes", x: turns, y: turns.map((t) => data.turns_histogram[t]) }],
      { xaxis: { title: { text: "turns" } } });
  }

  // ----- trajectory viewer -----------------------------------------------------------
  async function episodePage() {
    if (!$("chart-episode")) return;
    const data = await api(body.dataset.api);
    const steps = data.steps.filter((s) => s.action !== null);
    plot("chart-episode", [
      { type: "bar", name: "reward", x: steps.map((s) => s.step), y: steps.map((s) => s.reward || 0) },
      { type: "scatter", mode: "lines+markers", name: "prompt tokens", yaxis: "y2", x: steps.map((s) => s.step),
        y: steps.map((s) => s.prompt_tokens) },
    ], { xaxis: { title: { text: "turn" }, dtick: 1 }, yaxis2: { overlaying: "y", side: "right", title: { text: "tokens" } } });
  }

  // ----- live view -------------------------------------------------------------------
  function renderLive(data) {
    const r = data.run;
    $("live-state").textContent = r.state;
    $("live-state").className = "state state-" + r.state;
    $("live-updated").textContent = fmt.when(data.now);
    $("live-progress").max = r.total_episodes;
    $("live-progress").value = r.done;
    $("live-done").textContent = fmt.int(r.done);
    $("live-total").textContent = fmt.int(r.total_episodes);
    $("live-pending").textContent = fmt.int(r.pending);
    $("live-claimed").textContent = fmt.int(r.claimed);
    $("live-success").textContent = fmt.pct(r.success_rate);
    $("live-infra").textContent = fmt.int(r.infra_errors);
    $("live-last-minute").textContent = fmt.int(data.finished_last_minute);
    $("live-rate").textContent = data.rate_per_min === null ? "—" : fmt.num(data.rate_per_min, 1) + " episodes/min";
    $("live-eta").textContent = fmt.dur(data.eta_s);
    const workers = $("live-workers").tBodies[0];
    workers.replaceChildren(...Object.entries(data.workers).map(([w, n]) => {
      const tr = el("tr"); tr.appendChild(el("td", w)); tr.appendChild(el("td", n, { class: "n" })); return tr;
    }));
    const recent = $("live-recent").tBodies[0];
    recent.replaceChildren(...data.recent.map((e) => {
      const tr = el("tr");
      const id = el("td"); id.appendChild(el("a", e.id, { href: "/dashboard/episodes/" + e.id })); tr.appendChild(id);
      tr.appendChild(el("td", e.task_id));
      tr.appendChild(el("td", e.split));
      const o = el("td"); if (e.outcome) o.appendChild(badge(e.outcome)); tr.appendChild(o);
      tr.appendChild(el("td", fmt.num(e.reward), { class: "n" }));
      tr.appendChild(el("td", e.turns === null ? "—" : e.turns, { class: "n" }));
      tr.appendChild(el("td", fmt.dur(e.duration_s), { class: "n" }));
      tr.appendChild(el("td", fmt.when(e.finished_at)));
      return tr;
    }));
    plot("chart-live", [{ type: "scatter", mode: "lines+markers", name: "finished", x: data.timeline.map((p) => p[0] / 60),
      y: data.timeline.map((p) => p[1]) }], { xaxis: { title: { text: "minutes since the first finish" } } });
    body.dataset.refreshes = String(Number(body.dataset.refreshes || 0) + 1);
  }

  async function livePage() {
    const every = Math.max(0.2, Number(body.dataset.refresh || 2)) * 1000;
    const tick = async () => {
      let wait = every;
      try {
        const data = await api(body.dataset.api);
        renderLive(data);
        if (data.run.state === "complete") wait = Math.max(every, 30000);  // nothing left to watch: poll slowly
      } catch (e) { showError(e.message); }
      setTimeout(tick, wait);
    };
    await tick();
  }

  const pages = { runs: runsPage, compare: comparePage, run: runPage, episode: episodePage, live: livePage };
  const start = pages[body.dataset.page];
  if (start) start().then(() => { body.dataset.ready = "1"; }).catch((e) => showError(e.message));
  else body.dataset.ready = "1";
})();
