//! The PostgreSQL tables: timestamps as `timestamptz`.

crate::schema::tables!(Timestamptz);
