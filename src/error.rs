//! One error type for the whole tool. Every error carries a [`Kind`] that
//! says what a caller can do about it (fix the command, retry later, give
//! up on this image) and the chain of errors that caused it. The exit code
//! of the command line and the retry decision of a job queue both derive
//! from the kind, never from the text.

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

/// What went wrong, as far as a caller's next step is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The request itself is wrong: flags, configuration, a reference that
    /// cannot be parsed, a file the user named that cannot be read.
    Usage,
    /// The image, tag, blob or platform does not exist.
    NotFound,
    /// The registry refused the credentials (or there were none).
    Unauthorized,
    /// May work if tried again: connection errors, timeouts, 429, 5xx, a
    /// local resource that ran out.
    Transient,
    /// The input cannot be measured as it is: corrupt or hostile data, a
    /// digest mismatch, a format sizeguard does not read.
    Corrupt,
    /// The work was stopped before it finished (another layer failed, the
    /// caller gave up).
    Cancelled,
}

impl Kind {
    /// Whether the same request may succeed later without any change.
    pub fn is_retryable(self) -> bool {
        matches!(self, Kind::Transient)
    }

    pub fn exit_code(self) -> ExitCode {
        match self {
            Kind::Usage => ExitCode::Usage,
            _ => ExitCode::Measure,
        }
    }

    /// The stable snake_case name (logs, JSON, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Usage => "usage",
            Kind::NotFound => "not_found",
            Kind::Unauthorized => "unauthorized",
            Kind::Transient => "transient",
            Kind::Corrupt => "corrupt",
            Kind::Cancelled => "cancelled",
        }
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

pub struct Error {
    kind: Kind,
    /// What was being done or what went wrong, outermost context first.
    message: String,
    source: Option<Source>,
}

impl Error {
    pub fn new(kind: Kind, msg: impl fmt::Display) -> Self {
        Error {
            kind,
            message: msg.to_string(),
            source: None,
        }
    }

    pub fn usage(msg: impl fmt::Display) -> Self {
        Error::new(Kind::Usage, msg)
    }

    pub fn not_found(msg: impl fmt::Display) -> Self {
        Error::new(Kind::NotFound, msg)
    }

    pub fn unauthorized(msg: impl fmt::Display) -> Self {
        Error::new(Kind::Unauthorized, msg)
    }

    pub fn transient(msg: impl fmt::Display) -> Self {
        Error::new(Kind::Transient, msg)
    }

    pub fn corrupt(msg: impl fmt::Display) -> Self {
        Error::new(Kind::Corrupt, msg)
    }

    pub fn cancelled() -> Self {
        Error::new(Kind::Cancelled, "cancelled")
    }

    /// An I/O error, classified by what it says about the next attempt:
    /// the kind of a sizeguard error it carries (see [`Error::into_io`]);
    /// else a missing file is not found, a refused permission is usage, a
    /// connection or disk problem is transient, malformed data is corrupt.
    pub fn io(msg: impl fmt::Display, e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = Error::kind_in_io(&e).unwrap_or(match e.kind() {
            K::NotFound => Kind::NotFound,
            K::PermissionDenied => Kind::Usage,
            K::InvalidData | K::InvalidInput | K::UnexpectedEof => Kind::Corrupt,
            _ => Kind::Transient,
        });
        Error::new(kind, msg).with_source(e)
    }

    /// This error as the `io::Error` a `Read` implementation must return,
    /// carried whole inside it: whoever reads the stream gets the same kind
    /// back with [`Error::kind_in_io`], not a guess from the I/O kind (a 404
    /// on a resumed download stays not found, so nothing retries it).
    pub fn into_io(self) -> std::io::Error {
        use std::io::ErrorKind as K;
        let kind = match self.kind {
            Kind::Corrupt => K::InvalidData,
            Kind::NotFound => K::NotFound,
            Kind::Unauthorized => K::PermissionDenied,
            Kind::Usage => K::InvalidInput,
            Kind::Transient | Kind::Cancelled => K::Other,
        };
        std::io::Error::new(kind, self)
    }

    /// The kind of the sizeguard error an `io::Error` carries, if it does.
    pub fn kind_in_io(e: &std::io::Error) -> Option<Kind> {
        e.get_ref()?.downcast_ref::<Error>().map(Error::kind)
    }

    /// Attaches the error that caused this one; it is shown after the
    /// message, and a caller can walk it with [`std::error::Error::source`].
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Prefixes the message with what was being done.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn exit_code(&self) -> ExitCode {
        self.kind.exit_code()
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == Kind::NotFound
    }

    pub fn is_cancelled(&self) -> bool {
        self.kind == Kind::Cancelled
    }

    /// The whole chain on one line: `message: cause: cause's cause`.
    pub fn one_line(&self) -> String {
        chain(self)
    }
}

/// Formats an error and its causes as one line, the form every message of
/// sizeguard takes (a CI log wants one line; registry bodies and OS
/// messages may span several). A cause whose text the message already ends
/// with is not repeated.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = one_line(&e.to_string());
    let mut next = e.source();
    while let Some(cause) = next {
        let text = one_line(&cause.to_string());
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, chain(self))
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

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

/// The line a command ends with when it fails: `sizeguard: error: ` and the
/// message, with every control or invisible character shown as an escape
/// ([`crate::plain_text::escape`]). Messages quote what images and
/// registries said (a media type, an error body): a lone carriage return
/// in them would end the line for GitHub's runner, and what followed would
/// be read as a workflow command of its own.
pub fn error_line(message: &str) -> String {
    format!("sizeguard: error: {}", crate::plain_text::escape(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_one_line() {
        let io = std::io::Error::other("first\n  second\r\n\nthird");
        let e = Error::transient("reading blob")
            .with_source(io)
            .context("pulling x");
        assert_eq!(e.one_line(), "pulling x: reading blob: first second third");
        assert_eq!(e.exit_code(), ExitCode::Measure);
        assert!(e.kind().is_retryable());
    }

    #[test]
    fn the_error_line_has_no_line_break_of_any_kind() {
        let e = Error::corrupt("media type \"x\r::error::forged\"")
            .with_source(std::io::Error::other("a\u{2028}b\u{85}c"));
        let line = error_line(&e.one_line());
        assert_eq!(
            line,
            "sizeguard: error: media type \"x\\r::error::forged\": a\\u{2028}b\\u{85}c"
        );
        assert!(!line.contains(['\r', '\n', '\u{2028}', '\u{85}']));
        assert_eq!(error_line("plain"), "sizeguard: error: plain");
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::other("connection reset");
        let e = Error::transient("download: connection reset").with_source(io);
        assert_eq!(e.one_line(), "download: connection reset");
    }

    #[test]
    fn kinds_decide_exit_codes_and_retries() {
        assert_eq!(Error::usage("x").exit_code(), ExitCode::Usage);
        for k in [
            Kind::NotFound,
            Kind::Unauthorized,
            Kind::Corrupt,
            Kind::Cancelled,
        ] {
            assert_eq!(k.exit_code(), ExitCode::Measure);
            assert!(!k.is_retryable());
        }
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Error::io("f", missing).kind(), Kind::NotFound);
    }
}
