// cotbridge explorer: decodes the inline study data and draws the overview, a condition's problems and one
// problem's CoTs. Plain DOM and inline SVG; every text from the data goes in through textContent, never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const VARIANT_COLOR = { full: "#2f5d8a", without_answer: "#d1762b" };
const VARIANT_NAME = { full: "full CoT", without_answer: "without answer" };
const PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d", "#ff9da6"];
const PAGE = 100; // rows rendered per "show more"

let D = null; // the decoded data
let S = (i) => (i === null || i === undefined ? null : D.strings[i]);
const state = { search: "", model: "", agreement: "", condition: "", shown: PAGE };
let lowered = null; // lower-cased string table, made on the first search
const index = { cotsByProblem: new Map(), trialsByProblem: new Map(), generators: new Map() };

// -- small helpers -------------------------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const fmt = (v, digits = 3) => (v === null || v === undefined || Number.isNaN(v) ? "–" : v.toFixed(digits));
const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);

function shortName(name, max = 30) {
  if (!name || name.length <= max) return name || "";
  const keep = Math.floor((max - 1) / 2);
  return `${name.slice(0, keep)}…${name.slice(name.length - keep)}`;
}

// Models and ensembles show by their aliases (Report.aliases); full names stay in the tooltips.
function alias(name) {
  const aliases = (D.report && D.report.aliases) || {};
  if (!name || aliases[name]) return aliases[name] || name || "";
  const m = /^([a-z]+):(.*?)(\/(full|without_answer))?$/.exec(name); // transfer:SOURCE, ensemble:NAME[/variant]
  return m && aliases[m[2]] ? `${m[1]}:${aliases[m[2]]}${m[3] || ""}` : name;
}

function conditionName(c) {
  return `${alias(c.summary.name)} · ${VARIANT_NAME[c.summary.variant] || c.summary.variant}`;
}

function generatorColor(name) {
  if (!index.generators.has(name)) index.generators.set(name, PALETTE[index.generators.size % PALETTE.length]);
  return index.generators.get(name);
}

// Sequential blues (ColorBrewer "Blues") for a value in [0, 1]; null is light grey.
const BLUES = [[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
function heat(v) {
  if (v === null || v === undefined) return "#eef0f3";
  const x = Math.max(0, Math.min(1, v)) * (BLUES.length - 1);
  const i = Math.min(Math.floor(x), BLUES.length - 2);
  const f = x - i;
  return `rgb(${BLUES[i].map((c, k) => Math.round(c + (BLUES[i + 1][k] - c) * f)).join(",")})`;
}

function correctBadge(correct) {
  if (correct === 1) return h("span", { class: "badge ok", title: "correct" }, "✓");
  if (correct === 0) return h("span", { class: "badge bad", title: "wrong" }, "✗");
  return h("span", { class: "badge none", title: "no valid answer" }, "?");
}

const AGREEMENT = { 1: ["agree", "all compared pairs agree"], 0: ["disagree", "some pair disagrees"], "-1": ["n/a", "no pair could be compared"] };

function agreementBadge(value) {
  const [label, title] = AGREEMENT[value] || AGREEMENT["-1"];
  return h("span", { class: `agree a${value}`, title }, label);
}

function matches(stringIndex) {
  if (!state.search || stringIndex === null || stringIndex === undefined) return false;
  if (!lowered) lowered = D.strings.map((t) => t.toLowerCase());
  return lowered[stringIndex].includes(state.search.toLowerCase());
}

// -- data ----------------------------------------------------------------------------------------------------------

async function decode() {
  const b64 = document.getElementById("data").textContent.trim();
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(stream).text());
}

function buildIndex() {
  D.cots.forEach((cot, i) => {
    if (!index.cotsByProblem.has(cot[0])) index.cotsByProblem.set(cot[0], []);
    index.cotsByProblem.get(cot[0]).push(i);
  });
  D.conditions.forEach((c, ci) => {
    for (const row of c.trials) {
      if (!index.trialsByProblem.has(row[0])) index.trialsByProblem.set(row[0], []);
      index.trialsByProblem.get(row[0]).push([ci, row]);
    }
  });
}

// -- charts --------------------------------------------------------------------------------------------------------

function axis(x0, width, y0, y1) {
  const g = s("g", { class: "axis" });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    const x = x0 + t * width;
    g.append(s("line", { x1: x, x2: x, y1: y0, y2: y1, class: "grid" }));
    g.append(s("text", { x, y: y1 + 16, "text-anchor": "middle" }, t.toFixed(2)));
  }
  return g;
}

