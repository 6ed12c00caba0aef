//! Migration discipline: every migration goes up, down and up again on both
//! backends, and the two backends end up with the same schema (tables,
//! columns, types, nullability, keys and indexes), so they cannot drift.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::collections::{BTreeMap, BTreeSet};

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};
use diesel_migrations::MigrationHarness;
use keywarden_persistence_adapter::migrations;
use keywarden_persistence_adapter::testing::TestDatabase;

/// A column as both backends can describe it: name, canonical type, nullable.
type Column = (String, &'static str, bool);

#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    columns: Vec<Column>,
    primary_key: Vec<String>,
    /// (column, referenced table, referenced column, on delete)
    foreign_keys: BTreeSet<(String, String, String, String)>,
    unique: BTreeSet<Vec<String>>,
    /// Named secondary indexes and their columns.
    indexes: BTreeSet<(String, Vec<String>)>,
}

type Schema = BTreeMap<String, Table>;

const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

// ---- SQLite ------------------------------------------------------------------

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    r#type: String,
    #[diesel(sql_type = Integer)]
    notnull: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct SqliteForeignKey {
    #[diesel(sql_type = Text)]
    from: String,
    #[diesel(sql_type = Text)]
    table: String,
    #[diesel(sql_type = Text)]
    to: String,
    #[diesel(sql_type = Text)]
    on_delete: String,
}

#[derive(QueryableByName)]
struct SqliteIndex {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    origin: String,
}

fn sqlite_type(declared: &str, primary_key: bool) -> &'static str {
    match declared {
        "TEXT" => "text",
        "BLOB" => "bytes",
        "BOOLEAN" => "bool",
        // A rowid alias is a 64-bit integer whatever it is called.
        "INTEGER" if primary_key => "bigint",
        "INTEGER" => "int",
        "BIGINT" => "bigint",
        "TIMESTAMP" => "timestamp",
        other => panic!("unexpected SQLite column type {other}"),
    }
}

fn sqlite_tables(conn: &mut SqliteConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .filter(|n| n != MIGRATIONS_TABLE)
    .collect()
}

fn sqlite_schema(conn: &mut SqliteConnection) -> Schema {
    let mut schema = Schema::new();
    for table in sqlite_tables(conn) {
        let mut shape = Table::default();
        let columns = diesel::sql_query(format!(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .load::<SqliteColumn>(conn)
        .unwrap();
        let mut primary: Vec<(i32, String)> = Vec::new();
        for column in &columns {
            shape.columns.push((
                column.name.clone(),
                sqlite_type(
                    &column.r#type,
                    column.pk > 0 && columns.iter().filter(|c| c.pk > 0).count() == 1,
                ),
                column.notnull == 0,
            ));
            if column.pk > 0 {
                primary.push((column.pk, column.name.clone()));
            }
        }
        primary.sort();
        shape.primary_key = primary.into_iter().map(|(_, name)| name).collect();
        for fk in diesel::sql_query(format!(
            "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list('{table}')"
        ))
        .load::<SqliteForeignKey>(conn)
        .unwrap()
        {
            shape
                .foreign_keys
                .insert((fk.from, fk.table, fk.to, fk.on_delete.to_lowercase()));
        }
        for index in diesel::sql_query(format!(
            "SELECT name, origin FROM pragma_index_list('{table}')"
        ))
        .load::<SqliteIndex>(conn)
        .unwrap()
        {
            let columns: Vec<String> = diesel::sql_query(format!(
                "SELECT name FROM pragma_index_info('{}') ORDER BY seqno",
                index.name
            ))
            .load::<Name>(conn)
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
            match index.origin.as_str() {
                "u" => {
                    shape.unique.insert(columns);
                }
                "c" => {
                    shape.indexes.insert((index.name, columns));
                }
                _ => {} // the primary key, compared above
            }
        }
        schema.insert(table, shape);
    }
    schema
}

// ---- PostgreSQL --------------------------------------------------------------

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

#[derive(QueryableByName)]
struct PgKeyColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    constraint_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = BigInt)]
    position: i64,
    #[diesel(sql_type = Text)]
    ref_table: String,
    #[diesel(sql_type = Text)]
    ref_column: String,
    #[diesel(sql_type = Text)]
    on_delete: String,
}

