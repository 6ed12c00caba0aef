//! `keywarden`: serve the Unleash-compatible API-token Admin API.

use std::process::ExitCode;

use keywarden::{telemetry, Application, Settings};

#[actix_web::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => return fail(&error),
    };
    telemetry::init(&settings.log);
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => return fail(&error),
    };
    if let Some(credential) = app.generated_admin_credential() {
        println!(
            "keywarden created the first admin API token. It is shown ONLY THIS ONCE and is not stored; save it now:\n{}",
            credential.expose_secret()
        );
    }
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &dyn std::error::Error) -> ExitCode {
    let mut message = format!("keywarden: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    ExitCode::FAILURE
}
