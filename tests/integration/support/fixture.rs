//! The committed demo fixture (`fixtures/demo`): v1 a base and a library
//! layer, v2 the same plus an application layer (see tests/integration/fixtures.rs).

use std::path::{Path, PathBuf};

/// The fixture's layout, relative to the crate root.
pub const DEMO: &str = "fixtures/demo";

/// The fixture's layout as an absolute path, whatever the working directory.
pub fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DEMO)
}

/// `oci:/…/fixtures/demo:TAG`.
pub fn demo(tag: &str) -> String {
    format!("oci:{}:{tag}", demo_dir().display())
}
