//! One error type for the whole tool, carrying the exit code its class maps
//! to, so `main` can print one line and exit with the documented code.

use std::fmt;

/// Exit codes, documented in the README. They are the contract with CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every image measured; no fail rule fired.
    Ok = 0,
    /// A fail rule fired (`check`).
    PolicyFailed = 1,
    /// Bad flags, bad configuration, a reference that cannot be parsed.
    Usage = 2,
    /// The images could not be measured: registry, auth, corrupt data.
    Measure = 3,
}

#[derive(Debug)]
pub struct Error {
    pub code: ExitCode,
    message: String,
    /// The image (manifest, tag) does not exist: `check --baseline-optional`
    /// treats a missing baseline as a first release, not a failure.
    pub not_found: bool,
}

impl Error {
    pub fn usage(msg: impl fmt::Display) -> Self {
        Error {
            code: ExitCode::Usage,
            message: one_line(&msg.to_string()),
            not_found: false,
        }
    }

    pub fn measure(msg: impl fmt::Display) -> Self {
        Error {
            code: ExitCode::Measure,
            message: one_line(&msg.to_string()),
            not_found: false,
        }
    }

    /// The image does not exist (404, unknown tag).
    pub fn not_found(msg: impl fmt::Display) -> Self {
        Error {
            not_found: true,
            ..Error::measure(msg)
        }
    }

    /// Prefixes the message with what was being done.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Registry error bodies and OS messages may span lines; a CI log wants one.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, line) in s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let e = Error::measure("first\n  second\r\n\nthird").context("pulling x");
        assert_eq!(e.message(), "pulling x: first second third");
        assert_eq!(e.code, ExitCode::Measure);
    }
}
