// Acknowledge buttons post JSON with fetch: the API takes nothing else, so
// a cross-site form cannot act. The page reloads to show the result.
"use strict";
document.addEventListener("submit", async (ev) => {
  const form = ev.target.closest("form.ack");
  if (!form) return;
  ev.preventDefault();
  const status = form.querySelector(".status");
  status.textContent = "";
  const body = {
    vcenter: form.dataset.vcenter,
    snapshot_id: form.dataset.snapshot,
    note: form.elements.note.value,
    until: form.elements.until.value,
  };
  try {
    const res = await fetch(form.action, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    if (res.ok) {
      location.reload();
      return;
    }
    const err = await res.json().catch(() => ({ error: res.statusText }));
    status.textContent = err.error || res.statusText;
  } catch (e) {
    status.textContent = String(e);
  }
});
