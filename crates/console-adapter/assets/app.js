// The console's start: sign-in and sign-out, which screen shows, and the
// readiness badge. Every screen talks to the server through api.js only.

import { ApiError, api, credential, whenUnauthorized } from "./api.js";
import * as audit from "./audit.js";
import { clearError, notice, showError, wireCloseButtons } from "./dialogs.js";
import * as tokens from "./tokens.js";

const $ = (id) => document.getElementById(id);
const READY_EVERY_MS = 30000;

function signInMessage(text) {
  $("signin-message").textContent = text;
  $("signin-message").hidden = !text;
}

/** Which view shows: sign-in without a credential, else the hash's screen. */
function route() {
  const signedIn = Boolean(credential.get());
  const screen = location.hash === "#audit" ? "audit" : "tokens";
  $("signin-view").hidden = signedIn;
  $("nav").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("tokens-view").hidden = !signedIn || screen !== "tokens";
  $("audit-view").hidden = !signedIn || screen !== "audit";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.hash === `#${screen}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!signedIn) {
    $("credential").focus();
    return;
  }
  if (screen === "audit") audit.load();
  else tokens.reload();
}

/** Forgets the credential and everything shown with it. */
function signOut(message) {
  credential.clear();
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  tokens.show([]);
  $("audit-list").replaceChildren();
  clearError();
  notice("");
  signInMessage(message);
  route();
}

async function signIn(event) {
  event.preventDefault();
  const secret = $("credential").value.trim();
  if (!secret) {
    signInMessage("Enter an admin credential.");
    return;
  }
  $("signin-button").disabled = true;
  try {
    const list = await api.tokens(secret);
    credential.set(secret);
    $("credential").value = "";
    signInMessage("");
    tokens.show(list.tokens);
    await tokens.loadReferenceData();
    route();
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) {
      signInMessage("This is not an admin token: only admin tokens can use the console.");
    } else if (error instanceof ApiError && error.status === 401) {
      signInMessage(`This credential was not accepted: ${error.message}`);
    } else {
      signInMessage(error.message);
    }
  } finally {
    $("signin-button").disabled = false;
  }
}

async function showReadiness() {
  const { ok, message } = await api.ready();
  const badge = $("ready");
  badge.className = `ready ${ok ? "good" : "bad"}`;
  badge.textContent = ok ? "Ready" : `Not ready${message ? `: ${message}` : ""}`;
  badge.title = ok ? "GET /ready answers 200" : "GET /ready does not answer 200";
}

function start() {
  wireCloseButtons();
  tokens.wire();
  audit.wire();
  $("signin-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut("You are signed out."));
  whenUnauthorized((error) =>
    signOut(`Your session ended: the server refused the credential (${error.message}). Sign in again.`),
  );
  window.addEventListener("hashchange", route);
  if (credential.get()) tokens.loadReferenceData().catch(showError);
  route();
  showReadiness();
  setInterval(showReadiness, READY_EVERY_MS);
}

start();
