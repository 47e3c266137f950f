//! Layer blobs from a registry, through oci-client, streamed to the
//! analyzer and resumed when a connection breaks off: with a `Range`
//! request from the byte where it stopped (`pull_blob_stream_partial`),
//! or, when the registry ignores `Range` (a 200) or answers for another
//! range, from byte zero again with the bytes already delivered skipped
//! (a bounded number of times). The digest is checked here, over the bytes
//! the analyzer got, whichever responses they came from: oci-client checks
//! only a blob read in one piece.
//!
//! A body that ends before the descriptor's size (a close-delimited body
//! cut short) is a truncation, resumed like a broken connection, never a
//! digest mismatch.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use futures::StreamExt;
use futures::stream::BoxStream;
use oci_client::client::BlobResponse;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::OciDescriptor;
use oci_client::{Client, Reference};
use tokio::sync::mpsc;

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Kind, chain};
use crate::source::retry::{Backoff, Deadline, Failed, format_duration, gave_up, retrying};

/// Interruptions one download survives, however much each attempt got
/// through (the deadline bounds the time; this bounds the requests).
const MAX_INTERRUPTIONS: u32 = 100;

/// Times a download starts again from byte zero (a registry that ignores
/// `Range`, or answers for another range): each reads again what was
/// already delivered.
const MAX_RESTARTS: u32 = 3;

/// Turns oci-client's errors into sizeguard's, for one host.
pub type Explain = fn(&str, &str, &str, OciDistributionError) -> Error;

/// One layer's download.
pub struct Download {
    pub client: Client,
    pub reference: Reference,
    pub desc: OciDescriptor,
    pub size: u64,
    pub digest: Digest,
    pub deadline: Deadline,
    /// `layer sha256:…`, for messages.
    pub what: String,
    /// The registry host and where its credentials came from, for messages.
    pub host: String,
    pub who: String,
    pub explain: Explain,
}

type Body = BoxStream<'static, io::Result<Bytes>>;

/// An answer's body and how many of its first bytes were delivered
/// already.
struct Answer {
    body: Body,
    skip: u64,
}

/// How one answer's body went.
enum Copied {
    Done,
    /// The analyzer stopped reading (finished, failed, cancelled).
    Abandoned,
    /// The body broke off, ended early or stalled, for this reason.
    Interrupted(String),
}

/// What reached the analyzer so far, and the state of resuming.
struct Progress {
    bytes: u64,
    hasher: Hasher,
    /// The registry does not serve ranges (as asked): resume from zero.
    range_broken: bool,
    restarts: u32,
}

