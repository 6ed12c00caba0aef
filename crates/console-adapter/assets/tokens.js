// The tokens screen: the table (filter, sort, status) and every change a
// person can make to a token, each through the public API.

import { api } from "./api.js";
import { STATUS_LABEL, element, status, timeCell } from "./format.js";
import { dialogMessage, expiryPicker, notice, openFor, showError } from "./dialogs.js";

const $ = (id) => document.getElementById(id);

let tokens = [];
let sort = { key: "createdAt", descending: true };
let current = null; // the token a dialog acts on
let createExpiry;
let changeExpiry;

const typeLabel = (type) => (type === "client" ? "backend" : type);

function matches(token, filter) {
  if (filter.type && token.type !== filter.type) return false;
  if (filter.environment && token.environment !== filter.environment) return false;
  if (filter.status && token.status !== filter.status) return false;
  if (!filter.text) return true;
  const haystack = `${token.tokenName} ${token.project} ${token.environment} ${typeLabel(token.type)} ${token.secret}`;
  return haystack.toLowerCase().includes(filter.text);
}

// One collator for every comparison: building one per call made sorting
// 2,000 rows take the better part of a second.
const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });

function compare(a, b) {
  const x = a[sort.key] ?? "";
  const y = b[sort.key] ?? "";
  // Never-expiring tokens sort after every date; unseen ones before.
  if (sort.key === "expiresAt" && x !== y && (x === "" || y === "")) return x === "" ? 1 : -1;
  return collator.compare(String(x), String(y));
}

// Rows built once per loaded token (and status): filtering and sorting only
// reorder them.
let built = new WeakMap();

function rowFor(token) {
  const cached = built.get(token);
  if (cached && cached.status === token.status) return cached.tr;
  const tr = row(token);
  built.set(token, { status: token.status, tr });
  return tr;
}

/** One action button; the table's single click listener reads `data-action`. */
function actionButton(action, text, label, className = "small") {
  const button = element("button", { type: "button", className, textContent: text });
  button.dataset.action = action;
  button.setAttribute("aria-label", label);
  return button;
}

function row(token) {
  const expire = actionButton("expire-dialog", "Expire now", `Expire ${token.tokenName} now`);
  expire.disabled = token.status === "expired";
  const actions = element(
    "td",
    { className: "actions-cell" },
    actionButton("expiry-dialog", "Expiry…", `Change expiry of ${token.tokenName}`),
    expire,
    actionButton("delete-dialog", "Delete", `Delete ${token.tokenName}`, "small danger"),
  );
  const tr = element(
    "tr",
    {},
    element("th", { scope: "row", className: "name" }, token.tokenName, element("small", { textContent: token.secret })),
    element("td", {}, element("span", { className: `badge ${token.status}`, textContent: STATUS_LABEL[token.status] })),
    element("td", { textContent: typeLabel(token.type) }),
    element("td", { textContent: token.projects.includes("*") ? "all" : token.projects.join(", ") }),
    element("td", { textContent: token.environment }),
    element("td", {}, timeCell(token.createdAt, "—")),
    element("td", {}, timeCell(token.expiresAt, "never")),
    element("td", {}, timeCell(token.seenAt, "never")),
    actions,
  );
  tr.dataset.selector = token.secret;
  // The narrow layout shows each cell with its column's name.
  const labels = ["Status", "Type", "Projects", "Environment", "Created", "Expires", "Last seen"];
  tr.querySelectorAll("td").forEach((td, i) => {
    if (labels[i]) td.dataset.label = labels[i];
  });
  return tr;
}

/** Renders the table from memory: filtering and sorting ask no server. */
export function render() {
  const filter = {
    text: $("filter-text").value.trim().toLowerCase(),
    type: $("filter-type").value,
    environment: $("filter-environment").value,
    status: $("filter-status").value,
  };
  const now = Date.now();
  for (const token of tokens) token.status = status(token, now);
  const shown = tokens.filter((token) => matches(token, filter)).sort(compare);
  if (sort.descending) shown.reverse();
  const body = $("tokens-body");
  const fragment = document.createDocumentFragment();
  for (const token of shown) fragment.append(rowFor(token));
  body.replaceChildren(fragment);
  $("token-count").textContent =
    shown.length === tokens.length ? `${tokens.length} tokens` : `${shown.length} of ${tokens.length} tokens`;
  $("tokens-empty").hidden = shown.length > 0;
  for (const th of document.querySelectorAll("#tokens-table th[data-key]")) {
    th.setAttribute(
      "aria-sort",
      th.dataset.key === sort.key ? (sort.descending ? "descending" : "ascending") : "none",
    );
  }
}

export function show(list) {
  tokens = list;
  built = new WeakMap();
  render();
}

export async function reload() {
  try {
    show((await api.tokens()).tokens);
  } catch (error) {
    showError(error);
  }
}

function open(id, token) {
  current = token;
  const dialog = $(id);
  if (id === "expiry-dialog") changeExpiry.reset();
  if (id === "delete-dialog") {
    $("delete-confirm").value = "";
    $("delete-submit").disabled = true;
  }
  openFor(dialog, token);
}

/** Runs `action` for a dialog's submit; on failure the dialog stays open with the error. */
function onSubmit(formId, action) {
  const form = $(formId);
  const dialog = form.closest("dialog");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      await action(dialog);
    } catch (error) {
      dialogMessage(dialog, error);
    } finally {
      submit.disabled = formId === "delete-form" && $("delete-confirm").value !== current?.tokenName;
    }
  });
}

