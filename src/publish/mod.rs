//! Where a verdict goes besides the report: GitHub. The report renderers
//! produce text; this module delivers it.
//!
//! - [`github`]: what a run is about: the token, the repository and the
//!   pull request (from `GITHUB_*` variables, flags and the event file),
//!   and the API client the comment and the status share.
//! - [`comment`]: the sticky pull-request comment over the REST API, found
//!   again by its marker and edited in place; rate limits and read-only
//!   tokens handled.
//! - [`status`]: a commit status on the commit an image names in its
//!   labels, for images `serve` judges outside a pull request.
//! - [`notify`]: an optional JSON POST (a chat webhook) on warn and fail.
//! - [`actions`]: the GitHub Actions runner's environment files (step
//!   outputs, step summary) and workflow commands (annotations for fired
//!   rules, notices, warnings).

pub mod actions;
pub mod comment;
pub mod github;
pub mod notify;
pub mod status;