// Consistency per condition: one row per condition, a dot per variant with its 95% CI as a whisker.
function consistencyChart() {
  const rows = [];
  const byName = new Map();
  D.conditions.forEach((c, i) => {
    if (!byName.has(c.summary.name)) {
      byName.set(c.summary.name, []);
      rows.push(c.summary.name);
    }
    byName.get(c.summary.name).push(i);
  });
  const label = 330, width = 520, rowH = 26, top = 10;
  const height = top + rows.length * rowH + 44;
  const svg = s("svg", { class: "chart", id: "chart-consistency", viewBox: `0 0 ${label + width + 30} ${height}`, width: label + width + 30, height, role: "img" });
  svg.append(axis(label, width, top, top + rows.length * rowH));
  svg.append(s("text", { x: label + width / 2, y: height - 4, "text-anchor": "middle", class: "axis-title" }, `consistency (${D.metric} metric)`));
  rows.forEach((name, r) => {
    const y = top + r * rowH + rowH / 2;
    const g = s("g", { class: "row" });
    g.append(s("rect", { x: 0, y: y - rowH / 2, width: label + width + 30, height: rowH, class: r % 2 ? "band odd" : "band" }));
    const text = s("text", { x: label - 10, y: y + 4, "text-anchor": "end", class: "label link", onclick: () => go(`#c/${byName.get(name)[0]}`) }, shortName(alias(name), 46));
    text.append(s("title", {}, name));
    g.append(text);
    for (const ci of byName.get(name)) {
      const c = D.conditions[ci].summary;
      const dy = c.variant === "full" ? -4 : 4;
      const color = VARIANT_COLOR[c.variant] || "#555";
      if (c.mean === null) {
        g.append(s("text", { x: label + 6, y: y + dy + 3, class: "nodata" }, `${VARIANT_NAME[c.variant]}: no evaluator pair to compare (${c.evaluators} evaluator${c.evaluators === 1 ? "" : "s"})`));
        continue;
      }
      const point = s("g", { class: "point", "data-condition": ci, onclick: () => go(`#c/${ci}`) });
      if (c.ci_low !== null && c.ci_high !== null) {
        point.append(s("line", { x1: label + c.ci_low * width, x2: label + c.ci_high * width, y1: y + dy, y2: y + dy, stroke: color, "stroke-width": 2, class: "ci" }));
      }
      point.append(s("circle", { cx: label + c.mean * width, cy: y + dy, r: 5, fill: color, class: "dot" }));
      point.append(s("title", {}, `${conditionName(D.conditions[ci])}: ${fmt(c.mean)} (95% CI ${fmt(c.ci_low)}–${fmt(c.ci_high)}), ${c.pairs} pairs, ${D.metric} metric`));
      g.append(point);
    }
    svg.append(g);
  });
  return svg;
}

// A heatmap: rows x columns of values in [0, 1], the value written in each cell.
function heatmap(id, rowNames, colNames, values, onCell) {
  const longest = Math.max(...colNames.map((n) => Math.min(n.length, 22)));
  const label = 330, cellW = 64, cellH = 28, head = Math.max(72, Math.min(130, 30 + 5.5 * longest));
  const width = label + colNames.length * cellW + 110; // room for the last rotated column name
  const height = head + rowNames.length * cellH + 6;
  const svg = s("svg", { class: "chart heatmap", id, viewBox: `0 0 ${width} ${height}`, width, height, role: "img" });
  // The colour scale, 0 to 1, in the free corner above the row names.
  const grad = s("linearGradient", { id: `${id}-scale` }, [0, 0.25, 0.5, 0.75, 1].map((t) => s("stop", { offset: t, "stop-color": heat(t) })));
  svg.append(s("defs", {}, grad), s("rect", { x: 20, y: 30, width: 160, height: 10, rx: 2, fill: `url(#${id}-scale)` }),
    s("text", { x: 20, y: 56, class: "axis-label" }, "0"), s("text", { x: 180, y: 56, "text-anchor": "end", class: "axis-label" }, "1"),
    s("text", { x: 100, y: 22, "text-anchor": "middle", class: "axis-label" }, "accuracy"));
  colNames.forEach((name, j) => {
    const x = label + j * cellW + cellW / 2;
    const t = s("text", { x, y: head - 8, transform: `rotate(-40 ${x} ${head - 8})`, class: "label" }, shortName(alias(name), 22));
    t.append(s("title", {}, name));
    svg.append(t);
  });
  rowNames.forEach((name, i) => {
    const y = head + i * cellH;
    const t = s("text", { x: label - 10, y: y + cellH / 2 + 4, "text-anchor": "end", class: "label" }, shortName(alias(name), 46));
    t.append(s("title", {}, name));
    svg.append(t);
    colNames.forEach((col, j) => {
      const v = values[i][j];
      const cell = s("g", { class: "cell", onclick: onCell ? () => onCell(i, j) : null });
      cell.append(s("rect", { x: label + j * cellW + 1, y: y + 1, width: cellW - 2, height: cellH - 2, rx: 3, fill: heat(v) }));
      cell.append(s("text", { x: label + j * cellW + cellW / 2, y: y + cellH / 2 + 4, "text-anchor": "middle", class: v !== null && v > 0.55 ? "value dark" : "value" }, v === null ? "–" : v.toFixed(2)));
      cell.append(s("title", {}, `${name} → ${col}: ${v === null ? "no data" : v.toFixed(3)}`));
      svg.append(cell);
    });
  });
  return svg;
}

