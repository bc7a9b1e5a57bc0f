// Renders GET /apis/{name}/changelog as a list of changes, breaking ones first.
(async function () {
  const box = document.getElementById("changelog");
  if (!box) return;
  const response = await fetch("/apis/" + encodeURIComponent(box.dataset.api) + "/changelog");
  if (!response.ok) { box.textContent = "No changelog (HTTP " + response.status + ")."; return; }
  const body = await response.json();
  box.textContent = "";
  for (const log of body.changelogs) {
    const title = document.createElement("h2");
    title.textContent = log.from_version + " (" + log.from_label + ") → " + log.to_version + " (" + log.to_label + ")"
      + (log.breaking ? " — breaking" : "");
    box.appendChild(title);
    const list = document.createElement("ul");
    list.className = "changes";
    const order = {breaking: 0, warning: 1, info: 2};
    const changes = [...log.changes].sort((a, b) => (order[a.severity] ?? 3) - (order[b.severity] ?? 3));
    for (const change of changes) {
      const item = document.createElement("li");
      item.dataset.severity = change.severity;
      item.textContent = "[" + change.severity + "] " + change.location + ": " + change.description;
      list.appendChild(item);
    }
    if (!changes.length) { const item = document.createElement("li"); item.textContent = "No changes."; list.appendChild(item); }
    box.appendChild(list);
  }
})();
