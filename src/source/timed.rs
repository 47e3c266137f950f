//! The run's deadline (`--timeout`) for sources that read local files (a
//! layout, an archive) or a local engine (`docker-daemon:`, `podman:`):
//! registries keep it themselves, request by request; these get it at
//! every call and every read, so a decompression bomb in a layout stops
//! there too, and so does an engine that stops sending its export (the
//! one-pass stream runs under the deadline as a whole).

use std::io::Read;
use std::sync::Arc;

use async_trait::async_trait;

use super::platform::PlatformSelector;
use super::{
    BlobVisitor, ImageSource, LayerDescriptor, OnePassSource, ResolvedImage, StreamedImage,
};
use crate::error::Error;
use crate::retry::Deadline;

pub struct Timed {
    pub inner: Arc<dyn ImageSource>,
    pub deadline: Deadline,
}

#[async_trait]
impl ImageSource for Timed {
    fn reference(&self) -> String {
        self.inner.reference()
    }

    async fn resolve(&self, platforms: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
        self.expired(|| format!("resolving {}", self.inner.reference()))?;
        let what = format!("resolving {}", self.inner.reference());
        self.deadline
            .run(what, self.inner.resolve(platforms))
            .await?
    }

    async fn open_layer(&self, layer: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
        let what = format!("reading layer {}", layer.digest);
        self.expired(|| what.clone())?;
        let reader = self
            .deadline
            .run(&what, self.inner.open_layer(layer))
            .await??;
        Ok(Box::new(TimedReader {
            inner: reader,
            deadline: self.deadline,
            what,
        }))
    }

    fn verifies_digests(&self) -> bool {
        self.inner.verifies_digests()
    }

    fn serves_pushed_blobs(&self) -> bool {
        self.inner.serves_pushed_blobs()
    }

    fn checks_diff_ids(&self) -> bool {
        self.inner.checks_diff_ids()
    }

    async fn read_range(
        &self,
        layer: &LayerDescriptor,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let what = format!("reading layer {}", layer.digest);
        let read = self.inner.read_range(layer, offset, len);
        self.deadline.run(what, read).await?
    }

    /// The inner source's stream, under the deadline.
    fn one_pass(&self) -> Option<&dyn OnePassSource> {
        self.inner.one_pass().map(|_| self as &dyn OnePassSource)
    }
}

#[async_trait]
impl OnePassSource for Timed {
    /// Dropped at the deadline: the inner source stops reading then (an
    /// engine's export stops at its next chunk, or at once if it stalls).
    async fn stream(
        &self,
        image: &ResolvedImage,
        visit: BlobVisitor,
    ) -> Result<StreamedImage, Error> {
        let what = format!("streaming {}", self.inner.reference());
        let Some(inner) = self.inner.one_pass() else {
            return Err(Error::usage(format!("{what}: not a one-pass source")));
        };
        self.expired(|| what.clone())?;
        self.deadline.run(&what, inner.stream(image, visit)).await?
    }
}

impl Timed {
    /// Local work does not always wait on anything a timer can interrupt:
    /// a deadline already past fails before it starts.
    fn expired(&self, what: impl FnOnce() -> String) -> Result<(), Error> {
        match self.deadline.expired() {
            true => Err(self.deadline.timed_out(what())),
            false => Ok(()),
        }
    }
}

/// A layer reader that fails once the deadline has passed.
struct TimedReader {
    inner: Box<dyn Read + Send>,
    deadline: Deadline,
    what: String,
}

impl Read for TimedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.deadline.expired() {
            return Err(self.deadline.timed_out(&self.what).into_io());
        }
        self.inner.read(buf)
    }
}
