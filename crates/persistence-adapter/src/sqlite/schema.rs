//! The SQLite tables: timestamps as UTC text.

crate::schema::tables!(TimestamptzSqlite);
