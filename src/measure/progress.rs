//! Where measuring reports how far it got. The analyzer never draws
//! anything itself: the command line shows bars on a terminal, a server
//! worker may record progress in its queue, a test may ignore it.

/// Told about every layer that is streamed (cached and probed layers are
/// not streamed and are not reported).
pub trait Progress: Send + Sync {
    /// A layer starts streaming; `total_bytes` is its compressed size.
    fn layer_started(&self, digest: &str, total_bytes: u64) -> Box<dyn LayerProgress>;
}

/// One layer's stream. Called from the blocking thread that analyzes it.
pub trait LayerProgress: Send + Sync {
    /// `bytes` more of the blob were read.
    fn advanced(&self, bytes: u64);
    /// The layer is done (measured, failed or cancelled).
    fn finished(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn layer_started(&self, _digest: &str, _total_bytes: u64) -> Box<dyn LayerProgress> {
        Box::new(NoProgress)
    }
}

impl LayerProgress for NoProgress {
    fn advanced(&self, _bytes: u64) {}
    fn finished(&self) {}
}
