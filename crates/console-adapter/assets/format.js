// Dates and statuses as people read them: relative, with the exact UTC time
// one hover or focus away.

const DAY = 86400000;
const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const UNITS = [
  ["year", 365 * DAY],
  ["month", 30 * DAY],
  ["day", DAY],
  ["hour", 3600000],
  ["minute", 60000],
];

export function relativeTime(iso, now = Date.now()) {
  const delta = Date.parse(iso) - now;
  for (const [unit, size] of UNITS) {
    if (Math.abs(delta) >= size) return relative.format(Math.round(delta / size), unit);
  }
  return delta >= 0 ? "in a moment" : "just now";
}

export function utc(iso) {
  return new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** A `<time>` showing `iso` relatively, or `empty` for a null date. */
export function timeCell(iso, empty) {
  if (!iso) {
    const span = document.createElement("span");
    span.className = "muted";
    span.textContent = empty;
    return span;
  }
  const time = document.createElement("time");
  time.dateTime = iso;
  time.textContent = relativeTime(iso);
  time.title = utc(iso);
  time.dataset.utc = utc(iso);
  time.tabIndex = 0;
  return time;
}

/** active, expiring (within 7 days) or expired. */
export function status(token, now = Date.now()) {
  if (!token.expiresAt) return "active";
  const left = Date.parse(token.expiresAt) - now;
  if (left <= 0) return "expired";
  return left <= 7 * DAY ? "expiring" : "active";
}

export const STATUS_LABEL = { active: "active", expiring: "expiring soon", expired: "expired" };

/** Expiry choices shared by create and change-expiry. */
export const EXPIRY_PRESETS = [
  ["30", "in 30 days"],
  ["90", "in 90 days"],
  ["365", "in 365 days"],
  ["never", "never"],
  ["custom", "at a chosen date and time…"],
];

/**
 * The chosen expiry as RFC 3339 UTC, `null` for never, or an Error when a
 * custom date-time is missing. `local` is a datetime-local value, read in the
 * person's time zone.
 */
export function chosenExpiry(preset, local, now = Date.now()) {
  if (preset === "never") return null;
  if (preset === "custom") {
    const at = new Date(local);
    if (!local || Number.isNaN(at.getTime())) return new Error("Choose a date and time.");
    return at.toISOString();
  }
  return new Date(now + Number(preset) * DAY).toISOString();
}

export function element(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}
