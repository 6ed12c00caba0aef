// The audit trail: GET /api/admin/search/events (lifecycle.md §3), newest
// first, filtered and paged by the server.

import { api } from "./api.js";
import { element, timeCell, utc } from "./format.js";
import { showError } from "./dialogs.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;
let offset = 0;
let total = 0;
let latest = 0; // answers to older requests are dropped

/** The query string, in the operators the search route takes. */
function params() {
  const query = new URLSearchParams();
  const type = $("audit-type").value;
  const by = $("audit-by").value.trim();
  const text = $("audit-query").value.trim();
  if (type) query.set("type", `IS:${type}`);
  if (by) query.set("createdBy", `IS:${by}`);
  if ($("audit-from").value) query.set("from", `IS:${$("audit-from").value}`);
  if ($("audit-to").value) query.set("to", `IS:${$("audit-to").value}`);
  if (text) query.set("query", text);
  query.set("offset", String(offset));
  query.set("limit", String(PAGE));
  return query;
}

// The token name heads each event already.
const FIELDS = ["type", "projects", "environment", "expiresAt"];

function shown(field, value) {
  if (value === null || value === undefined) return field === "expiresAt" ? "never" : "—";
  if (Array.isArray(value)) return value.join(", ");
  if (field === "expiresAt") return utc(value);
  return String(value);
}

/** What changed: every field that differs between preData and data. */
function change(event) {
  const before = event.preData;
  const after = event.data;
  const list = element("dl", { className: "change" });
  for (const field of FIELDS) {
    const was = before ? shown(field, before[field]) : null;
    const is = after ? shown(field, after[field]) : null;
    if (before && after && was === is) continue;
    const value = element("dd");
    if (was !== null && is !== null) {
      value.append(element("del", { textContent: was }), " → ", element("ins", { textContent: is }));
    } else if (is !== null) {
      value.append(element("ins", { textContent: is }));
    } else {
      value.append(element("del", { textContent: was }));
    }
    list.append(element("div", {}, element("dt", { textContent: field }), value));
  }
  return list;
}

function item(event) {
  const token = event.data || event.preData || {};
  return element(
    "li",
    { className: `event ${event.type}` },
    element(
      "div",
      { className: "event-head" },
      element("span", { className: "event-type", textContent: event.type }),
      element("strong", { textContent: token.tokenName ?? "" }),
      element("span", { className: "muted", textContent: `by ${event.createdBy}` }),
      timeCell(event.createdAt, ""),
    ),
    change(event),
  );
}

export async function load() {
  const ticket = ++latest;
  try {
    const answer = await api.searchEvents(params());
    if (ticket !== latest) return;
    total = answer.total;
    $("audit-list").replaceChildren(...answer.events.map(item));
    $("audit-empty").hidden = answer.events.length > 0;
    const last = offset + answer.events.length;
    $("audit-range").textContent = total ? `${offset + 1}–${last} of ${total}` : "0 events";
    $("audit-prev").disabled = offset === 0;
    $("audit-next").disabled = last >= total;
  } catch (error) {
    showError(error);
  }
}

export function wire() {
  $("audit-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    offset = 0;
    load();
  });
  $("audit-type").addEventListener("change", () => {
    offset = 0;
    load();
  });
  $("audit-prev").addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE);
    load();
  });
  $("audit-next").addEventListener("click", () => {
    offset += PAGE;
    load();
  });
}
