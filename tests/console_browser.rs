//! The admin console in a real browser, end to end against the real
//! application on a temporary database: sign-in, a token's whole life
//! (create, one-time credential, expiry, expire, delete), the audit trail,
//! sign-out, and that the signed-in path raises no browser error and loads
//! nothing from another origin. Screenshots land under `target/`.

mod browser;

use browser::Browser;
use keywarden_test_support::app::{spawn_app, spawn_with, TestApp};
use keywarden_test_support::http::encode;
use serde_json::{json, Value};

/// Chromium runs in this zone, so a chosen local time is not already UTC.
const ZONE: &str = "Asia/Kolkata";
const CREDENTIAL_KEY: &str = "keywarden.credential";

async fn until_rows(browser: &Browser, count: usize) {
    browser
        .until(&format!(
            "document.querySelectorAll('#tokens-body tr').length === {count}"
        ))
        .await;
}

async fn session_storage(browser: &Browser) -> Value {
    browser
        .js(
            "return {session: {...sessionStorage}, local: localStorage.length, cookie: document.cookie, url: location.href};",
            vec![],
        )
        .await
}

/// A few tokens in every state, so the table has something to show.
async fn seed(app: &TestApp) {
    let day = chrono::Duration::days(1);
    let now = chrono::Utc::now();
    for (name, kind, environment, expires) in [
        (
            "checkout-service",
            "backend",
            "production",
            Some(now + day * 200),
        ),
        ("storefront web", "frontend", "production", None),
        (
            "nightly batch",
            "backend",
            "development",
            Some(now + day * 3),
        ),
        (
            "old importer",
            "backend",
            "development",
            Some(now - day * 12),
        ),
    ] {
        let mut body = json!({"tokenName": name, "type": kind, "environment": environment});
        if let Some(at) = expires {
            body["expiresAt"] = json!(at.to_rfc3339());
        }
        app.create(body).await;
    }
}

