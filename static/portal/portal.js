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

function liveStatus(delayMs = 1000) {
  if (!document.querySelector("[data-live-status]")) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/portal/`);
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "status") message.accounts.forEach(showStatus);
  };
  socket.onopen = () => { delayMs = 1000; };
  socket.onclose = (event) => {
    if (event.code !== 4401) setTimeout(() => liveStatus(Math.min(delayMs * 2, 30000)), delayMs);
  };
}

// One 5-minute bucket (a new account) would stretch over years: show the hour around it instead.
function xScale(t) {
  const lo = Math.min(...t), hi = Math.max(...t);
  return hi - lo >= 3600 ? { time: true } : { time: true, auto: false, range: [hi - 3600, hi + 600] };
}

function balanceChart() {
  const box = document.getElementById("balance-chart");
  const data = document.getElementById("balance-data");
  if (!box || !data || typeof uPlot === "undefined") return;
  const series = JSON.parse(data.textContent);
  const size = () => ({ width: box.clientWidth, height: 300 });
  const chart = new uPlot({
    ...size(),
    cursor: { drag: { x: true, y: false } },
    axes: [{}, { size: 70 }],
    scales: { x: xScale(series.t) },
    series: [{}, { label: "Balance", stroke: "#1a5fb4", width: 2 }, { label: "Equity", stroke: "#0b6b2e", width: 2 }],
  }, [series.t, series.balance, series.equity], box);
  box.dataset.points = String(series.t.length);
  window.addEventListener("resize", () => chart.setSize(size()));
}

window.addEventListener("DOMContentLoaded", liveStatus);
window.addEventListener("load", balanceChart);
