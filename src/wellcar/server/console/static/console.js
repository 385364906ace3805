// Progressive enhancement: the pages work without this file; with it, the group page's
// timelines are drawn by the vendored Chart.js from the JSON the server embedded.
"use strict";
(function () {
  function draw() {
    const source = document.getElementById("chart-data");
    if (!source || typeof window.Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
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
      canvas.chart = new window.Chart(canvas, { type: "line", data: chart, options: options });
      canvas.dataset.drawn = String(chart.datasets.length);
    }
  }
  document.addEventListener("DOMContentLoaded", draw);
})();
