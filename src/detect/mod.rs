//! Detections: attacks, access-control gaps, abuse and behavioural anomalies, as alerts mapped to the
//! OWASP API Security Top 10.

use serde::{Deserialize, Serialize};

use crate::analyzer::{AnalysisSettings, Registry, SetupError};

/// `[detect]` in the config file. Every key optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {}

/// Adds this analyzer to the chain (nothing yet).
pub fn register(_reg: &mut Registry, _settings: &AnalysisSettings) -> Result<(), SetupError> {
    Ok(())
}