function findCondition(name, variant) {
  return D.conditions.findIndex((c) => c.summary.name === name && c.summary.variant === variant);
}

// -- overview ------------------------------------------------------------------------------------------------------

function metricNote() {
  return h("p", { class: "metric" }, h("strong", {}, `Consistency uses the ${D.metric} metric: `), D.definitions[D.metric], ". ",
    h("span", { class: "muted" }, "The same / wrong / differ breakdown always uses the strict metric: ", D.definitions.strict, "."));
}

function conditionTable() {
  const head = ["condition", "variant", `consistency (${D.metric})`, "95% CI", "pairs", "coverage", "same ✓ (strict)", "same ✗ (strict)", "differ (strict)", "evaluators", "problems"];
  const body = D.conditions.map((c, i) => {
    const m = c.summary;
    return h("tr", { class: "link", onclick: () => go(`#c/${i}`), "data-condition": i },
      h("td", { title: m.name }, shortName(alias(m.name), 40)),
      h("td", {}, h("span", { class: `variant ${m.variant}` }, VARIANT_NAME[m.variant] || m.variant)),
      h("td", { class: "num" }, m.mean === null ? "–" : `${fmt(m.mean)} ± ${fmt(m.std)}`),
      h("td", { class: "num" }, m.ci_low === null ? "–" : `${fmt(m.ci_low)}–${fmt(m.ci_high)}`),
      h("td", { class: "num" }, m.pairs),
      h("td", { class: "num" }, pct(m.coverage)),
      h("td", { class: "num" }, pct(m.breakdown.consistent_correct)),
      h("td", { class: "num" }, pct(m.breakdown.consistent_wrong)),
      h("td", { class: "num" }, pct(m.breakdown.inconsistent)),
      h("td", { class: "num" }, m.evaluators),
      h("td", { class: "num" }, m.problems));
  });
  return h("table", { class: "data", id: "conditions" }, h("thead", {}, h("tr", {}, head.map((t) => h("th", {}, t)))), h("tbody", {}, body));
}

function matrixSection() {
  const out = [];
  for (const [variant, grid] of Object.entries(D.report.matrix || {})) {
    out.push(h("h3", {}, `Transfer matrix, ${VARIANT_NAME[variant] || variant}: accuracy of each evaluator (columns) given each source's CoT (rows)`));
    out.push(heatmap(`chart-matrix-${variant}`, grid.sources, grid.targets, grid.values, (i) => {
      const ci = findCondition(`transfer:${grid.sources[i]}`, variant);
      if (ci >= 0) go(`#c/${ci}`);
    }));
  }
  return out;
}

function accuracySection() {
  const labels = Object.keys(D.report.accuracy || {});
  if (!labels.length) return [];
  const evaluators = D.evaluators;
  const values = labels.map((l) => evaluators.map((e) => (D.report.accuracy[l][e] ?? null)));
  const rows = labels.map((l) => { const k = l.lastIndexOf("/"); return `${alias(l.slice(0, k))} · ${VARIANT_NAME[l.slice(k + 1)] || l.slice(k + 1)}`; });
  return [h("h3", {}, "Accuracy per evaluator and condition"), h("p", { class: "muted" }, D.definitions.accuracy),
    heatmap("chart-accuracy", rows, evaluators, values, (i) => go(`#c/${i}`))];
}

