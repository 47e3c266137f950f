//! Where a verdict goes besides the report: GitHub.
//!
//! - [`github`]: the token, the repository and pull request a run is about
//!   (from `GITHUB_*` variables and the event file).
//! - [`comment`]: the sticky pull-request comment over the REST API.
//! - [`actions`]: GitHub Actions environment files (step outputs, the step
//!   summary) and workflow annotations.

pub mod actions;
pub mod comment;
pub mod github;
