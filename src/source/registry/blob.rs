//! Layer blobs from a registry, streamed to the analyzer and resumed when a
//! connection breaks off.
//!
//! The first request is a `GET` of the whole blob; a 429 or 503 to it
//! waits what its `Retry-After` asks. A resume is `Range: bytes=N-` from
//! the byte where the body stopped, checked by its `Content-Range` (a 206
//! of the right length that starts at another byte would otherwise be
//! caught only by the digest at the end); a 401 when the token expired
//! during the download asks for a new token, and the resume goes on. When the registry
//! ignores `Range` (a 200) or answers for another range, the blob is read
//! again from byte zero without `Range`, the bytes already delivered
//! skipped (a bounded number of times). The digest is checked here, over
//! the bytes the analyzer got, whichever answers they came from.
//!
//! A body that ends before the descriptor's size (a close-delimited body
//! cut short) is a truncation, resumed like a broken connection, never a
//! digest mismatch.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::StatusCode;
use reqwest::header;
use tokio::sync::mpsc;

use super::Session;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, chain};
use crate::retry::{Backoff, Deadline, gave_up, retrying};
use crate::units::format_duration;

/// Interruptions one download survives, however much each attempt got
/// through (the deadline bounds the time; this bounds the requests).
const MAX_INTERRUPTIONS: u32 = 100;

/// Times a download starts again from byte zero (a registry that ignores
/// `Range`, or answers for another range): each reads again what was
/// already delivered.
const MAX_RESTARTS: u32 = 3;

