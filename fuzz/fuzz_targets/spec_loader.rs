//! The OpenAPI/Swagger spec loader (JSON when the text starts with `{`, else YAML, as for files), then what a
//! loaded spec feeds: its completeness report and a diff against itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirador::specdiff::{completeness, diff_specs, parse_spec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = parse_spec(text, "fuzz", text.trim_start().starts_with('{')) {
        let _ = completeness(&spec);
        let _ = diff_specs(&spec, &spec);
    }
});