fn pg_type(data_type: &str) -> &'static str {
    match data_type {
        "text" => "text",
        "bytea" => "bytes",
        "boolean" => "bool",
        "integer" => "int",
        "bigint" => "bigint",
        "timestamp with time zone" => "timestamp",
        other => panic!("unexpected PostgreSQL column type {other}"),
    }
}

fn pg_tables(conn: &mut PgConnection) -> Vec<String> {
    diesel::sql_query(
        "SELECT table_name::text AS name FROM information_schema.tables
         WHERE table_schema = 'public' ORDER BY table_name",
    )
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .filter(|n| n != MIGRATIONS_TABLE)
    .collect()
}

fn pg_schema(conn: &mut PgConnection) -> Schema {
    let mut schema: Schema = pg_tables(conn)
        .into_iter()
        .map(|t| (t, Table::default()))
        .collect();
    for column in diesel::sql_query(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text
         FROM information_schema.columns WHERE table_schema = 'public'
         ORDER BY table_name, ordinal_position",
    )
    .load::<PgColumn>(conn)
    .unwrap()
    {
        if let Some(table) = schema.get_mut(&column.table_name) {
            table.columns.push((
                column.column_name,
                pg_type(&column.data_type),
                column.is_nullable == "YES",
            ));
        }
    }
    // Constraint-backed keys, one row per (constraint, column).
    let keys = diesel::sql_query(
        "SELECT t.relname::text AS table_name, c.contype::text AS kind, c.conname::text AS constraint_name,
                a.attname::text AS column_name, k.n AS position,
                COALESCE(rt.relname::text, '') AS ref_table, COALESCE(ra.attname::text, '') AS ref_column,
                CASE c.confdeltype WHEN 'c' THEN 'cascade' WHEN 'a' THEN 'no action' ELSE '' END AS on_delete
         FROM pg_constraint c
         JOIN pg_class t ON t.oid = c.conrelid
         JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, n) ON true
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
         LEFT JOIN pg_class rt ON rt.oid = c.confrelid
         LEFT JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[k.n]
         WHERE t.relnamespace = 'public'::regnamespace AND c.contype IN ('p', 'u', 'f')
         ORDER BY c.conname, k.n",
    )
    .load::<PgKeyColumn>(conn)
    .unwrap();
    let mut unique: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for key in keys {
        let Some(table) = schema.get_mut(&key.table_name) else {
            continue;
        };
        match key.kind.as_str() {
            "p" => table.primary_key.push(key.column_name),
            "u" => unique
                .entry((key.table_name, key.constraint_name))
                .or_default()
                .push(key.column_name),
            _ => {
                table.foreign_keys.insert((
                    key.column_name,
                    key.ref_table,
                    key.ref_column,
                    key.on_delete,
                ));
            }
        }
        let _ = key.position;
    }
    for ((table, _), columns) in unique {
        schema.get_mut(&table).unwrap().unique.insert(columns);
    }
    // Secondary indexes: those no constraint owns.
    let indexes = diesel::sql_query(
        "SELECT t.relname::text AS table_name, 'i' AS kind, i.relname::text AS constraint_name,
                a.attname::text AS column_name, k.n AS position, '' AS ref_table, '' AS ref_column, '' AS on_delete
         FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_class t ON t.oid = x.indrelid
         JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) ON true
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
         WHERE t.relnamespace = 'public'::regnamespace
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
         ORDER BY i.relname, k.n",
    )
    .load::<PgKeyColumn>(conn)
    .unwrap();
    let mut named: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for index in indexes {
        named
            .entry((index.table_name, index.constraint_name))
            .or_default()
            .push(index.column_name);
    }
    for ((table, name), columns) in named {
        if let Some(table) = schema.get_mut(&table) {
            table.indexes.insert((name, columns));
        }
    }
    schema
}

// ---- the tests ---------------------------------------------------------------

fn sqlite() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = SqliteConnection::establish(dir.path().join("m.db").to_str().unwrap()).unwrap();
    conn.batch_execute("PRAGMA foreign_keys = ON").unwrap();
    (dir, conn)
}

#[test]
fn sqlite_migrations_go_up_down_and_up_again() {
    let (_dir, mut conn) = sqlite();
    conn.run_pending_migrations(migrations::SQLITE).unwrap();
    let first = sqlite_schema(&mut conn);
    assert!(first.contains_key("api_tokens") && first.contains_key("events"));
    conn.revert_all_migrations(migrations::SQLITE).unwrap();
    assert!(
        sqlite_tables(&mut conn).is_empty(),
        "every down.sql undoes its up.sql"
    );
    conn.run_pending_migrations(migrations::SQLITE).unwrap();
    assert_eq!(sqlite_schema(&mut conn), first);
}