/// One layer's download.
pub struct Download {
    pub session: Arc<Session>,
    pub size: u64,
    pub digest: Digest,
    /// `layer sha256:…`, for messages.
    pub what: String,
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
        let progress = Progress {
            bytes: 0,
            hasher: self.digest.hasher(),
            range_broken: false,
            restarts: 0,
        };
        let first = self.whole(self.get(None).await?, &progress)?;
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        tokio::spawn(async move {
            if let Err(e) = self.pump(first, progress, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Box::new(ChannelReader::new(rx)))
    }

    fn deadline(&self) -> &Deadline {
        self.session.deadline()
    }

    fn wrong_length(&self, len: u64) -> Error {
        Error::corrupt(format!(
            "{}: blob is truncated or padded: the registry serves {len} bytes, the descriptor says {}",
            self.what, self.size
        ))
    }

    /// The blob from byte `progress.bytes` on, tried again on transient
    /// failures: a range when the registry serves the one asked for, else
    /// the whole blob with the delivered bytes to skip.
    async fn resume(&self, progress: &mut Progress) -> Result<Answer, Error> {
        let from = progress.bytes;
        if progress.range_broken {
            return self.restart(progress).await;
        }
        let resp = self.get(Some(from)).await?;
        if resp.status() != StatusCode::PARTIAL_CONTENT {
            tracing::info!(
                "{}: the registry ignores Range; reading again from byte 0",
                self.what
            );
            progress.range_broken = true;
            self.count_restart(progress)?;
            return self.whole(resp, progress);
        }
        match served_range(&resp, from, self.size) {
            Ok(()) => Ok(Answer {
                body: body_of(resp),
                skip: 0,
            }),
            Err(why) => {
                tracing::info!(
                    "{}: asked for bytes={from}-, the registry answered {why}; reading again from byte 0",
                    self.what
                );
                progress.range_broken = true;
                self.restart(progress).await
            }
        }
    }

    /// The whole blob again, without `Range`, its delivered bytes to skip.
    async fn restart(&self, progress: &mut Progress) -> Result<Answer, Error> {
        self.count_restart(progress)?;
        let resp = self.get(None).await?;
        if resp.status() == StatusCode::PARTIAL_CONTENT
            && let Err(why) = served_range(&resp, 0, self.size)
        {
            return Err(Error::corrupt(format!(
                "{}: asked for the whole blob, the registry answered {why}",
                self.what
            )));
        }
        self.whole(resp, progress)
    }

    fn count_restart(&self, progress: &mut Progress) -> Result<(), Error> {
        progress.restarts += 1;
        if progress.restarts > MAX_RESTARTS {
            return Err(Error::transient(format!(
                "{}: started again from byte 0 {MAX_RESTARTS} times (the registry does not serve ranges); giving up at {} of {} bytes",
                self.what, progress.bytes, self.size
            )));
        }
        Ok(())
    }

    /// An answer with the whole blob, its delivered bytes to skip.
    fn whole(&self, resp: reqwest::Response, progress: &Progress) -> Result<Answer, Error> {
        if let Some(len) = resp.content_length().filter(|l| *l != self.size) {
            return Err(self.wrong_length(len));
        }
        Ok(Answer {
            body: body_of(resp),
            skip: progress.bytes,
        })
    }

    /// A `GET` of the blob (from byte `from`, or whole), with the
    /// session's authentication (renewed on a 401), tried again on
    /// transient failures; a 2xx answer.
    async fn get(&self, from: Option<u64>) -> Result<reqwest::Response, Error> {
        let session = &self.session;
        retrying(self.deadline(), &self.what, || {
            session.get_blob(
                &self.digest,
                from.map(|n| format!("bytes={n}-")),
                &self.what,
            )
        })
        .await
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
                return Err(gave_up(&error, interruptions).into_io());
            };
            tracing::info!(
                "{}: {why}; resuming at byte {} in {}",
                self.what,
                progress.bytes,
                format_duration(delay)
            );
            self.deadline()
                .sleep(delay, error)
                .await
                .map_err(Error::into_io)?;
            answer = self.resume(&mut progress).await.map_err(Error::into_io)?;
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
            // Done at the descriptor's size (the digest is checked over
            // what was delivered); a body that goes on is not read.
            if progress.bytes == size && skip == 0 {
                return Ok(Copied::Done);
            }
            let next = self
                .deadline()
                .run_unless_stalled(&downloading, body.next())
                .await
                .map_err(|e| self.timed_out(e, progress.bytes))?;
            let mut chunk = match next {
                None => {
                    return Ok(Copied::Interrupted(format!(
                        "the registry sent nothing for {}",
                        format_duration(self.deadline().stall())
                    )));
                }
                Some(None) => {
                    return Ok(Copied::Interrupted(format!(
                        "the body ended early (truncated) after {} of {size} bytes",
                        progress.bytes
                    )));
                }
                Some(Some(Err(e))) => {
                    return Ok(Copied::Interrupted(format!(
                        "the connection broke after {} of {size} bytes: {}",
                        progress.bytes,
                        chain(&e)
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
        Error::new(e.kind(), message).into_io()
    }
}

/// An answer's body as the analyzer's chunks. reqwest's errors name the
/// URL, which after a redirect may be a signed one: it is dropped.
fn body_of(resp: reqwest::Response) -> Body {
    resp.bytes_stream()
        .map(|chunk| chunk.map_err(|e| io::Error::other(e.without_url())))
        .boxed()
}

/// Whether a 206 is the part asked for, `bytes=FROM-` of a blob of `size`
/// bytes: its `Content-Range` starts at `from` and ends at the blob's end,
/// its total (unless `*`) is the blob's size, and its length agrees. If
/// not, what it is instead.
fn served_range(resp: &reqwest::Response, from: u64, size: u64) -> Result<(), String> {
    let value = resp
        .headers()
        .get(header::CONTENT_RANGE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    check_range(value.as_deref(), resp.content_length(), from, size)
}

fn check_range(
    content_range: Option<&str>,
    content_length: Option<u64>,
    from: u64,
    size: u64,
) -> Result<(), String> {
    let Some(value) = content_range else {
        return Err("a 206 without Content-Range".into());
    };
    let Some((start, end, total)) = parse_content_range(value) else {
        return Err(format!("an unreadable Content-Range {value:?}"));
    };
    let why = if start != from {
        format!("starts at byte {start}")
    } else if let Some(total) = total.filter(|t| *t != size) {
        format!("is of a blob of {total} bytes, not {size}")
    } else if end.checked_add(1) != Some(size) {
        format!("ends at byte {end}, not at the blob's end")
    } else if let Some(len) = content_length.filter(|l| Some(*l) != size.checked_sub(from)) {
        format!("is {len} bytes long")
    } else {
        return Ok(());
    };
    Err(format!("Content-Range {value:?}, which {why}"))
}

/// `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`).
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last): (u64, u64) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (first <= last).then_some((first, last, total))
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
    fn failures_reach_the_analyzer_with_their_kind() {
        let timed_out =
            Deadline::after(std::time::Duration::from_secs(1)).timed_out("downloading layer x");
        for e in [
            Error::corrupt("x"),
            Error::not_found("blob unknown"),
            Error::unauthorized("token expired"),
            Error::transient("reset"),
            timed_out,
        ] {
            let kind = e.kind();
            let io = e.into_io();
            assert_eq!(Error::kind_in_io(&io), Some(kind));
            assert_eq!(Error::io("reading", io).kind(), kind);
        }
    }

    #[test]
    fn a_part_is_the_one_asked_for_only_if_its_content_range_says_so() {
        let size = 1000;
        assert_eq!(
            check_range(Some("bytes 400-999/1000"), Some(600), 400, size),
            Ok(())
        );
        assert_eq!(
            check_range(Some("bytes 400-999/*"), None, 400, size),
            Ok(())
        );
        for (value, length) in [
            // The right length, the wrong bytes.
            (Some("bytes 0-599/1000"), Some(600)),
            (Some("bytes 400-999/2000"), Some(600)),
            (Some("bytes 400-899/1000"), Some(500)),
            (Some("bytes 400-999/1000"), Some(500)),
            (Some("bytes */1000"), Some(600)),
            (Some("items 400-999/1000"), Some(600)),
            (None, Some(600)),
        ] {
            let why = check_range(value, length, 400, size).unwrap_err();
            assert!(!why.is_empty(), "{value:?}");
        }
        let why = check_range(Some("bytes 0-599/1000"), Some(600), 400, size).unwrap_err();
        assert!(why.contains("starts at byte 0"), "{why}");
    }
}
