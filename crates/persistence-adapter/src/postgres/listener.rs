//! The change feed: a dedicated connection that `LISTEN`s for changes other
//! instances announce and forwards them to the application, so each
//! instance's credential view learns of them within a poll interval. When the
//! connection drops it reconnects and asks for a full reload, since
//! notifications sent meanwhile are lost.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::{Connection, PgConnection, RunQueryDsl};
use keywarden_application::ExternalChange;
use keywarden_domain::Selector;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};

use super::CHANGES_CHANNEL;

/// How often pending notifications are read: the bound on how stale another
/// instance's change can be here (plus one query to fetch it).
const POLL: Duration = Duration::from_millis(100);
/// Silence on a connection is checked this often, to notice a dead peer.
const KEEPALIVE: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_millis(500);

pub struct ChangeListener;

impl ChangeListener {
    /// Starts listening on a thread of its own; it ends when `changes` closes.
    pub fn spawn(
        url: String,
        changes: UnboundedSender<ExternalChange>,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("keywarden-change-feed".into())
            .spawn(move || run(&url, &changes))
    }
}

fn run(url: &str, changes: &UnboundedSender<ExternalChange>) {
    let mut connected_before = false;
    while !changes.is_closed() {
        let mut conn = match connect(url) {
            Ok(conn) => conn,
            Err(error) => {
                warn!(error = %error, "change feed cannot connect; retrying");
                std::thread::sleep(RETRY);
                continue;
            }
        };
        if connected_before {
            info!("change feed reconnected");
        }
        connected_before = true;
        // Whatever happened while not listening is unknown: reload.
        if changes.send(ExternalChange::Unknown).is_err() {
            return;
        }
        match listen(&mut conn, changes) {
            Ok(()) => return,
            Err(error) => warn!(error = %error, "change feed connection lost; reconnecting"),
        }
    }
}

fn connect(url: &str) -> Result<PgConnection, Box<dyn std::error::Error>> {
    let mut conn = PgConnection::establish(&super::with_connect_timeout(url))?;
    diesel::sql_query("SET statement_timeout = 5000").execute(&mut conn)?;
    diesel::sql_query(format!("LISTEN {CHANGES_CHANNEL}")).execute(&mut conn)?;
    Ok(conn)
}

/// Returns `Ok` when the receiving side has gone, `Err` when the connection did.
fn listen(
    conn: &mut PgConnection,
    changes: &UnboundedSender<ExternalChange>,
) -> Result<(), diesel::result::Error> {
    let mut last_check = Instant::now();
    loop {
        let mut selectors = Vec::new();
        for notification in conn.notifications_iter() {
            if let Some(selector) = Selector::parse(&notification?.payload) {
                selectors.push(selector);
            }
        }
        if !selectors.is_empty() && changes.send(ExternalChange::Tokens(selectors)).is_err() {
            return Ok(());
        }
        if changes.is_closed() {
            return Ok(());
        }
        if last_check.elapsed() >= KEEPALIVE {
            diesel::sql_query("SELECT 1").execute(conn)?;
            last_check = Instant::now();
        }
        std::thread::sleep(POLL);
    }
}
