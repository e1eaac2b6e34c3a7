//! Sensitive data: personal data and secrets in requests and responses, found with one Aho-Corasick
//! pass, confirmed by regex and validators, reported with redacted evidence only.

use serde::{Deserialize, Serialize};

use crate::analyzer::{AnalysisSettings, Registry, SetupError};

/// `[sensitive]` in the config file. Every key optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {}

/// Adds this analyzer to the chain (nothing yet).
pub fn register(_reg: &mut Registry, _settings: &AnalysisSettings) -> Result<(), SetupError> {
    Ok(())
}