function extrasSection() {
  const out = [];
  const r = D.report;
  if (Object.keys(r.ensembles || {}).length) out.push(h("h3", {}, "Ensembles"));
  for (const [name, e] of Object.entries(r.ensembles || {})) {
    const shares = Object.entries(e.chosen_share).map(([g, v]) => h("span", { class: "gen", style: `--c:${generatorColor(g)}` }, `${alias(g)} ${pct(v)}`));
    out.push(h("p", {}, h("strong", {}, `Ensemble ${alias(name)}: `), `${e.runs} runs, median ${e.steps_median} steps (max ${e.steps_max}); chosen sentences by generator: `, shares,
      `; guard fallbacks ${e.guard_fallbacks}`, e.truncation ? h("span", { class: "warn" }, ` ${e.truncation}`) : null));
  }
  // Costs only when something was counted: imported outputs carry no token counts.
  const costs = Object.entries(r.costs || {}).filter(([, c]) => c.prompt_tokens + c.completion_tokens > 0);
  if (costs.length) {
    out.push(h("h3", {}, "Tokens and cost"));
    out.push(h("table", { class: "data compact" }, h("thead", {}, h("tr", {}, ["model", "prompt tokens", "completion tokens", "reasoning tokens", "USD"].map((t) => h("th", {}, t)))),
      h("tbody", {}, costs.map(([m, c]) => h("tr", {}, h("td", { title: m }, alias(m)), h("td", { class: "num" }, c.prompt_tokens), h("td", { class: "num" }, c.completion_tokens), h("td", { class: "num" }, c.reasoning_tokens), h("td", { class: "num" }, c.usd === null ? "–" : c.usd.toFixed(4)))))));
  }
  if (r.ratings) out.push(...ratingsSection(r.ratings));
  const notes = [];
  if (r.failures.length) notes.push(`${r.failures.length} failed trial(s), counted as invalid answers; e.g. ${r.failures[0]}`);
  const cut = Object.values(r.truncated || {}).reduce((a, b) => a + b, 0);
  if (cut) notes.push(`${cut} trial(s) cut off at their token cap`);
  const cutCots = Object.values(r.truncated_cots || {}).reduce((a, b) => a + b, 0);
  if (cutCots) notes.push(`${cutCots} CoT(s) cut off at cot_max_tokens`);
  const redacted = Object.values(r.redacted_cots || {}).reduce((a, b) => a + b, 0);
  if (redacted) notes.push(`${redacted} CoT(s) with reasoning the vendor withheld`);
  if (D.texts_left_out) notes.push(`the evaluators' answer texts of these ${D.texts_left_out.toLocaleString()} trials are left out of this page to keep it small (answers and scores are in)`);
  if (notes.length) out.push(h("ul", { class: "notes" }, notes.map((n) => h("li", {}, n))));
  return out;
}

// Human ratings (the paper's user study, or a user's CSV) beside the consistency of the condition each label names.
function ratingsSection(ratings) {
  const out = [h("h3", {}, "Human ratings and consistency"),
    h("p", { class: "muted" }, `Mean rating over ${ratings.criteria.join(", ")}; consistency by the ${D.metric} metric.`)];
  if (ratings.labels.length) {
    out.push(h("table", { class: "data compact", id: "ratings" }, h("thead", {}, h("tr", {}, ["label", "mean rating", "n ratings", "condition", "variant", "consistency"].map((t) => h("th", {}, t)))),
      h("tbody", {}, ratings.labels.map((row) => h("tr", {}, h("td", {}, row.label), h("td", { class: "num" }, fmt(row.mean, 2)), h("td", { class: "num" }, row.n),
        h("td", { title: row.condition }, row.display), h("td", {}, VARIANT_NAME[row.variant] || row.variant), h("td", { class: "num" }, row.consistency === null ? "–" : fmt(row.consistency)))))));
  }
  const c = ratings.correlation;
  if (c) out.push(h("p", {}, `Pearson ${c.pearson === null ? "–" : fmt(c.pearson)}, Spearman ${c.spearman === null ? "–" : fmt(c.spearman)}, Kendall ${c.kendall === null ? "–" : fmt(c.kendall)} (n = ${ratings.n})`));
  for (const note of ratings.notes) out.push(h("p", { class: "warn" }, note));
  return out;
}

function legend() {
  return h("div", { class: "legend" }, Object.entries(VARIANT_COLOR).map(([v, c]) => h("span", {}, h("i", { style: `background:${c}` }), VARIANT_NAME[v])),
    h("span", { class: "muted" }, "dot: mean over evaluator pairs; line: 95% bootstrap CI over problems; click a row for its problems"));
}

function overview() {
  const trials = D.conditions.reduce((n, c) => n + c.trials.length, 0);
  return [
    h("section", { class: "summary" },
      h("div", { class: "stat" }, h("b", {}, trials.toLocaleString()), " trials"),
      h("div", { class: "stat" }, h("b", {}, D.cots.length.toLocaleString()), " stored CoTs"),
      h("div", { class: "stat" }, h("a", { href: "#problems", id: "all-problems" }, h("b", {}, D.problems.length.toLocaleString()), " problems")),
      h("div", { class: "stat" }, h("b", {}, D.evaluators.length), " evaluators"),
      h("div", { class: "stat" }, h("b", {}, D.conditions.length), " conditions × variants")),
    metricNote(),
    h("section", {}, h("h2", {}, "Consistency per condition"), legend(), h("div", { class: "scroll" }, consistencyChart())),
    h("section", {}, h("h2", {}, "Conditions"), h("div", { class: "scroll" }, conditionTable())),
    h("section", {}, h("h2", {}, "Accuracy"), matrixSection().map((e) => (e.tagName === "svg" ? h("div", { class: "scroll" }, e) : e)),
      accuracySection().map((e) => (e.tagName === "svg" ? h("div", { class: "scroll" }, e) : e))),
    h("section", {}, extrasSection()),
  ];
}

