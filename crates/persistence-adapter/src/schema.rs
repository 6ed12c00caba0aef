//! The tables, as both `migrations/sqlite` and `migrations/postgres` create
//! them. Only the timestamp type differs between the backends (diesel's
//! `TimestamptzSqlite` and `Timestamptz`), so each backend instantiates this
//! one definition with its own.

macro_rules! tables {
    ($timestamp:ident) => {
        diesel::table! {
            projects (id) {
                id -> Text,
                name -> Text,
                description -> Nullable<Text>,
                created_at -> $timestamp,
            }
        }

        diesel::table! {
            environments (name) {
                name -> Text,
                kind -> Text,
                sort_order -> Integer,
                enabled -> Bool,
                created_at -> $timestamp,
            }
        }

        diesel::table! {
            api_tokens (id) {
                id -> BigInt,
                selector -> Text,
                verifier -> Binary,
                token_name -> Text,
                token_type -> Text,
                all_projects -> Bool,
                environment -> Nullable<Text>,
                expires_at -> Nullable<$timestamp>,
                created_at -> $timestamp,
                seen_at -> Nullable<$timestamp>,
                revision -> BigInt,
            }
        }

        diesel::table! {
            api_token_projects (selector, project) {
                selector -> Text,
                project -> Text,
            }
        }

        diesel::table! {
            events (id) {
                id -> BigInt,
                event_type -> Text,
                created_by -> Text,
                created_at -> $timestamp,
                data -> Nullable<Text>,
                pre_data -> Nullable<Text>,
                selector -> Text,
                format -> Integer,
            }
        }

        diesel::allow_tables_to_appear_in_same_query!(
            projects,
            environments,
            api_tokens,
            api_token_projects,
            events,
        );
    };
}

pub(crate) use tables;
