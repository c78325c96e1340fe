// Suho portal: copy buttons, live EA status over /ws/portal/, the balance/equity chart (uPlot, vendored).
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const text = document.getElementById(button.dataset.copy).textContent.trim();
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {  // no clipboard permission (http, old browser): select the text for Ctrl+C instead
    const range = document.createRange();
    range.selectNodeContents(document.getElementById(button.dataset.copy));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 1500);
});

// A form with data-confirm asks first (no inline onsubmit: the Content-Security-Policy allows no inline script).
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !confirm(form.dataset.confirm)) event.preventDefault();
});

function showStatus(account) {
  document.querySelectorAll(`[data-status-for="${account.account_id}"]`).forEach((badge) => {
    badge.textContent = account.online ? "online" : "offline";
    badge.className = "status " + (account.online ? "online" : "offline");
  });
  document.querySelectorAll(`[data-diagnostics-for="${account.account_id}"]`).forEach((box) => {
    box.replaceChildren();
    if (account.online) return;
    const line = (text) => { const s = document.createElement("small"); s.textContent = text; box.append(s); };
    if (account.last_refusal_reason) line(`Last refusal: ${account.last_refusal_reason} at ${account.last_refusal_at}`);
    if (account.last_ea_error) line(`EA error: ${account.last_ea_error}`);
  });
}

function cells(row, values) {
  row.replaceChildren(...values.map((value) => {
    const cell = document.createElement("td");
    cell.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
    return cell;
  }));
  return row;
}

// A table body refilled from a list, its box shown and its "nothing here" line hidden when the list has rows.
function fillTable(name, items, values) {
  const body = document.getElementById(`${name}-body`);
  if (!body) return;
  body.replaceChildren(...items.map((item) => cells(document.createElement("tr"), values(item))));
  document.getElementById(name).hidden = items.length === 0;
  document.getElementById(`${name}-empty`).hidden = items.length > 0;
}

function showAccount(account) {
  showStatus(account);
  if (account.balance) {
    const now = document.getElementById("balance-now");
    now.querySelector("[data-field=balance]").textContent = account.balance.balance.toFixed(2);
    now.querySelector("[data-field=equity]").textContent = account.balance.equity.toFixed(2);
    now.hidden = false;
    chartAppend(account.balance);
  }
  fillTable("positions", account.positions, (p) => [p.ticket, p.symbol, p.type, p.volume, p.open_price,
    p.sl || null, p.tp || null, p.profit]);
  fillTable("quotes", account.quotes, (q) => [q.symbol, q.bid, q.ask, q.spread,
    q.timestamp ? q.timestamp.slice(11, 19) : null]);
}

function liveStatus(delayMs = 1000) {
  if (!document.querySelector("[data-live-status]")) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const watched = document.querySelector("[data-live-account]");
  const query = watched ? `?account=${encodeURIComponent(watched.dataset.liveAccount)}` : "";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/portal/${query}`);
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "status") message.accounts.forEach(showStatus);
    if (message.type === "account") showAccount(message);
  };
  socket.onopen = () => { delayMs = 1000; };
  socket.onclose = (event) => {
    if (event.code !== 4401) setTimeout(() => liveStatus(Math.min(delayMs * 2, 30000)), delayMs);
  };
}

// Under an hour of points (a new account) would be squeezed or, for one point, stretched over years: a fixed range
// around them with a margin instead.
function xScale(t) {
  const lo = Math.min(...t), hi = Math.max(...t);
  const margin = Math.max(60, (hi - lo) / 20);
  return hi - lo >= 3600 ? { time: true } : { time: true, auto: false, range: [lo - margin, hi + margin] };
}

let chart = null;
let series = null;

function balanceChart() {
  const box = document.getElementById("balance-chart");
  const data = document.getElementById("balance-data");
  if (!box || !data || typeof uPlot === "undefined") return;
  series = series || JSON.parse(data.textContent);
  if (!series.t.length) return;  // drawn with the first balance the socket brings
  box.hidden = false;
  document.getElementById("balance-empty").hidden = true;
  const size = () => ({ width: box.clientWidth, height: 300 });
  if (chart) chart.destroy();
  chart = new uPlot({
    ...size(),
    cursor: { drag: { x: true, y: false } },
    axes: [{}, { size: 70 }],
    scales: { x: xScale(series.t) },
    series: [{}, { label: "Balance", stroke: "#1a5fb4", width: 2 }, { label: "Equity", stroke: "#0b6b2e", width: 2 }],
  }, [series.t, series.balance, series.equity], box);
  box.dataset.points = String(series.t.length);
  window.onresize = () => chart.setSize(size());
}

// A balance the socket brought, newer than the chart's last point, is added to it.
function chartAppend(balance) {
  const data = document.getElementById("balance-data");
  if (!data || !balance.timestamp || typeof uPlot === "undefined") return;
  series = series || JSON.parse(data.textContent);
  const t = Math.floor(Date.parse(balance.timestamp) / 1000);
  if (series.t.length && t <= series.t[series.t.length - 1]) return;
  series.t.push(t);
  series.balance.push(balance.balance);
  series.equity.push(balance.equity);
  if (chart && xScale(series.t).auto !== false) {
    chart.setData([series.t, series.balance, series.equity]);
    document.getElementById("balance-chart").dataset.points = String(series.t.length);
  } else {
    balanceChart();  // the first hour has a fixed x range: drawn again with the range the new point needs
  }
}

window.addEventListener("DOMContentLoaded", liveStatus);
window.addEventListener("load", balanceChart);