#[actix_web::test]
async fn signing_in_takes_only_an_admin_credential_and_signing_out_forgets_it() {
    let first = "*:*.browser-test-admin-one-0123456789abcdef";
    let second = "*:*.browser-test-admin-two-0123456789abcdef";
    let app = spawn_with(
        &[("INIT_ADMIN_API_TOKENS", &format!("{first},{second}"))],
        |_| {},
    )
    .await;
    let Some(browser) = browser::open(app.port, ZONE).await else {
        return;
    };
    let backend = {
        let response = app
            .post_json(
                "/api/admin/api-tokens",
                first,
                &json!({"tokenName": "a backend", "type": "backend"}),
            )
            .await;
        assert_eq!(response.status, 201, "{}", response.body);
        response.json()["secret"].as_str().unwrap().to_string()
    };

    browser.sign_in("*:*.not-a-credential-anyone-has").await;
    browser
        .until("!document.getElementById('signin-message').hidden")
        .await;
    assert!(
        browser
            .text("#signin-message")
            .await
            .contains("not accepted"),
        "{}",
        browser.text("#signin-message").await
    );
    assert_eq!(session_storage(&browser).await["session"], json!({}));
    browser.screenshot("sign-in").await;
    // The browser log is read for real: the refused sign-in is in it.
    let errors = browser.console_errors().await;
    assert!(errors.iter().any(|e| e.contains("401")), "{errors:#?}");

    browser.sign_in(&backend).await;
    browser
        .until(
            "document.getElementById('signin-message').textContent.includes('not an admin token')",
        )
        .await;
    assert_eq!(session_storage(&browser).await["session"], json!({}));
    assert!(browser
        .find("#signin-view")
        .await
        .is_displayed()
        .await
        .unwrap());

    browser.sign_in(second).await;
    browser
        .until("!document.getElementById('tokens-view').hidden")
        .await;
    let stored = session_storage(&browser).await;
    assert_eq!(stored["session"][CREDENTIAL_KEY], second);
    assert_eq!(stored["local"], 0, "nothing in localStorage");
    assert_eq!(stored["cookie"], "", "no cookie");
    assert!(
        !stored["url"].as_str().unwrap().contains("admin-two"),
        "{stored}"
    );
    assert_eq!(
        browser.prop("#credential", "value").await.as_deref(),
        Some("")
    );

    // A credential that stops working mid-session returns to sign-in.
    let expired = app
        .put_expiry(
            &format!("/api/admin/api-tokens/{}", encode(second)),
            first,
            "2000-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(expired.status, 200, "{}", expired.body);
    browser.click("#nav-audit").await;
    browser
        .until("!document.getElementById('signin-view').hidden")
        .await;
    assert!(browser
        .text("#signin-message")
        .await
        .contains("session ended"));
    assert_eq!(session_storage(&browser).await["session"], json!({}));

    browser.sign_in(first).await;
    browser
        .until("!document.getElementById('sign-out').hidden")
        .await;
    browser.click("#sign-out").await;
    browser
        .until("!document.getElementById('signin-view').hidden")
        .await;
    let stored = session_storage(&browser).await;
    assert_eq!(stored["session"], json!({}), "signed out: {stored}");
    assert!(browser.text("#signin-message").await.contains("signed out"));
    assert_eq!(
        browser
            .js(
                "return document.querySelectorAll('#tokens-body tr').length;",
                vec![]
            )
            .await,
        0,
        "nothing shown with the credential stays"
    );
}

#[actix_web::test]
async fn a_token_lives_and_dies_in_the_console_without_a_browser_error() {
    let app = spawn_app().await;
    seed(&app).await;
    let Some(browser) = browser::open(app.port, ZONE).await else {
        return;
    };
    browser.sign_in(&app.admin).await;
    until_rows(&browser, 5).await;
    assert_eq!(browser.text("#token-count").await, "5 tokens");
    assert_eq!(
        browser.text("#tokens-body .badge.expiring").await,
        "expiring soon"
    );
    browser.screenshot("tokens").await;

    // Filter and sort, in memory.
    browser.select("#filter-status", "expired").await;
    until_rows(&browser, 1).await;
    assert!(browser.text("#tokens-body").await.contains("old importer"));
    browser.select("#filter-status", "").await;
    browser.fill("#filter-text", "STORE").await;
    until_rows(&browser, 1).await;
    assert_eq!(browser.text("#token-count").await, "1 of 5 tokens");
    browser.fill("#filter-text", "").await;
    until_rows(&browser, 5).await;
    browser.click("th[data-key=tokenName] button").await;
    let names = browser
        .js(
            "return [...document.querySelectorAll('#tokens-body th.name')].map(th => th.firstChild.textContent);",
            vec![],
        )
        .await;
    assert_eq!(
        names,
        json!([
            "admin",
            "checkout-service",
            "nightly batch",
            "old importer",
            "storefront web"
        ])
    );

    // Create: the credential is shown once, then gone.
    browser.click("#new-token").await;
    browser.fill("#create-name", "payments api").await;
    browser.select("#create-type", "backend").await;
    browser.select("#create-environment", "production").await;
    browser.select("#create-expiry", "90").await;
    browser.screenshot("create-form").await;
    browser.click("#create-form button[type=submit]").await;
    browser
        .until("document.getElementById('secret-dialog').open")
        .await;
    let secret = browser.prop("#secret-value", "value").await.unwrap();
    assert!(secret.starts_with("*:production.v2_"), "{secret}");
    browser.screenshot("create-credential").await;
    browser.click("#secret-copy").await;
    browser
        .until("document.getElementById('secret-copied').textContent !== ''")
        .await;
    assert_eq!(
        browser.text("#secret-copied").await,
        "Copied to the clipboard."
    );
    browser.click("#secret-close").await;
    browser
        .until("!document.getElementById('secret-dialog').open")
        .await;
    let leftovers = browser
        .js(
            "const s = arguments[0]; return [document.documentElement.outerHTML, JSON.stringify({...sessionStorage}), JSON.stringify({...localStorage}), ...[...document.querySelectorAll('input, textarea')].map(i => i.value)].some(t => t.includes(s));",
            vec![json!(secret)],
        )
        .await;
    assert_eq!(leftovers, false, "the credential lingers in the page");

    // The credential works against the API: known, not an admin (403).
    let token = app
        .tokens()
        .await
        .into_iter()
        .find(|t| t["tokenName"] == "payments api")
        .expect("created over the console");
    let selector = token["secret"].as_str().unwrap().to_string();
    assert_eq!(token["environment"], "production");
    assert_eq!(token["type"], "client");
    let expires =
        chrono::DateTime::parse_from_rfc3339(token["expiresAt"].as_str().unwrap()).unwrap();
    let days = (expires.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((89.9..=90.1).contains(&days), "expires in {days} days");
    assert_eq!(app.get("/api/admin/api-tokens", &secret).await.status, 403);
    let row = format!("#tokens-body tr[data-selector=\"{selector}\"]");
    browser.find(&row).await;

    // Change expiry to a local date and time: stored as UTC.
    browser
        .click(&format!("{row} button[aria-label^='Change expiry']"))
        .await;
    browser.select("#expiry-preset", "custom").await;
    browser
        .js(
            "document.getElementById('expiry-at').value = '2031-05-06T07:08';",
            vec![],
        )
        .await;
    browser.click("#expiry-form button[type=submit]").await;
    browser
        .until("!document.getElementById('expiry-dialog').open")
        .await;
    assert_eq!(
        app.token(&selector).await["expiresAt"],
        "2031-05-06T01:38:00.000Z",
        "07:08 in {ZONE} is 01:38 UTC"
    );
    browser
        .find(&format!("{row} time[data-utc='2031-05-06 01:38:00 UTC']"))
        .await;

    // Expire now: the credential stops working.
    browser
        .click(&format!("{row} button[aria-label^='Expire']"))
        .await;
    browser.click("#expire-form button[type=submit]").await;
    browser.find(&format!("{row} .badge.expired")).await;
    assert_eq!(app.get("/api/admin/api-tokens", &secret).await.status, 401);

    // Delete, confirmed by typing the name.
    browser
        .click(&format!("{row} button[aria-label^='Delete']"))
        .await;
    browser.fill("#delete-confirm", "payments").await;
    assert_eq!(
        browser.prop("#delete-submit", "disabled").await.as_deref(),
        Some("true")
    );
    browser.fill("#delete-confirm", "payments api").await;
    assert_eq!(
        browser.prop("#delete-submit", "disabled").await.as_deref(),
        Some("false")
    );
    browser.click("#delete-submit").await;
    browser
        .until(&format!("document.querySelector('{row}') === null"))
        .await;
    assert!(app
        .tokens()
        .await
        .iter()
        .all(|t| t["secret"] != selector.as_str()));
    assert!(browser
        .text("#notice")
        .await
        .contains("payments api deleted"));

    // The narrow layout: no sideways scrolling at 375 px.
    browser.resize(375, 812).await;
    browser
        .until("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        .await;
    browser.screenshot("narrow").await;

    let origin = browser.origin().to_string();
    let resources = browser.loaded_resources().await;
    assert!(resources.len() > 5, "{resources:?}");
    for url in &resources {
        let path = url
            .strip_prefix(&origin)
            .unwrap_or_else(|| panic!("{url} is from another origin"));
        // The console's own files, the public API and readiness: nothing else.
        assert!(
            ["/admin/", "/api/admin/", "/ready", "/favicon.ico"]
                .iter()
                .any(|allowed| path.starts_with(allowed)),
            "{url} is not the console's or the public API's"
        );
    }
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "browser errors: {errors:#?}");

    browser.click("#sign-out").await;
    browser.until("sessionStorage.length === 0").await;
}

#[actix_web::test]
async fn an_api_error_is_shown_with_the_servers_text() {
    let app = spawn_app().await;
    let Some(browser) = browser::open(app.port, ZONE).await else {
        return;
    };
    browser.sign_in(&app.admin).await;
    browser
        .until("!document.getElementById('tokens-view').hidden")
        .await;
    browser.click("#new-token").await;
    // Spaces only: the browser's `required` passes it, the server refuses it.
    browser.fill("#create-name", "   ").await;
    browser.click("#create-form button[type=submit]").await;
    browser
        .until("!document.querySelector('#create-dialog .message').hidden")
        .await;
    let message = browser.text("#create-dialog .message").await;
    let created = app
        .post_json(
            "/api/admin/api-tokens",
            &app.admin,
            &json!({"tokenName": "   ", "type": "backend"}),
        )
        .await;
    assert_eq!(created.status, 400);
    let server_text = created.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains(&server_text), "{message} / {server_text}");
    assert!(browser
        .find("#create-dialog")
        .await
        .attr("open")
        .await
        .unwrap()
        .is_some());
}

/// The contract's scale: the default limit of 2,000 tokens, filtered and
/// sorted in memory without a noticeable pause.
#[actix_web::test]
async fn two_thousand_tokens_filter_and_sort_without_lag() {
    let app = spawn_app().await;
    let Some(browser) = browser::open(app.port, ZONE).await else {
        return;
    };
    for n in 1..2000 {
        let kind = if n % 3 == 0 { "frontend" } else { "backend" };
        let response = app
            .post_json(
                "/api/admin/api-tokens",
                &app.admin,
                &json!({"tokenName": format!("service {n:04}"), "type": kind}),
            )
            .await;
        assert_eq!(response.status, 201, "{}", response.body);
    }
    browser.sign_in(&app.admin).await;
    until_rows(&browser, 2000).await;
    assert_eq!(browser.text("#token-count").await, "2000 tokens");
    // Rendering is synchronous: the time of one input event is the lag a
    // person feels.
    let timings = browser
        .js(
            r#"
            const time = (act) => { const t = performance.now(); act(); return performance.now() - t; };
            const text = document.getElementById('filter-text');
            const sortByName = document.querySelector('th[data-key=tokenName] button');
            return [
              time(() => { text.value = 'service 1'; text.dispatchEvent(new Event('input')); }),
              time(() => { text.value = ''; text.dispatchEvent(new Event('input')); }),
              time(() => sortByName.click()),
              time(() => sortByName.click()),
            ];"#,
            vec![],
        )
        .await;
    assert_eq!(browser.text("#token-count").await, "2000 tokens");
    for ms in timings.as_array().unwrap() {
        let ms = ms.as_f64().unwrap();
        eprintln!("render of 2,000 rows: {ms:.0} ms");
        // About 30 ms here; a collator per comparison made it 400.
        assert!(ms < 300.0, "{timings}: a render of 2,000 rows lags");
    }
}

/// The audit trail pages through `GET /api/admin/search/events`.
#[actix_web::test]
async fn the_audit_trail_shows_who_changed_what_page_by_page() {
    let app = spawn_app().await;
    let Some(browser) = browser::open(app.port, ZONE).await else {
        return;
    };
    // 55 creations, one update and one delete (and the bootstrap's event):
    // two pages.
    let (selector, _) = app
        .create(json!({"tokenName": "audited", "type": "backend"}))
        .await;
    for n in 0..54 {
        app.create(json!({"tokenName": format!("filler {n}"), "type": "frontend"}))
            .await;
    }
    let path = format!("/api/admin/api-tokens/{selector}");
    assert_eq!(
        app.put_expiry(&path, &app.admin, "2035-01-02T03:04:05Z")
            .await
            .status,
        200
    );
    assert_eq!(app.delete(&path, &app.admin).await.status, 200);
    let total = app.events("?limit=1000").await.len();
    assert!(total > 50, "{total} events");

    browser.sign_in(&app.admin).await;
    browser
        .until("!document.getElementById('tokens-view').hidden")
        .await;
    browser.click("#nav-audit").await;
    browser
        .until("document.querySelectorAll('#audit-list li').length === 50")
        .await;
    assert_eq!(
        browser.text("#audit-range").await,
        format!("1–50 of {total}")
    );
    let first = browser.text("#audit-list li:first-child").await;
    assert!(
        first.contains("api-token-deleted") && first.contains("audited"),
        "{first}"
    );
    let update = browser.text("#audit-list li:nth-child(2)").await;
    assert!(update.contains("api-token-updated"), "{update}");
    assert!(
        update.contains("2035-01-02 03:04:05 UTC"),
        "preData → data: {update}"
    );
    assert!(update.contains("by admin"), "who: {update}");
    browser.screenshot("audit").await;

    browser.click("#audit-next").await;
    browser
        .until(&format!(
            "document.getElementById('audit-range').textContent === '51–{total} of {total}'"
        ))
        .await;
    assert_eq!(
        browser
            .js(
                "return document.querySelectorAll('#audit-list li').length;",
                vec![]
            )
            .await,
        total - 50
    );
    assert_eq!(
        browser.prop("#audit-next", "disabled").await.as_deref(),
        Some("true")
    );

    browser.select("#audit-type", "api-token-updated").await;
    browser
        .until("document.getElementById('audit-range').textContent === '1–1 of 1'")
        .await;
    assert!(browser.text("#audit-list").await.contains("audited"));

    // Who did it: the bootstrap's own event is by `system`.
    browser.select("#audit-type", "").await;
    browser.fill("#audit-by", "system\u{E007}").await;
    browser
        .until(
            "document.getElementById('audit-list').textContent.includes('by system') \
             && document.getElementById('audit-range').textContent === '1–1 of 1'",
        )
        .await;
    assert!(browser
        .text("#audit-list")
        .await
        .contains("api-token-created"));
    let errors = browser.console_errors().await;
    assert!(errors.is_empty(), "browser errors: {errors:#?}");
}