function fillOptions(select, values, { keepFirst }) {
  const first = keepFirst ? [select.options[0]] : [];
  select.replaceChildren(
    ...first,
    ...values.map((value) => element("option", { value, textContent: value })),
  );
}

/** Loads environments and projects for the create form and the filters. */
export async function loadReferenceData() {
  const [environments, projects] = await Promise.all([api.environments(), api.projects()]);
  const names = environments.environments.map((e) => e.name);
  fillOptions($("filter-environment"), names, { keepFirst: true });
  fillOptions($("create-environment"), names, { keepFirst: false });
  $("create-projects").replaceChildren(
    ...projects.projects.map((project) =>
      element(
        "label",
        { className: "inline" },
        element("input", { type: "checkbox", value: project.id, name: "create-project" }),
        ` ${project.name || project.id}`,
      ),
    ),
  );
}

function createBody() {
  const body = {
    tokenName: $("create-name").value,
    type: $("create-type").value,
    environment: $("create-environment").value,
  };
  if ($("create-chosen").checked) {
    body.projects = [...document.querySelectorAll("input[name=create-project]:checked")].map((c) => c.value);
    if (body.projects.length === 0) throw new Error("Choose at least one project, or all projects.");
  } else {
    body.projects = ["*"];
  }
  const expiresAt = createExpiry.read();
  if (expiresAt instanceof Error) throw expiresAt;
  if (expiresAt) body.expiresAt = expiresAt;
  return body;
}

function showSecret(created) {
  $("secret-name").textContent = created.tokenName;
  $("secret-value").value = created.secret;
  $("secret-copied").textContent = "";
  $("secret-dialog").showModal();
  $("secret-value").select();
}

function forgetSecret() {
  $("secret-value").value = "";
  $("secret-name").textContent = "";
  $("secret-copied").textContent = "";
}

async function copySecret() {
  const input = $("secret-value");
  input.select();
  try {
    await navigator.clipboard.writeText(input.value);
    $("secret-copied").textContent = "Copied to the clipboard.";
  } catch {
    // Without clipboard permission the selection still copies.
    const copied = document.execCommand("copy");
    $("secret-copied").textContent = copied
      ? "Copied to the clipboard."
      : "Copying is blocked here: the credential is selected, press Ctrl+C.";
  }
}

export function wire() {
  // `change` as well: selects and a cleared field may not send `input`.
  for (const id of ["filter-text", "filter-type", "filter-environment", "filter-status"]) {
    $(id).addEventListener("input", render);
    $(id).addEventListener("change", render);
  }
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  // One listener for every row's buttons: 2,000 rows render without 6,000 closures.
  $("tokens-body").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const selector = button.closest("tr").dataset.selector;
    const token = tokens.find((t) => t.secret === selector);
    if (token) open(button.dataset.action, token);
  });
  for (const th of document.querySelectorAll("#tokens-table th[data-key]")) {
    th.querySelector("button").addEventListener("click", () => {
      const key = th.dataset.key;
      sort = { key, descending: sort.key === key ? !sort.descending : false };
      render();
    });
  }

  createExpiry = expiryPicker($("create-expiry"), $("create-expiry-at"), { withNever: true });
  changeExpiry = expiryPicker($("expiry-preset"), $("expiry-at"), { withNever: false });
  for (const radio of document.querySelectorAll("input[name=create-scope]")) {
    radio.addEventListener("change", () => {
      $("create-projects").hidden = !$("create-chosen").checked;
    });
  }
  $("new-token").addEventListener("click", () => {
    $("create-form").reset();
    createExpiry.reset();
    $("create-projects").hidden = true;
    dialogMessage($("create-dialog"), null);
    $("create-dialog").showModal();
  });
  onSubmit("create-form", async (dialog) => {
    const created = await api.create(createBody());
    dialog.close();
    showSecret(created);
    await reload();
  });
  $("secret-copy").addEventListener("click", copySecret);
  // The credential leaves the page as soon as the panel closes: at once on
  // the close button (the dialog's own close event comes a task later), and
  // on any other way out (Escape).
  $("secret-close").addEventListener("click", forgetSecret);
  $("secret-dialog").addEventListener("close", forgetSecret);

  onSubmit("expiry-form", async (dialog) => {
    const expiresAt = changeExpiry.read();
    if (expiresAt instanceof Error) throw expiresAt;
    await api.setExpiry(current.secret, expiresAt);
    dialog.close();
    notice(`Expiry of ${current.tokenName} changed.`);
    await reload();
  });
  onSubmit("expire-form", async (dialog) => {
    await api.setExpiry(current.secret, new Date().toISOString());
    dialog.close();
    notice(`${current.tokenName} expired.`);
    await reload();
  });
  $("delete-confirm").addEventListener("input", () => {
    $("delete-submit").disabled = $("delete-confirm").value !== current?.tokenName;
  });
  onSubmit("delete-form", async (dialog) => {
    if ($("delete-confirm").value !== current.tokenName) throw new Error("The name does not match.");
    await api.remove(current.secret);
    dialog.close();
    notice(`${current.tokenName} deleted.`);
    await reload();
  });
}