// -- a condition's problems ----------------------------------------------------------------------------------------

function select(id, label, options, value, onchange) {
  return h("label", { class: "filter" }, label, " ",
    h("select", { id, onchange: (e) => onchange(e.target.value) }, options.map(([v, t]) => h("option", { value: v, selected: v === value }, t))));
}

function conditionView(ci) {
  const c = D.conditions[ci];
  const m = c.summary;
  const evaluators = [...new Set(c.trials.map((t) => S(t[1])))].sort();
  const shown = state.model && evaluators.includes(state.model) ? [state.model] : evaluators;
  const byProblem = new Map();
  for (const t of c.trials) {
    if (!byProblem.has(t[0])) byProblem.set(t[0], new Map());
    byProblem.get(t[0]).set(S(t[1]), t);
  }
  let problems = [...byProblem.keys()].sort((a, b) => a - b);
  const questions = problems.some((p) => D.problems[p][1] !== null);
  if (state.agreement !== "") problems = problems.filter((p) => String(c.agreement[p]) === state.agreement);
  if (state.search) problems = problems.filter((p) => [...byProblem.get(p).values()].some((t) => matches(t[4]) || (t[6] !== null && matches(D.cots[t[6]][5]))));
  const rows = problems.slice(0, state.shown).map((p) => {
    const answers = byProblem.get(p);
    return h("tr", { class: "link problem-row", "data-problem": p, onclick: () => go(`#p/${p}/c/${ci}`) },
      h("td", {}, D.problems[p][0]),
      questions ? h("td", { class: "question" }, shortQuestion(p)) : null,
      shown.map((e) => {
        const t = answers.get(e);
        if (!t) return h("td", { class: "muted" }, "–");
        return h("td", { class: "answer" }, correctBadge(t[3]), " ", shortName(S(t[2]) ?? (t[5] & 1 ? "failed" : "no answer"), 24));
      }),
      h("td", {}, agreementBadge(c.agreement[p])));
  });
  const more = problems.length > state.shown
    ? h("button", { class: "more", onclick: () => { state.shown += PAGE; render(); } }, `Show more (${problems.length - state.shown} left)`) : null;
  return [
    h("nav", { class: "crumbs" }, h("a", { href: "#" }, "Overview"), " / ", conditionName(c)),
    h("h2", {}, conditionName(c)),
    h("p", { class: "metric" }, m.mean === null ? "No evaluator pair to compare." : `Consistency ${fmt(m.mean)} ± ${fmt(m.std)} (95% CI ${fmt(m.ci_low)}–${fmt(m.ci_high)}) over ${m.pairs} pairs, ${D.metric} metric: ${D.definitions[D.metric]}.`),
    accuracyLine(m),
    h("div", { class: "filters" },
      select("filter-model", "Evaluator", [["", "all"], ...evaluators.map((e) => [e, e])], state.model, (v) => { state.model = v; render(); }),
      select("filter-agreement", "Agreement", [["", "all"], ["1", "agree"], ["0", "disagree"], ["-1", "not compared"]], state.agreement, (v) => { state.agreement = v; state.shown = PAGE; render(); }),
      select("filter-condition", "Condition", D.conditions.map((x, i) => [String(i), conditionName(x)]), String(ci), (v) => go(`#c/${v}`)),
      h("span", { class: "count", id: "problem-count" }, `${problems.length} of ${byProblem.size} problems`, state.search ? ` matching “${state.search}”` : "")),
    h("div", { class: "scroll" }, h("table", { class: "data", id: "problems" },
      h("thead", {}, h("tr", {}, h("th", {}, "problem"), questions ? h("th", {}, "question") : null, shown.map((e) => h("th", { title: e }, shortName(alias(e), 24))), h("th", {}, `agreement (${D.metric})`))),
      h("tbody", {}, rows))),
    more,
  ];
}

function accuracyLine(m) {
  const per = D.report.accuracy[`${m.name}/${m.variant}`] || {};
  const parts = Object.entries(per).map(([e, v]) => h("span", { class: "acc" }, h("b", {}, shortName(alias(e), 30)), ` ${fmt(v, 2)}`));
  return parts.length ? h("p", { class: "accuracy", id: "condition-accuracy" }, "Accuracy: ", parts, h("span", { class: "muted" }, ` (${D.definitions.accuracy})`)) : null;
}

