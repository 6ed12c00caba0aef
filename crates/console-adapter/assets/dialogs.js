// What every screen shares: the page-wide error and notice, and the modal
// dialogs (each with its own visible error line).

import { EXPIRY_PRESETS, chosenExpiry } from "./format.js";

const $ = (id) => document.getElementById(id);

/** Shows an API error (or any message) in the page-wide alert. */
export function showError(error) {
  // A refused credential ends the session: sign-in says so instead.
  if (error && error.status === 401) return;
  $("error-text").textContent = error instanceof Error ? error.message : String(error);
  $("error").hidden = false;
}

export function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

export function notice(text) {
  const box = $("notice");
  box.textContent = text;
  box.hidden = !text;
}

/** A dialog's error line: shown with the server's text, or hidden. */
export function dialogMessage(dialog, error) {
  const line = dialog.querySelector(".message");
  line.textContent = error ? error.message || String(error) : "";
  line.hidden = !error;
}

/** Opens `dialog` for a token (its name fills every `.token-name`). */
export function openFor(dialog, token) {
  notice(""); // the last change's note is stale once a new one starts
  for (const slot of dialog.querySelectorAll(".token-name")) slot.textContent = token.tokenName;
  dialogMessage(dialog, null);
  dialog.showModal();
}

/**
 * Wires a preset `<select>` and its datetime-local input (shown for
 * "custom"); `withNever` offers "never". Returns a reader of the choice.
 */
export function expiryPicker(select, input, { withNever }) {
  select.replaceChildren(
    ...EXPIRY_PRESETS.filter(([value]) => withNever || value !== "never").map(([value, label]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      return option;
    }),
  );
  const custom = select.form.querySelectorAll(".expiry-custom");
  const sync = () => {
    for (const node of custom) node.hidden = select.value !== "custom";
  };
  select.addEventListener("change", sync);
  sync();
  return {
    read: () => chosenExpiry(select.value, input.value),
    reset: () => {
      select.value = select.options[0].value;
      input.value = "";
      sync();
    },
  };
}

/** Every `[data-close]` button closes its dialog; Esc does already. */
export function wireCloseButtons() {
  for (const button of document.querySelectorAll("dialog [data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  $("error-close").addEventListener("click", clearError);
}
