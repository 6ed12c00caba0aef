//! Projects and environments: the reference data tokens are scoped to. They are
//! declared by the operator and only ever referenced by tokens, never edited here.

use crate::{EnvironmentName, ProjectId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: ProjectId,
    pub name: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: EnvironmentName,
    /// Unleash's environment type, e.g. `development` or `production`.
    pub kind: String,
    pub sort_order: i32,
    pub enabled: bool,
}
