//! The optional config file of `freshvec serve` (`--config FILE` or `FRESHVEC_CONFIG`):
//! `key = value` lines naming the serve flags without their dashes, `#` comments, values
//! optionally in double quotes:
//!
//! ```text
//! listen = "0.0.0.0:7867"
//! data-dir = "/var/lib/freshvec"
//! peers = "1=10.0.0.1:7868,2=10.0.0.2:7868,3=10.0.0.3:7868"
//! ```
//!
//! The file sits under the environment and the flags: a value from it is used only when
//! neither `--key` nor `FRESHVEC_KEY` gives one. A line that does not parse or names no flag
//! is refused with its line number.

use std::path::Path;

/// The config file named on the command line (`--config FILE`, `--config=FILE`) or in
/// `FRESHVEC_CONFIG`.
pub fn path_from(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().cloned();
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(p.to_string());
        }
    }
    std::env::var("FRESHVEC_CONFIG").ok()
}

/// Reads `path` and sets `FRESHVEC_<KEY>` for each of its keys the environment does not set
/// already. `known` are the flags' long names. Call before any thread starts.
pub fn load(path: &Path, known: &[String]) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut values = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("{}:{}: {why}", path.display(), n + 1);
        let (key, value) = line.split_once('=').ok_or_else(|| bad("expected key = value"))?;
        let key = key.trim();
        if !known.iter().any(|k| k == key) || key == "config" {
            return Err(bad(&format!("unknown key {key:?}")));
        }
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        values.push((format!("FRESHVEC_{}", key.to_uppercase().replace('-', "_")), value));
    }
    for (var, value) in values {
        if std::env::var_os(&var).is_none() {
            std::env::set_var(var, value);
        }
    }
    Ok(())
}
