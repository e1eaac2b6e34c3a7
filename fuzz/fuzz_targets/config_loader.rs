//! The configuration loader: any text as a TOML configuration file, then the loaded configuration written back
//! and loaded again (what `mirador config --print` promises can be read back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirador::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = Config::from_toml_str(text, "fuzz.toml") {
        let again = cfg.to_toml_string();
        assert!(Config::from_toml_str(&again, "printed").is_ok(), "printed configuration does not load:\n{again}");
    }
});