#[test]
fn postgres_migrations_go_up_down_and_up_again() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let mut conn = PgConnection::establish(database.url()).unwrap();
    conn.run_pending_migrations(migrations::POSTGRES).unwrap();
    let first = pg_schema(&mut conn);
    assert!(first.contains_key("api_tokens") && first.contains_key("events"));
    conn.revert_all_migrations(migrations::POSTGRES).unwrap();
    assert!(
        pg_tables(&mut conn).is_empty(),
        "every down.sql undoes its up.sql"
    );
    conn.run_pending_migrations(migrations::POSTGRES).unwrap();
    assert_eq!(pg_schema(&mut conn), first);
}

#[test]
fn both_backends_have_the_same_schema() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let (_dir, mut lite) = sqlite();
    lite.run_pending_migrations(migrations::SQLITE).unwrap();
    let mut pg = PgConnection::establish(database.url()).unwrap();
    pg.run_pending_migrations(migrations::POSTGRES).unwrap();
    let (lite, pg) = (sqlite_schema(&mut lite), pg_schema(&mut pg));
    assert_eq!(
        lite.keys().collect::<Vec<_>>(),
        pg.keys().collect::<Vec<_>>()
    );
    for (name, table) in &lite {
        assert_eq!(Some(table), pg.get(name), "table {name} differs");
    }
}

#[test]
fn the_migration_sets_match() {
    let names = |dir: &str| -> BTreeSet<String> {
        std::fs::read_dir(format!(
            "{}/../../migrations/{dir}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
    };
    assert_eq!(
        names("sqlite"),
        names("postgres"),
        "same migration names for both backends"
    );
}

// ---- data written before a migration ----------------------------------------

/// An event as the first release stored it (no `selector` column yet).
const OLD_EVENT: &str = "INSERT INTO events (event_type, created_by, created_at, data, pre_data)
     VALUES ('api-token-deleted', 'cli', '2030-01-01 00:00:00+00:00', NULL,
             '{\"secret\":\"abc\",\"tokenName\":\"x\"}')";

#[derive(QueryableByName, Debug, PartialEq)]
struct Subject {
    #[diesel(sql_type = Text)]
    selector: String,
    #[diesel(sql_type = Integer)]
    format: i32,
}

const SUBJECTS: &str = "SELECT selector, format FROM events ORDER BY id";

fn backfilled() -> Vec<Subject> {
    vec![Subject {
        selector: "abc".into(),
        format: 1,
    }]
}

#[test]
fn sqlite_events_written_before_get_their_subject_and_keep_their_ids() {
    let (_dir, mut conn) = sqlite();
    conn.run_next_migration(migrations::SQLITE).unwrap();
    conn.batch_execute(OLD_EVENT).unwrap();
    conn.batch_execute(OLD_EVENT).unwrap();
    conn.batch_execute("DELETE FROM events WHERE id = 2")
        .unwrap();
    conn.run_pending_migrations(migrations::SQLITE).unwrap();
    assert_eq!(
        diesel::sql_query(SUBJECTS)
            .load::<Subject>(&mut conn)
            .unwrap(),
        backfilled()
    );
    // AUTOINCREMENT survives the rebuild: id 2 is not handed out again.
    conn.batch_execute(
        "INSERT INTO events (event_type, created_by, created_at, selector)
         VALUES ('api-token-created', 'cli', '2030-01-01 00:00:00+00:00', 'def')",
    )
    .unwrap();
    let ids = diesel::sql_query("SELECT selector AS name FROM events WHERE id = 3")
        .load::<Name>(&mut conn)
        .unwrap();
    assert_eq!(ids.len(), 1);
}

#[test]
fn postgres_events_written_before_get_their_subject() {
    let Some(database) = TestDatabase::create() else {
        return;
    };
    let mut conn = PgConnection::establish(database.url()).unwrap();
    conn.run_next_migration(migrations::POSTGRES).unwrap();
    conn.batch_execute(OLD_EVENT).unwrap();
    conn.run_pending_migrations(migrations::POSTGRES).unwrap();
    assert_eq!(
        diesel::sql_query(SUBJECTS)
            .load::<Subject>(&mut conn)
            .unwrap(),
        backfilled()
    );
}