function shortQuestion(p) {
  const q = S(D.problems[p][1]);
  if (!q) return h("span", { class: "muted" }, "not stored");
  return q.length > 110 ? `${q.slice(0, 110)}…` : q;
}

// -- all problems and search ---------------------------------------------------------------------------------------

function problemsView() {
  let problems = D.problems.map((_, p) => p);
  if (state.search) problems = problems.filter((p) => (index.cotsByProblem.get(p) || []).some((i) => matches(D.cots[i][5])));
  const rows = problems.slice(0, state.shown).map((p) => h("tr", { class: "link problem-row", "data-problem": p, onclick: () => go(`#p/${p}`) },
    h("td", {}, D.problems[p][0]), h("td", { class: "question" }, shortQuestion(p)),
    h("td", { class: "num" }, (index.cotsByProblem.get(p) || []).length), h("td", { class: "num" }, (index.trialsByProblem.get(p) || []).length)));
  return [
    h("nav", { class: "crumbs" }, h("a", { href: "#" }, "Overview"), " / all problems"),
    h("h2", {}, "All problems"),
    h("span", { class: "count", id: "problem-count" }, `${problems.length} of ${D.problems.length} problems`, state.search ? ` whose CoTs match “${state.search}”` : ""),
    h("table", { class: "data", id: "problems" }, h("thead", {}, h("tr", {}, ["problem", "question", "CoTs", "trials"].map((t) => h("th", {}, t)))), h("tbody", {}, rows)),
    problems.length > state.shown ? h("button", { class: "more", onclick: () => { state.shown += PAGE; render(); } }, `Show more (${problems.length - state.shown} left)`) : null,
  ];
}

function snippet(text, query) {
  const at = text.toLowerCase().indexOf(query.toLowerCase());
  const start = Math.max(0, at - 80);
  const end = at + query.length + 120;
  return [start > 0 ? "…" : "", text.slice(start, at), h("mark", {}, text.slice(at, at + query.length)), text.slice(at + query.length, end), end < text.length ? "…" : ""];
}

function searchView() {
  const sources = [...new Set(D.cots.map((c) => S(c[1])))].sort();
  let hits = D.cots.map((_, i) => i).filter((i) => matches(D.cots[i][5]));
  if (state.model) hits = hits.filter((i) => S(D.cots[i][1]) === state.model);
  const items = hits.slice(0, state.shown).map((i) => {
    const c = D.cots[i];
    return h("li", { class: "link hit", "data-cot": i, onclick: () => go(`#p/${c[0]}`) },
      h("div", { class: "hit-head" }, `problem ${D.problems[c[0]][0]} · `, h("b", {}, S(c[1])), ` · ${c[2]} · ${VARIANT_NAME[c[4]] || c[4]}`),
      h("div", { class: "hit-text" }, snippet(S(c[5]), state.search)));
  });
  return [
    h("nav", { class: "crumbs" }, h("a", { href: "#" }, "Overview"), " / search"),
    h("h2", {}, `CoTs containing “${state.search}”`),
    h("div", { class: "filters" }, select("filter-model", "Source", [["", "all"], ...sources.map((e) => [e, e])], state.model, (v) => { state.model = v; render(); }),
      h("span", { class: "count", id: "hit-count" }, `${hits.length} of ${D.cots.length} CoTs`)),
    h("ul", { class: "hits", id: "hits" }, items),
    hits.length > state.shown ? h("button", { class: "more", onclick: () => { state.shown += PAGE; render(); } }, `Show more (${hits.length - state.shown} left)`) : null,
  ];
}

// -- one problem ---------------------------------------------------------------------------------------------------

// The answer-removed CoT as its source with the dropped sentences struck through.
function struckText(cot) {
  const x = cot[9];
  const full = S(x.full);
  const dropped = new Set(x.struck.dropped);
  const pre = h("div", { class: "cot struck" });
  let start = 0;
  x.struck.ends.forEach((end, i) => {
    const piece = full.slice(start, end);
    pre.append(dropped.has(i) ? h("del", { class: "dropped", title: "dropped by answer removal" }, piece) : document.createTextNode(piece));
    start = end;
  });
  const leaks = x.struck.leaks.length ? h("span", { class: "warn" }, ` · answer still appears in ${x.struck.leaks.length} kept sentence(s)`) : null;
  return [h("p", { class: "cot-note" }, `Answer removal (${x.struck.method}) dropped ${dropped.size} of ${x.struck.ends.length} sentences, shown struck through.`, leaks), pre];
}

