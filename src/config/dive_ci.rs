//! Reading a `.dive-ci` file (dive's CI rules, for teams moving theirs
//! over): the file's three values as written, for the configuration to
//! layer under the command line. Judging by them is
//! `budget::rules::dive`'s; this is only the file.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

/// The largest `.dive-ci` read: the file holds three short keys.
pub const MAX_BYTES: u64 = 64 << 10;

/// The three values of a `.dive-ci` file, as written (`disabled` kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiveCiFile {
    pub lowest_efficiency: Option<String>,
    pub highest_wasted_bytes: Option<String>,
    pub highest_user_wasted_percent: Option<String>,
}

/// Reads a `.dive-ci` file (YAML, `rules:` with dive's three keys). A
/// file that is not that is a usage error naming it.
pub fn load(path: &Path) -> Result<DiveCiFile, Error> {
    let shown = path.display().to_string();
    let file =
        std::fs::File::open(path).map_err(|e| Error::usage(format!("--dive-ci {shown}: {e}")))?;
    let mut text = String::new();
    file.take(MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| Error::usage(format!("--dive-ci {shown}: not readable text: {e}")))?;
    if text.len() as u64 > MAX_BYTES {
        return Err(Error::usage(format!(
            "--dive-ci {shown}: larger than {} KiB, not a .dive-ci file",
            MAX_BYTES >> 10
        )));
    }
    parse(&text).map_err(|why| Error::usage(format!("--dive-ci {shown}: {why}")))
}

/// Why a `.dive-ci` text is not one, in words.
#[derive(Debug)]
pub struct NotDiveCi(String);

impl std::fmt::Display for NotDiveCi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn parse(text: &str) -> Result<DiveCiFile, NotDiveCi> {
    #[derive(Deserialize)]
    struct Doc {
        rules: Option<std::collections::BTreeMap<String, yaml_serde::Value>>,
    }
    let doc: Doc = yaml_serde::from_str(text).map_err(|e| {
        NotDiveCi(format!(
            "not a .dive-ci file: {}",
            crate::plain_text::escape(&e.to_string())
        ))
    })?;
    let mut out = DiveCiFile::default();
    for (key, value) in doc.rules.unwrap_or_default() {
        let text = match value {
            yaml_serde::Value::Null => String::new(),
            yaml_serde::Value::Bool(b) => b.to_string(),
            yaml_serde::Value::Number(n) => n.to_string(),
            yaml_serde::Value::String(s) => s,
            _ => return Err(NotDiveCi(format!("rules.{key} is not a value"))),
        };
        let slot = match key.as_str() {
            "lowestEfficiency" => &mut out.lowest_efficiency,
            "highestWastedBytes" => &mut out.highest_wasted_bytes,
            "highestUserWastedPercent" => &mut out.highest_user_wasted_percent,
            other => {
                return Err(NotDiveCi(format!(
                    "unknown rule {:?} (dive has lowestEfficiency, highestWastedBytes, highestUserWastedPercent)",
                    crate::plain_text::escape(other)
                )));
            }
        };
        *slot = Some(text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dive_ci_files_parse_with_disabled_values() {
        let f = parse(
            "rules:\n  lowestEfficiency: 0.95\n  highestWastedBytes: 20MB\n  highestUserWastedPercent: disabled\n",
        )
        .unwrap();
        assert_eq!(f.lowest_efficiency.as_deref(), Some("0.95"));
        assert_eq!(f.highest_wasted_bytes.as_deref(), Some("20MB"));
        assert_eq!(f.highest_user_wasted_percent.as_deref(), Some("disabled"));
        assert!(parse("rules:\n  lowestEfficency: 0.9\n").is_err());
        assert!(parse("rules: [1, 2]\n").is_err());
        assert!(parse(": : :\n\t-").is_err());
    }
}
