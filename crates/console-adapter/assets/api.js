// The console's only door to the server: the public JSON API, with the admin
// credential from sessionStorage (never localStorage, a cookie or a URL).

const KEY = "keywarden.credential";

export const credential = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An answer other than 2xx, carrying the server's own message. */
export class ApiError extends Error {
  constructor(status, body) {
    const text = (body && body.message) || `The server answered ${status}.`;
    const details = ((body && body.details) || [])
      .map((d) => d.message)
      .filter((m) => m && m !== text);
    super(details.length ? `${text} ${details.join(" ")}` : text);
    this.status = status;
    this.name = (body && body.name) || "ApiError";
  }
}

let onUnauthorized = () => {};

/** Called when any request is refused with 401: the session is over. */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * One request to the API. `secret` overrides the stored credential (sign-in
 * tries a credential before keeping it).
 */
export async function request(method, path, { body, secret } = {}) {
  const headers = { Accept: "application/json" };
  const key = secret ?? credential.get();
  if (key) headers.Authorization = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
  } catch (cause) {
    throw new ApiError(0, { message: `The server cannot be reached (${cause.message}).` });
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { message: text.slice(0, 300) };
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed);
    if (response.status === 401 && secret === undefined) onUnauthorized(error);
    throw error;
  }
  return parsed;
}

export const api = {
  tokens: (secret) => request("GET", "/api/admin/api-tokens", { secret }),
  environments: () => request("GET", "/api/admin/environments"),
  projects: () => request("GET", "/api/admin/projects"),
  create: (body) => request("POST", "/api/admin/api-tokens", { body }),
  setExpiry: (selector, expiresAt) =>
    request("PUT", `/api/admin/api-tokens/${encodeURIComponent(selector)}`, { body: { expiresAt } }),
  remove: (selector) => request("DELETE", `/api/admin/api-tokens/${encodeURIComponent(selector)}`),
  searchEvents: (params) => request("GET", `/api/admin/search/events?${params}`),
  ready: async () => {
    try {
      const response = await fetch("/ready", { cache: "no-store", credentials: "omit" });
      const body = await response.json().catch(() => ({}));
      return { ok: response.ok, message: body.message || "" };
    } catch (cause) {
      return { ok: false, message: cause.message };
    }
  },
};
