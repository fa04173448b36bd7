// Mailroom's pages work without this script; with it, dropdowns save on
// change, the connect dialog shows one provider at a time and fills known
// servers, and sync status refreshes by itself.
"use strict";

// Dialog buttons (`commandfor`/`command`) for browsers without invoker commands.
if (!("command" in HTMLButtonElement.prototype)) {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[commandfor]");
    const dialog = button && document.getElementById(button.getAttribute("commandfor"));
    if (!dialog) return;
    const command = button.getAttribute("command");
    if (command === "show-modal") dialog.showModal();
    if (command === "close") dialog.close();
  });
}

function announce(text) {
  const region = document.getElementById("saved");
  if (region) region.textContent = text;
}

// Replace the account table with the server's, unless the user is in the middle of something.
async function refreshAccounts() {
  if (document.querySelector("dialog[open]")) return;
  const response = await fetch("/emails", { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = page.getElementById("accounts");
  const current = document.getElementById("accounts");
  if (!fresh || !current) return;
  const focused = document.activeElement && document.activeElement.id;
  // Status and actions only, so a dropdown being used keeps its state and focus.
  for (const cell of current.querySelectorAll("[data-status], [data-actions]")) {
    const key = cell.hasAttribute("data-status") ? "data-status" : "data-actions";
    const next = fresh.querySelector(`[${key}="${cell.getAttribute(key)}"]`);
    if (next && next.innerHTML !== cell.innerHTML) cell.innerHTML = next.innerHTML;
  }
  if (current.querySelectorAll("tbody tr").length !== fresh.querySelectorAll("tbody tr").length) {
    current.innerHTML = fresh.innerHTML;
    wireAutosave(current);
  }
  if (focused) document.getElementById(focused)?.focus();
}

function wireAutosave(root) {
  for (const form of root.querySelectorAll("form[data-autosave]")) {
    form.addEventListener("change", async () => {
      const label = form.querySelector("label")?.textContent.trim() || "Setting";
      announce("Saving…");
      try {
        const response = await fetch(form.action, {
          method: "POST",
          body: new URLSearchParams(new FormData(form)),
        });
        if (!response.ok) throw new Error(String(response.status));
        announce(`Saved: ${label}.`);
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        // Choosing one preferred account clears the others: take the server's table.
        for (const select of document.querySelectorAll("#accounts select")) {
          const fresh = page.getElementById(select.id);
          if (fresh && select !== document.activeElement) select.value = fresh.value;
        }
      } catch (error) {
        announce(`Not saved (${error.message}): reload the page and try again.`);
      }
    });
  }
}

function wireConnectDialog() {
  const choices = document.querySelectorAll("[data-provider-choice]");
  const show = (name) => {
    for (const section of document.querySelectorAll("section[data-provider]")) {
      section.hidden = section.dataset.provider !== name;
    }
  };
  for (const choice of choices) {
    choice.addEventListener("change", () => show(choice.value));
    if (choice.checked) show(choice.value);
  }
  for (const form of document.querySelectorAll("form[data-presets]")) {
    for (const input of form.querySelectorAll("input")) {
      input.addEventListener("input", () => { input.dataset.edited = "1"; });
    }
    const address = form.querySelector("input[name=address]");
    address?.addEventListener("change", async () => {
      const query = new URLSearchParams({ provider: form.dataset.presets, address: address.value });
      const response = await fetch(`/emails/presets?${query}`);
      if (!response.ok) return;
      const values = await response.json();
      for (const [name, value] of Object.entries(values)) {
        const input = form.querySelector(`input[name="${name}"]`);
        if (input && !input.dataset.edited) input.value = value;
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const dialog of document.querySelectorAll("dialog[data-open]")) dialog.showModal();
  wireAutosave(document);
  wireConnectDialog();
  if (document.getElementById("accounts")) setInterval(refreshAccounts, 2000);
});
