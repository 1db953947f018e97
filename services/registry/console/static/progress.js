// Live training progress on a job's page: while the job trains, poll its progress.json (same origin, the
// session cookie) and redraw the loss line, the bar and the text. The chart's geometry comes computed from
// the server (services/registry/domain/training_progress.py chart()), so this only sets attributes; without
// JavaScript the page still shows the server-rendered chart as of its load.
"use strict";

(() => {
  const fixed = (value) => (typeof value === "number" ? value.toFixed(4) : "-");

  function draw(data) {
    const text = document.getElementById("progress-text");
    const finished = data.training ? `, ETA ${data.eta}` : `, finished (${data.state})`;
    text.textContent = data.points
      ? `Step ${data.step} of ${data.total_steps} (${data.percent}%), loss ${fixed(data.loss)}${finished}`
      : "Waiting for the first progress report from the trainer.";
    document.getElementById("progress-bar").value = data.percent;
    document.getElementById("loss-line").setAttribute("points", data.polyline);
    document.getElementById("loss-max").textContent = fixed(data.loss_max);
    document.getElementById("loss-min").textContent = fixed(data.loss_min);
    document.getElementById("step-max").textContent = String(data.step_max);
    document.getElementById("chart-desc").textContent =
      `${data.points} point(s); loss from ${fixed(data.loss_max)} down to ${fixed(data.loss_min)} over ${data.step_max} steps`;
  }

  function start() {
    const section = document.getElementById("training");
    if (!section || section.dataset.training !== "yes") return;
    const url = section.dataset.progressUrl;
    const every = Number(section.dataset.pollMs) || 2000;
    const poll = async () => {
      let data;
      try {
        const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        data = await response.json();
      } catch (err) {
        // A dropped connection or an expired session: say so and keep trying at the same pace.
        document.getElementById("progress-text").textContent = `Progress not updated (${err.message}); retrying.`;
        setTimeout(poll, every);
        return;
      }
      draw(data);
      if (data.training) setTimeout(poll, every);
      else section.dataset.training = "no";
    };
    setTimeout(poll, every);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
