//! The tables, as both `migrations/sqlite` and `migrations/postgres` create
//! them, in one definition for both backends. The one column type they name
//! differently is the timestamp (`TIMESTAMP` text on SQLite, `timestamptz` on
//! PostgreSQL; diesel's `TimestamptzSqlite` and `Timestamptz`): here it is
//! keywarden's own SQL type [`sql_types::UtcTime`], which each backend reads
//! and writes exactly as diesel's chrono support does for its native type. One
//! schema is what lets every statement be written once (`crate::statements`).

use chrono::{DateTime, Utc};
use diesel::backend::Backend;
use diesel::deserialize::FromSqlRow;
use diesel::deserialize::{self, FromSql};
use diesel::expression::AsExpression;
use diesel::pg::Pg;
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{HasSqlType, Timestamptz, TimestamptzSqlite};
use diesel::sqlite::Sqlite;

pub(crate) mod sql_types {
    /// A UTC instant, stored as each backend stores diesel's chrono times.
    #[derive(
        Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
    )]
    pub struct UtcTime;
}

use sql_types::UtcTime;

impl HasSqlType<UtcTime> for Pg {
    fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
        <Pg as HasSqlType<Timestamptz>>::metadata(lookup)
    }
}

impl HasSqlType<UtcTime> for Sqlite {
    fn metadata(lookup: &mut Self::MetadataLookup) -> Self::TypeMetadata {
        <Sqlite as HasSqlType<TimestamptzSqlite>>::metadata(lookup)
    }
}

impl ToSql<UtcTime, Pg> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <Self as ToSql<Timestamptz, Pg>>::to_sql(self, out)
    }
}

impl ToSql<UtcTime, Sqlite> for DateTime<Utc> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        <Self as ToSql<TimestamptzSqlite, Sqlite>>::to_sql(self, out)
    }
}

impl FromSql<UtcTime, Pg> for DateTime<Utc> {
    fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <Self as FromSql<Timestamptz, Pg>>::from_sql(value)
    }
}

impl FromSql<UtcTime, Sqlite> for DateTime<Utc> {
    fn from_sql(value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <Self as FromSql<TimestamptzSqlite, Sqlite>>::from_sql(value)
    }
}

/// A present instant in a row or as a statement parameter. (Optional
/// instants are `Option<DateTime<Utc>>` directly; a present one needs a type
/// of ours to say it is a `UtcTime`, which chrono's `DateTime` cannot.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression, FromSqlRow)]
#[diesel(sql_type = UtcTime)]
pub(crate) struct At(pub DateTime<Utc>);

impl<DB: Backend> ToSql<UtcTime, DB> for At
where
    DateTime<Utc>: ToSql<UtcTime, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.0.to_sql(out)
    }
}

impl<DB: Backend> FromSql<UtcTime, DB> for At
where
    DateTime<Utc>: FromSql<UtcTime, DB>,
{
    fn from_sql(value: DB::RawValue<'_>) -> deserialize::Result<Self> {
        DateTime::<Utc>::from_sql(value).map(Self)
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::UtcTime;

    projects (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        created_at -> UtcTime,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::UtcTime;

    environments (name) {
        name -> Text,
        kind -> Text,
        sort_order -> Integer,
        enabled -> Bool,
        created_at -> UtcTime,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::UtcTime;

    api_tokens (id) {
        id -> BigInt,
        selector -> Text,
        verifier -> Binary,
        token_name -> Text,
        token_type -> Text,
        all_projects -> Bool,
        environment -> Nullable<Text>,
        expires_at -> Nullable<UtcTime>,
        created_at -> UtcTime,
        seen_at -> Nullable<UtcTime>,
        revision -> BigInt,
        successor -> Nullable<Text>,
    }
}

diesel::table! {
    api_token_projects (selector, project) {
        selector -> Text,
        project -> Text,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::UtcTime;

    events (id) {
        id -> BigInt,
        event_type -> Text,
        created_by -> Text,
        created_at -> UtcTime,
        data -> Nullable<Text>,
        pre_data -> Nullable<Text>,
        selector -> Text,
        format -> Integer,
        token_name -> Nullable<Text>,
        created_by_token_id -> Nullable<Text>,
        tx -> Nullable<BigInt>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::UtcTime;

    webhook_endpoints (url) {
        url -> Text,
        cursor_tx -> BigInt,
        cursor_id -> BigInt,
        attempts -> Integer,
        next_attempt_at -> Nullable<UtcTime>,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<UtcTime>,
        sent -> BigInt,
        given_up -> BigInt,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<UtcTime>,
        registered_at -> UtcTime,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::UtcTime;

    expiry_notices (selector, threshold, expires_at) {
        selector -> Text,
        threshold -> Text,
        expires_at -> UtcTime,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    projects,
    environments,
    api_tokens,
    api_token_projects,
    events,
    webhook_endpoints,
    expiry_notices,
);