impl Download {
    /// Sends the first request (its errors are the caller's: not found,
    /// unauthorized, …) and streams the body from a task of its own, on
    /// the async runtime's threads; the analyzer's blocking thread only
    /// inflates and parses. A few chunks of read-ahead keep both busy
    /// without buffering the layer.
    pub async fn open(self) -> Result<Box<dyn Read + Send>, Error> {
        let mut progress = Progress {
            bytes: 0,
            hasher: self.digest.hasher(),
            range_broken: false,
            restarts: 0,
        };
        let first = self.request(&mut progress).await?;
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        tokio::spawn(async move {
            if let Err(e) = self.pump(first, progress, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Box::new(ChannelReader::new(rx)))
    }

    fn explain(&self, e: OciDistributionError) -> Error {
        (self.explain)(&self.host, &self.who, &self.what, e)
    }

    /// The blob from byte `progress.bytes` on, tried again on transient
    /// failures: a range when the registry serves one, else the whole
    /// blob with the delivered bytes to skip.
    async fn request(&self, progress: &mut Progress) -> Result<Answer, Error> {
        let from = progress.bytes;
        if from > 0 && progress.range_broken {
            return self.restart(progress).await;
        }
        let answer = retrying(&self.deadline, &self.what, || async {
            let sent =
                self.client
                    .pull_blob_stream_partial(&self.reference, &self.desc, from, None);
            self.stall_guarded(sent)
                .await?
                .map_err(|e| Failed::from(self.explain(e)))
        })
        .await?;
        let (stream, partial) = match answer {
            BlobResponse::Partial(s) => (s, true),
            BlobResponse::Full(s) => (s, false),
        };
        let expected = if partial { self.size - from } else { self.size };
        let length_ok = stream.content_length.is_none_or(|l| l == expected);
        match (partial, length_ok) {
            (true, true) => Ok(Answer {
                body: stream.stream,
                skip: 0,
            }),
            (false, true) => {
                if from > 0 {
                    tracing::info!(
                        "{}: the registry ignores Range; reading again from byte 0",
                        self.what
                    );
                    progress.range_broken = true;
                    progress.restarts += 1;
                }
                Ok(Answer {
                    body: stream.stream,
                    skip: from,
                })
            }
            // A part of another length than asked for: another range.
            (true, false) if from > 0 => {
                tracing::info!(
                    "{}: the registry answered for another range than bytes={from}-; reading again from byte 0",
                    self.what
                );
                progress.range_broken = true;
                self.restart(progress).await
            }
            _ => Err(Error::corrupt(format!(
                "{}: blob is truncated or padded: the registry serves {} bytes, the descriptor says {}",
                self.what,
                stream.content_length.unwrap_or(0),
                self.size
            ))),
        }
    }

    /// The whole blob again, without `Range`, its delivered bytes to skip.
    async fn restart(&self, progress: &mut Progress) -> Result<Answer, Error> {
        progress.restarts += 1;
        if progress.restarts > MAX_RESTARTS {
            return Err(Error::transient(format!(
                "{}: started again from byte 0 {MAX_RESTARTS} times (the registry does not serve ranges); giving up at {} of {} bytes",
                self.what, progress.bytes, self.size
            )));
        }
        let stream = retrying(&self.deadline, &self.what, || async {
            let sent = self.client.pull_blob_stream(&self.reference, &self.desc);
            self.stall_guarded(sent)
                .await?
                .map_err(|e| Failed::from(self.explain(e)))
        })
        .await?;
        if let Some(len) = stream.content_length.filter(|l| *l != self.size) {
            return Err(Error::corrupt(format!(
                "{}: blob is truncated or padded: the registry serves {len} bytes, the descriptor says {}",
                self.what, self.size
            )));
        }
        Ok(Answer {
            body: stream.stream,
            skip: progress.bytes,
        })
    }

    /// A request's answer, unless it stalls (a transient failure) or the
    /// deadline passes.
    async fn stall_guarded<T>(
        &self,
        sent: impl std::future::Future<Output = T>,
    ) -> Result<T, Failed> {
        match self
            .deadline
            .run_unless_stalled(format!("downloading {}", self.what), sent)
            .await?
        {
            Some(answer) => Ok(answer),
            None => Err(Error::transient(format!(
                "{}: registry {} sent no answer for {}",
                self.what,
                self.host,
                format_duration(self.deadline.stall())
            ))
            .into()),
        }
    }

    /// Streams the blob to the analyzer, resuming after interruptions, and
    /// verifies its digest at the end.
    async fn pump(
        &self,
        first: Answer,
        mut progress: Progress,
        tx: &mpsc::Sender<io::Result<Bytes>>,
    ) -> io::Result<()> {
        let mut answer = first;
        let mut backoff = Backoff::new();
        let mut interruptions = 0;
        loop {
            let before = progress.bytes;
            let why = match self.copy(answer, &mut progress, tx).await? {
                Copied::Done => break,
                Copied::Abandoned => return Ok(()),
                Copied::Interrupted(why) => why,
            };
            interruptions += 1;
            if progress.bytes > before {
                backoff.reset();
            }
            // The analyzer names the layer.
            let error = Error::transient(&why);
            let delay = backoff
                .next(None)
                .filter(|_| interruptions < MAX_INTERRUPTIONS);
            let Some(delay) = delay else {
                return Err(as_io(gave_up(&error, interruptions)));
            };
            tracing::info!(
                "{}: {why}; resuming at byte {} in {}",
                self.what,
                progress.bytes,
                format_duration(delay)
            );
            self.deadline.sleep(delay, error).await.map_err(as_io)?;
            answer = self.request(&mut progress).await.map_err(as_io)?;
        }
        let actual = progress.hasher.finish();
        if actual != self.digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "digest mismatch: descriptor says {}, content is {actual}",
                    self.digest
                ),
            ));
        }
        Ok(())
    }

    /// Copies one answer's body, skipping its first `skip` bytes (already
    /// delivered, when the blob is read again from byte zero).
    async fn copy(
        &self,
        answer: Answer,
        progress: &mut Progress,
        tx: &mpsc::Sender<io::Result<Bytes>>,
    ) -> io::Result<Copied> {
        let size = self.size;
        let Answer { mut body, mut skip } = answer;
        let downloading = format!("downloading {}", self.what);
        loop {
            // Done at the descriptor's size: a verifying stream from
            // oci-client is not polled to its end (the digest is checked
            // here, over what was delivered).
            if progress.bytes == size && skip == 0 {
                return Ok(Copied::Done);
            }
            let next = self
                .deadline
                .run_unless_stalled(&downloading, body.next())
                .await
                .map_err(|e| self.timed_out(e, progress.bytes))?;
            let mut chunk = match next {
                None => {
                    return Ok(Copied::Interrupted(format!(
                        "the registry sent nothing for {}",
                        format_duration(self.deadline.stall())
                    )));
                }
                Some(None) => {
                    return Ok(Copied::Interrupted(format!(
                        "the body ended early (truncated) after {} of {size} bytes",
                        progress.bytes
                    )));
                }
                Some(Some(Err(e))) if is_transport(&e) => {
                    return Ok(Copied::Interrupted(format!(
                        "the connection broke after {} of {size} bytes: {}",
                        progress.bytes,
                        chain(&e)
                    )));
                }
                // oci-client's verifier, complaining about a body that
                // ended before the descriptor's size: a truncation.
                Some(Some(Err(_))) => {
                    return Ok(Copied::Interrupted(format!(
                        "the body ended early (truncated) after {} of {size} bytes",
                        progress.bytes
                    )));
                }
                Some(Some(Ok(c))) => c,
            };
            let skipped = skip.min(chunk.len() as u64);
            chunk.advance(skipped as usize);
            skip -= skipped;
            if chunk.is_empty() {
                continue;
            }
            if progress.bytes + chunk.len() as u64 > size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob is longer than its descriptor: more than {size} bytes"),
                ));
            }
            progress.bytes += chunk.len() as u64;
            progress.hasher.update(&chunk);
            if tx.send(Ok(chunk)).await.is_err() {
                return Ok(Copied::Abandoned);
            }
        }
    }

    /// The deadline's error, saying how far the download got.
    fn timed_out(&self, e: Error, received: u64) -> io::Error {
        let message = format!(
            "{} ({received} of {} bytes received)",
            e.one_line(),
            self.size
        );
        io::Error::new(io::ErrorKind::TimedOut, message)
    }
}

