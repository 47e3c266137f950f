//! Where the workers read images from: the options of each configured
//! registry (its own credentials, plain HTTP or not), one set for
//! everything else (a fixed baseline elsewhere), and progress recorded to
//! the log.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::app::Sources;
use crate::measure::progress::{LayerProgress, Progress};
use crate::measure::short_digest;
use crate::source::reference::ImageRef;
use crate::source::registry::RegistryOptions;
use crate::source::{ImageSource, SourceFactory, SourceOptions};

/// Opens references with the options of their registry.
///
/// Every open gets a factory of its own: a factory's registry deadline
/// (`RegistryOptions::timeout`, the CLI's `--timeout`) counts from when it
/// is made, which suits a command line run but would leave a long-lived
/// service with no time at all after the first ten minutes. The price is
/// a connection and a token per image instead of per process, small next
/// to measuring the image.
pub struct RegistrySources {
    pub by_host: HashMap<String, RegistryOptions>,
    pub default: RegistryOptions,
}

#[async_trait]
impl Sources for RegistrySources {
    async fn open(&self, reference: &str) -> Result<Arc<dyn ImageSource>, crate::error::Error> {
        // The options (credentials among them) are chosen by the registry
        // the reference is read as, never by how its text begins: a
        // dotless first component is a Docker Hub path, not a host, and
        // the credentials of a host named like it must not go there.
        let parsed = ImageRef::parse(reference)?;
        let registry = match &parsed {
            ImageRef::Registry(r) => self.by_host.get(&r.registry().to_ascii_lowercase()),
            _ => None,
        };
        let registry = registry.unwrap_or(&self.default).clone();
        SourceFactory::new(SourceOptions { registry })
            .open_ref(parsed)
            .await
    }
}

/// Layer progress as debug log lines: a server has no terminal to draw
/// bars on, and per-layer timings are what an operator looks for.
pub struct LoggedProgress;

impl Progress for LoggedProgress {
    fn layer_started(&self, digest: &str, total_bytes: u64) -> Box<dyn LayerProgress> {
        let layer = short_digest(digest).to_string();
        tracing::debug!(layer, total_bytes, "layer streaming");
        Box::new(LoggedLayer {
            layer,
            started: Instant::now(),
        })
    }
}

struct LoggedLayer {
    layer: String,
    started: Instant,
}

impl LayerProgress for LoggedLayer {
    fn advanced(&self, _bytes: u64) {}

    fn finished(&self) {
        tracing::debug!(
            layer = self.layer,
            seconds = self.started.elapsed().as_secs_f64(),
            "layer done"
        );
    }
}
