//! API inventory: services, operations with path templates, parameters, JSON schemas, auth and
//! status codes; OpenAPI 3.1 export; the owner's spec compared with what is seen.

use serde::{Deserialize, Serialize};

use crate::analyzer::{AnalysisSettings, Registry, SetupError};

/// `[inventory]` in the config file. Every key optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {}

/// Adds this analyzer to the chain (nothing yet).
pub fn register(_reg: &mut Registry, _settings: &AnalysisSettings) -> Result<(), SetupError> {
    Ok(())
}