// An ensemble CoT sentence by sentence, each marked with the generator(s) that proposed it and its score.
function traceText(cot) {
  const box = h("div", { class: "cot trace" });
  const gens = new Set();
  cot[9].trace.forEach(([text, proposers, score, scores, candidates, note, alternatives], k) => {
    if (text === null) return;
    proposers.forEach((g) => gens.add(g));
    const color = generatorColor(proposers[0] || "?");
    const detail = Object.entries(scores || {}).map(([e, v]) => `${e}: ${fmt(v)}`).join(", ");
    const alt = h("div", { class: "alternatives", hidden: true },
      h("div", { class: "muted" }, `step ${k + 1}: ${candidates} candidate(s); ${note}`),
      alternatives.map(([t, ps, sc]) => h("div", { class: "alt" }, h("span", { class: "tag" }, `${ps.join("+")} · ${fmt(sc, 2)}`), " ", S(t))));
    box.append(h("span", { class: "sent", style: `--c:${color}`, title: `proposed by ${proposers.join(", ")}; score ${fmt(score)}${detail ? ` (${detail})` : ""}; click for the alternatives`,
      onclick: () => { alt.hidden = !alt.hidden; } }, S(text), h("sup", { class: "tag", style: `--c:${color}` }, `${proposers.map((p) => shortName(alias(p), 14)).join("+")} ${fmt(score, 2)}`)), alt);
  });
  const legendItems = [...gens].map((g) => h("span", { class: "gen", style: `--c:${generatorColor(g)}` }, g));
  return [h("p", { class: "cot-note" }, "Ensemble CoT: each sentence marked with the generator that proposed it and its score (mean token log-prob by the evaluators); click a sentence for the candidates it beat. ", legendItems), box];
}

function cotBody(i) {
  const cot = D.cots[i];
  if (cot[9].struck) return struckText(cot);
  if (cot[9].trace) return traceText(cot);
  const text = S(cot[5]);
  return [h("div", { class: "cot" }, text === null || text === "" ? h("span", { class: "muted" }, "(empty)") : text)];
}

function cotCard(i, open, why) {
  const c = D.cots[i];
  const head = h("summary", {}, h("b", { title: S(c[1]) }, alias(S(c[1]))), ` · ${c[2]}${c[3] ? ` #${c[3]}` : ""} · `, h("span", { class: `variant ${c[4]}` }, VARIANT_NAME[c[4]] || c[4]),
    " · source's answer ", correctBadge(c[7]), " ", S(c[6]) ?? "none", c[8] ? h("span", { class: "warn" }, " · truncated") : null, c[9].redacted ? h("span", { class: "warn" }, " · partly withheld") : null,
    why ? h("span", { class: "muted" }, ` · ${why}`) : null);
  const card = h("details", { class: "cot-card", "data-cot": i, open });
  card.append(head);
  // The text becomes DOM only when the card is first opened.
  const fill = () => { if (card.childElementCount === 1) card.append(...cotBody(i)); };
  if (open) fill();
  card.addEventListener("toggle", fill);
  return card;
}

// One condition's answers to a problem, each with its text (folded).
function answersTable(entries) {
  return h("table", { class: "data answers" }, h("thead", {}, h("tr", {}, ["evaluator", "answer", "", "answer text"].map((t) => h("th", {}, t)))),
    h("tbody", {}, entries.filter(([, t]) => !state.model || S(t[1]) === state.model).map(([, t]) => {
      const text = S(t[4]) || "";
      return h("tr", {}, h("td", {}, S(t[1])), h("td", {}, S(t[2]) ?? (t[5] & 1 ? "failed" : "none")), h("td", {}, correctBadge(t[3]), t[5] & 2 ? h("span", { class: "warn" }, " cut off") : null),
        h("td", {}, h("details", { class: "answer-text" }, h("summary", {}, text.length > 90 ? `${text.slice(0, 90)}…` : text || "(empty)"), h("div", { class: "cot" }, text))));
    })));
}

// Every answer to a problem: conditions as rows, evaluators as columns; a click on a cell shows its answer text.
function answersMatrix(entries) {
  const conditions = [...new Set(entries.map(([c]) => c))].sort((a, b) => a - b);
  const evaluators = D.evaluators.filter((e) => !state.model || e === state.model);
  const cells = new Map(entries.map(([c, t]) => [`${c}/${S(t[1])}`, t]));
  const panel = h("div", { class: "answer-panel", id: "answer-panel" }, h("span", { class: "muted" }, "Click an answer to read the evaluator's text."));
  const show = (c, e, t) => panel.replaceChildren(h("div", { class: "cot-note" }, `${e} in ${conditionName(D.conditions[c])}: answer `, S(t[2]) ?? "none", " ", correctBadge(t[3])), h("div", { class: "cot" }, S(t[4]) || "(empty)"));
  const table = h("table", { class: "data answers", id: "answers" },
    h("thead", {}, h("tr", {}, h("th", {}, "condition"), evaluators.map((e) => h("th", { title: e }, shortName(alias(e), 22))))),
    h("tbody", {}, conditions.map((c) => h("tr", {}, h("td", {}, h("a", { href: `#c/${c}`, title: conditionName(D.conditions[c]) }, shortName(alias(D.conditions[c].summary.name), 34), " ", h("span", { class: `variant ${D.conditions[c].summary.variant}` }, VARIANT_NAME[D.conditions[c].summary.variant] || ""))),
      evaluators.map((e) => {
        const t = cells.get(`${c}/${e}`);
        if (!t) return h("td", { class: "muted" }, "–");
        return h("td", { class: "answer link", onclick: () => show(c, e, t) }, correctBadge(t[3]), " ", shortName(S(t[2]) ?? (t[5] & 1 ? "failed" : "none"), 18));
      })))));
  return [h("div", { class: "scroll" }, table), panel];
}

