//! API inventory: services, operations with path templates, parameters, JSON schemas, auth and
//! status codes; OpenAPI 3.1 export; the owner's spec compared with what is seen.

use serde::{Deserialize, Serialize};

use crate::analyzer::{AnalysisSettings, Registry, SetupError};

/// `[inventory]` in the config file. Every key optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The owner's API specs (OpenAPI 3.0/3.1 or Swagger 2.0, JSON or YAML) to compare with what is seen;
    /// `--spec FILE` adds to it. Results go to `DIR/spec-diff.json`. Default: none.
    pub specs: Vec<std::path::PathBuf>,
}

/// Adds this analyzer to the chain (nothing yet).
pub fn register(_reg: &mut Registry, _settings: &AnalysisSettings) -> Result<(), SetupError> {
    Ok(())
}
