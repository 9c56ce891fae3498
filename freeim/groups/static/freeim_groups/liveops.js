/* freeim.groups' live-ops page (admin): every few seconds, ask the page's JSON view what it shows and update the
   page in place. It keeps asking whatever happens: while the store (or the server) cannot answer, a notice says
   so and the last figures stay, greyed. */
"use strict";
(() => {
  const page = document.getElementById("liveops");
  const byId = (id) => document.getElementById(id);

  // Each row is keyed by its name (a node's, a group's): it stays the same element while it is listed.
  function fill(table, rows) {
    const body = table.tBodies[0];
    const old = new Map(Array.from(body.rows, (tr) => [tr.dataset.key, tr]));
    rows.forEach((row, index) => {
      const tr = old.get(row.key) || document.createElement("tr");
      old.delete(row.key);
      tr.dataset.key = row.key;
      tr.dataset.state = row.state;
      row.cells.forEach((text, column) => {
        const td = tr.cells[column] || tr.insertCell();
        if (td.textContent !== text) td.textContent = text;
      });
      if (body.rows[index] !== tr) body.insertBefore(tr, body.rows[index] || null);
    });
    old.forEach((tr) => tr.remove());
  }

  function show(view) {
    byId("liveops-summary").textContent = view.summary;
    fill(byId("liveops-nodes"), view.nodes);
    byId("liveops-nodes-none").hidden = view.nodes.length > 0;
    byId("liveops-events").textContent = view.events;
    fill(byId("liveops-groups"), view.groups);
    byId("liveops-groups").hidden = view.groups.length === 0;
    byId("liveops-groups-none").textContent = view.no_groups;
    byId("liveops-groups-none").hidden = !view.no_groups;
    stamp();
  }

  function stamp() {
    byId("liveops-updated").textContent = new Date().toLocaleTimeString();
  }

  function notice(text) {
    byId("liveops-notice").textContent = text;
    byId("liveops-notice").hidden = !text;
    page.classList.toggle("stale", Boolean(text));
  }

  async function refresh() {
    try {
      const response = await fetch(page.dataset.source, {
        credentials: "same-origin", cache: "no-store", headers: {Accept: "application/json"}});
      if (!(response.headers.get("Content-Type") || "").startsWith("application/json")) {
        // A login page (the session ended) or a refusal: only a person can mend that.
        notice(`The server answered ${response.status} without the page's data: log in as staff again and reload.`);
        return;
      }
      const view = await response.json();
      if (view.error) {
        notice(view.error);
      } else {
        show(view);
        notice("");
      }
    } catch (error) {
      notice(`The server cannot be reached (${error.message}); trying again.`);
    } finally {
      setTimeout(refresh, Number(page.dataset.every));
    }
  }

  stamp();  // the page came with the figures of now, in the server's clock: this is the reader's
  setTimeout(refresh, Number(page.dataset.every));
})();