function problemView(p, ci) {
  const [id, question] = D.problems[p];
  const entries = index.trialsByProblem.get(p) || [];
  const all = index.cotsByProblem.get(p) || [];
  const out = [h("nav", { class: "crumbs" }, h("a", { href: "#" }, "Overview"), " / ", ci === null ? h("a", { href: "#problems" }, "all problems") : h("a", { href: `#c/${ci}` }, conditionName(D.conditions[ci])), ` / problem ${id}`),
    h("h2", {}, `Problem ${id}`)];
  out.push(h("h3", {}, "Question ", h("span", { class: "muted" }, "(as stored with its CoTs: the prompt sent, or for imported outputs the test set's note and question)")), S(question) ? h("div", { class: "cot question-text" }, S(question)) : h("p", { class: "muted" }, "The results DB stores no question text for this problem (no trial or CoT kept its prompt)."));
  const known = entries.find(([, t]) => t[3] === 1);
  out.push(h("p", {}, h("b", {}, "Gold answer: "), "not stored in the results DB", known ? ["; an answer marked correct: ", h("code", {}, S(known[1][2]))] : null));
  let given = new Set();
  if (ci !== null) {
    const here = entries.filter(([c]) => c === ci);
    given = new Set(here.map(([, t]) => t[6]).filter((g) => g !== null));
    out.push(h("h3", {}, `In ${conditionName(D.conditions[ci])}`), h("p", {}, "Agreement: ", agreementBadge(D.conditions[ci].agreement[p])));
    out.push(...[...given].map((g) => cotCard(g, true, "the CoT the evaluators were given")));
    if (!given.size) out.push(h("p", { class: "muted" }, "No stored CoT was given in this condition."));
    out.push(answersTable(here));
  }
  out.push(h("h3", {}, `All CoTs of this problem (${all.length})`), h("div", { id: "cots" }, all.filter((i) => !given.has(i)).map((i) => cotCard(i, state.search !== "" && matches(D.cots[i][5]), null))));
  out.push(h("h3", {}, `All answers to this problem (${entries.length})`), answersMatrix(entries));
  return out;
}

// -- routing -------------------------------------------------------------------------------------------------------

function go(hash) {
  state.shown = PAGE;
  if (location.hash === hash) render();
  else location.hash = hash;
}

function render() {
  const app = document.getElementById("app");
  const hash = location.hash.replace(/^#/, "");
  const parts = hash.split("/");
  let view;
  if (parts[0] === "c" && D.conditions[+parts[1]]) view = conditionView(+parts[1]);
  else if (parts[0] === "p" && D.problems[+parts[1]]) view = problemView(+parts[1], parts[2] === "c" && D.conditions[+parts[3]] ? +parts[3] : null);
  else if (parts[0] === "problems") view = problemsView();
  else if (state.search) view = searchView();
  else view = overview();
  app.replaceChildren(...view.flat().filter(Boolean));
  app.dataset.view = parts[0] || (state.search ? "search" : "overview");
}

async function main() {
  try {
    D = await decode();
  } catch (err) {
    document.getElementById("app").replaceChildren(h("p", { class: "warn" }, `This page could not decode its data (${err}). It needs a browser with DecompressionStream (Chrome 80+, Firefox 113+, Safari 16.4+).`));
    return;
  }
  buildIndex();
  document.getElementById("study").textContent = `${D.study} · ${D.metric} metric`;
  let timer = null;
  document.getElementById("search").addEventListener("input", (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      state.search = e.target.value.trim();
      state.shown = PAGE;
      const view = location.hash.replace(/^#/, "").split("/")[0];
      // A condition's problems and the problem list are filtered in place; elsewhere the search lists CoTs.
      if (view !== "c" && view !== "problems" && view !== "p" && location.hash) location.hash = "";
      render();
    }, 150);
  });
  window.addEventListener("hashchange", render);
  render();
  document.body.dataset.ready = "1";
}

main();