/// Whether a body's error came from the connection (not from oci-client's
/// digest check at its end).
fn is_transport(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<reqwest::Error>())
}

/// An error for the analyzer's reader: its I/O kind carries what matters
/// to the analyzer (corrupt data, or worth trying again).
fn as_io(e: Error) -> io::Error {
    let kind = match e.kind() {
        Kind::Corrupt => io::ErrorKind::InvalidData,
        Kind::NotFound => io::ErrorKind::NotFound,
        Kind::Unauthorized => io::ErrorKind::PermissionDenied,
        _ if e.to_string().contains("timed out") => io::ErrorKind::TimedOut,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.one_line())
}

/// A blocking `Read` over chunks sent by an async task: the bridge between
/// a download on the runtime and an analyzer on a blocking thread.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    chunk: Bytes,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            chunk: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(e),
                // The sender finished: end of stream.
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_reach_the_analyzer_with_the_io_kind_that_classifies_them() {
        assert_eq!(
            as_io(Error::corrupt("x")).kind(),
            io::ErrorKind::InvalidData
        );
        let timed_out =
            Deadline::after(std::time::Duration::from_secs(1)).timed_out("downloading layer x");
        assert_eq!(as_io(timed_out).kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            as_io(Error::transient("reset")).kind(),
            io::ErrorKind::Other
        );
    }
}
