//! Signature packs as an operator writes them: a sensitive-data pack and an attack-rule pack. (The built-in
//! packs are not compiled with each input: that took seconds per input in the unoptimised smoke build.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirador::sensitive::signatures::SignatureSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = SignatureSet::from_packs(&[("fuzz.toml".to_string(), text.to_string())], &[]);
    let _ = mirador::detect::rules::load_attack_pack("fuzz.toml", text);
});
