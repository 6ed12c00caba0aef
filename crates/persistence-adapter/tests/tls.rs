//! TLS to PostgreSQL with the libpq and OpenSSL this crate builds from source:
//! `sslmode=require` must give an encrypted session (needs `TEST_POSTGRES_URL`;
//! skipped when the server itself has TLS switched off).

use diesel::sql_types::{Bool, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl};
use keywarden_application::ApiTokenRepository;
use keywarden_persistence_adapter::testing::TestDatabase;
use keywarden_persistence_adapter::{PostgresOptions, PostgresRepository};

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    ssl: String,
}

#[derive(QueryableByName)]
struct Session {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

fn require_tls(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}sslmode=require")
}

#[tokio::test]
async fn sslmode_require_gives_an_encrypted_session() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let mut plain = PgConnection::establish(database.url()).unwrap();
    let setting = diesel::sql_query("SELECT current_setting('ssl') AS ssl")
        .get_result::<Setting>(&mut plain)
        .unwrap();
    if setting.ssl != "on" {
        eprintln!("skipped: the PostgreSQL server has ssl = {}", setting.ssl);
        return;
    }
    let url = require_tls(database.url());
    let mut encrypted = PgConnection::establish(&url).unwrap();
    let session = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result::<Session>(&mut encrypted)
        .unwrap();
    assert!(session.ssl, "sslmode=require connected without TLS");

    let repository = PostgresRepository::open(url, PostgresOptions::default())
        .await
        .unwrap();
    repository.ping().await.unwrap();
}
