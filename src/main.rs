//! `keywarden`: serve the Unleash-compatible API-token Admin API, or run one
//! of the operator's commands (`keywarden --help`).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use keywarden::cli::{self, Cli, Command};
use keywarden::{telemetry, Application, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let sources = cli::Sources {
        overlay: cli.config.clone(),
        env: env.clone(),
    };
    let settings = match Settings::load(cli.config, env) {
        Ok(settings) => settings,
        Err(error) => return fail(&error),
    };
    telemetry::init(&settings.log);
    actix_web::rt::System::new().block_on(async move {
        match cli.command {
            None | Some(Command::Serve) => serve(settings).await,
            Some(command) => match cli::run(command, settings, &sources, cli.create_database).await
            {
                Ok(code) => code,
                Err(error) => fail(&error),
            },
        }
    })
}

async fn serve(settings: Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => return fail(&error),
    };
    if let Err(error) = app.hand_over_admin_credential(std::io::stdout().is_terminal()) {
        eprintln!(
            "keywarden: cannot write the first admin credential ({error}); make an admin \
             token with: keywarden tokens create --type admin --name <name>"
        );
        return ExitCode::FAILURE;
    }
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &dyn std::error::Error) -> ExitCode {
    eprintln!("keywarden: {}", keywarden_application::error_chain(error));
    ExitCode::FAILURE
}
