// Progressive enhancement: the pages work without this file. With it, the group page's
// timelines are drawn by the vendored Chart.js from the JSON the server embedded, and
// its counts, version breakdown and charts refresh every few seconds without a reload
// (the page is fetched again and its [data-live] parts and chart data swapped in).
"use strict";
(function () {
  const charts = {};

  function chartData(doc) {
    const source = doc.getElementById("chart-data");
    return source ? JSON.parse(source.textContent) : null;
  }

  function draw() {
    const data = chartData(document);
    if (!data || typeof window.Chart === "undefined") return;
    const options = {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
    };
    for (const [name, chart] of Object.entries(data)) {
      const canvas = document.getElementById(name + "-chart");
      if (!canvas) continue;
      charts[name] = new window.Chart(canvas, { type: "line", data: chart, options: options });
      canvas.dataset.drawn = String(chart.datasets.length);
    }
  }

  async function refresh() {
    const resp = await fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (!resp.ok || resp.redirected) return false; // signed out: leave the page as it is
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    for (const part of document.querySelectorAll("[data-live]")) {
      const fresh = doc.getElementById(part.id);
      if (fresh) part.innerHTML = fresh.innerHTML;
    }
    const data = chartData(doc);
    for (const [name, chart] of Object.entries(charts)) {
      if (!data || !data[name]) continue;
      chart.data.labels = data[name].labels;
      chart.data.datasets = data[name].datasets;
      chart.update();
    }
    return true;
  }

  function start() {
    draw();
    const live = document.querySelector("[data-refresh-seconds]");
    if (!live) return;
    const seconds = Number(live.dataset.refreshSeconds) || 15;
    window.setInterval(() => { refresh().catch(() => {}); }, seconds * 1000);
  }

  window.wellcarConsole = { refresh: refresh };
  document.addEventListener("DOMContentLoaded", start);
})();
