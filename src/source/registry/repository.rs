//! A repository as a store of documents, read and written by sizeguard
//! itself: manifests by tag or digest, small blobs, the tag list, the
//! referrers of a manifest (the OCI 1.1 referrers API, or the tag schema
//! `sha256-HEX` registries without it keep), and the writes that attach an
//! artifact to an image (a monolithic blob upload, a manifest `PUT`).
//!
//! Writes ask the token service for `pull,push` on the repository; a
//! registry that refuses them (401, 403, a read-only registry's 405) is
//! one line saying the credentials need push rights. Every request runs
//! under the run's deadline and retry policy, every document read is
//! capped, and every URL the registry names (an upload's `Location`, the
//! tag list's `Link`) must be on the registry's own origin: a registry
//! cannot send sizeguard's credentials, or an upload, elsewhere.

use std::sync::Arc;

use bytes::Bytes;
use oci_client::Reference;
use reqwest::header::{self, HeaderValue};
use reqwest::{Response, StatusCode, Url};
use serde_json::Value;

use super::http;
use super::{RegistryPool, Session};
use crate::digest::Digest;
use crate::error::Error;
use crate::retry::{Failed, retrying};
use crate::source::manifest::{ACCEPTED_MANIFESTS, MAX_DOCUMENT_BYTES, OCI_INDEX, OCI_MANIFEST};

/// The most tags `tags` reads, however many pages the registry offers.
pub const MAX_TAGS: usize = 10_000;

/// Tags asked for per page of the tag list.
const TAGS_PAGE: usize = 100;

/// The most referrers one subject's listing may hold; a longer one is cut.
const MAX_REFERRERS: usize = 1000;

/// A descriptor as the OCI image spec writes it, kept as JSON so that a
/// referrer another tool wrote keeps every field it had.
pub type Descriptor = Value;

/// A manifest as read: its bytes, digest and media type.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Bytes,
    pub digest: Digest,
    pub media_type: String,
}

impl Manifest {
    /// Its descriptor (media type, digest, size).
    pub fn descriptor(&self) -> Descriptor {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest.to_string(),
            "size": self.bytes.len(),
        })
    }
}

/// The tags of a repository, and whether the listing was cut at
/// [`MAX_TAGS`].
#[derive(Debug, Clone, Default)]
pub struct Tags {
    pub tags: Vec<String>,
    pub cut: bool,
}

/// The referrers of a subject, as listed.
#[derive(Debug, Clone, Default)]
pub struct Referrers {
    pub descriptors: Vec<Descriptor>,
    /// Listed by the referrers API (else by the fallback tag).
    pub api: bool,
}

/// What a manifest `PUT` answered.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: Digest,
    /// The registry's `OCI-Subject` header: it indexes referrers itself.
    pub indexes_subject: bool,
}

/// The tag registries without the referrers API list a subject's
/// referrers under (OCI distribution spec 1.1, "referrers tag schema").
pub fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().as_str(), subject.hex())
}

impl RegistryPool {
    /// A repository of a registry (`reference`'s; its tag or digest is
    /// ignored), for reading, or for reading and writing (`push`: the
    /// token asked for covers pushes).
    pub async fn repository(&self, reference: &Reference, push: bool) -> Result<Repository, Error> {
        let host = self.host(reference).await?;
        Ok(Repository {
            name: format!("{}/{}", reference.registry(), reference.repository()),
            session: Arc::new(Session {
                reference: reference.clone(),
                host,
                auth: tokio::sync::Mutex::new(None),
                push,
            }),
        })
    }
}

/// One repository of a registry host, with the authentication its
/// requests carry.
pub struct Repository {
    /// `REGISTRY/REPOSITORY`, for messages.
    name: String,
    session: Arc<Session>,
}

impl Repository {
    /// `REGISTRY/REPOSITORY`.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn url(&self, path: &str) -> String {
        self.session
            .host
            .url(&format!("{}/{path}", self.session.reference.repository()))
    }

    fn who(&self) -> &str {
        self.session.host.who()
    }

    fn deadline(&self) -> &crate::retry::Deadline {
        &self.session.host.deadline
    }

    /// A URL the registry named (`Location`, `Link`), resolved against
    /// `base`; one on another origin is refused, as the credentials and
    /// the upload are for the registry only.
    fn own_url(&self, base: &Url, named: &str, what: &str) -> Result<Url, Error> {
        let url = base.join(named).map_err(|e| {
            Error::corrupt(format!("{what}: the registry named an invalid URL")).with_source(e)
        })?;
        let same = url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default();
        if !same {
            return Err(Error::corrupt(format!(
                "{what}: the registry named {}, not on its own host {}",
                url.origin().ascii_serialization(),
                base.origin().ascii_serialization()
            )));
        }
        self.session
            .host
            .egress
            .check_url(&url)
            .map_err(|refused| Error::corrupt(format!("{what}: {refused}")))?;
        Ok(url)
    }

    /// A refusal of a write: one line that says push rights are missing.
    async fn write_failure(&self, resp: Response, what: &str) -> Failed {
        let code = resp.status().as_u16();
        let failed = http::status_failure(resp, what, self.who()).await;
        if matches!(code, 401 | 403 | 405) {
            let detail = failed.error.one_line();
            let detail = detail
                .strip_prefix(what)
                .and_then(|d| d.strip_prefix(": "))
                .unwrap_or(&detail)
                .to_string();
            return Failed {
                error: Error::unauthorized(format!(
                    "the registry refused the push ({detail}): the credentials need push rights"
                )),
                retry_after: None,
            };
        }
        failed
    }

    /// A document (`accept`: the media types asked for) read up to
    /// [`MAX_DOCUMENT_BYTES`], with the media type the answer names;
    /// `None` on a 404.
    async fn document(
        &self,
        url: &str,
        accept: &str,
        what: &str,
    ) -> Result<Option<(Bytes, Option<String>)>, Error> {
        let deadline = self.deadline();
        retrying(deadline, what, || async {
            let resp = self
                .session
                .send_authorized(what, || {
                    self.session
                        .host
                        .http
                        .get(url)
                        .header(header::ACCEPT, accept)
                })
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(http::status_failure(resp, what, self.who()).await);
            }
            let media_type = content_type(&resp);
            let bytes = http::read_capped(resp, MAX_DOCUMENT_BYTES, what, deadline).await?;
            Ok::<_, Failed>(Some((bytes, media_type)))
        })
        .await
    }

    /// A manifest by tag or digest; `None` when the registry has none.
    /// Read up to [`MAX_DOCUMENT_BYTES`]; by digest, checked against it.
    pub async fn manifest(&self, target: &str) -> Result<Option<Manifest>, Error> {
        let what = format!("manifest {}:{target}", self.name);
        let url = self.url(&format!("manifests/{target}"));
        let accept = ACCEPTED_MANIFESTS.join(", ");
        let Some((bytes, media_type)) = self.document(&url, &accept, &what).await? else {
            return Ok(None);
        };
        let digest = match Digest::parse(target) {
            Ok(d) => {
                d.verify(&bytes).map_err(|e| e.context(&what))?;
                d
            }
            Err(_) => Digest::sha256(&bytes),
        };
        // The document's own mediaType when the header says nothing useful.
        let media_type = media_type
            .filter(|m| m.starts_with("application/vnd."))
            .or_else(|| {
                serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v["mediaType"].as_str().map(str::to_string))
            })
            .unwrap_or_else(|| OCI_MANIFEST.to_string());
        Ok(Some(Manifest {
            bytes,
            digest,
            media_type,
        }))
    }

    /// A blob of at most `cap` bytes, checked against its digest.
    pub async fn blob(&self, digest: &Digest, cap: u64) -> Result<Bytes, Error> {
        let what = format!("blob {}@{digest}", self.name);
        let deadline = self.deadline();
        let bytes = retrying(deadline, &what, || async {
            let resp = self.session.get_blob(digest, None, &what).await?;
            http::read_capped(resp, cap, &what, deadline).await
        })
        .await?;
        digest.verify(&bytes).map_err(|e| e.context(&what))?;
        Ok(bytes)
    }

    /// Whether the repository holds a blob.
    async fn has_blob(&self, digest: &Digest, what: &str) -> Result<bool, Failed> {
        let url = self.session.blob_url(&digest.to_string());
        let resp = self
            .session
            .send_authorized(what, || self.session.host.http.head(&url))
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(http::status_failure(resp, what, self.who()).await),
        }
    }

    /// Uploads a blob in one request (`POST` an upload, `PUT` its
    /// `Location` with the digest), unless the repository has it.
    pub async fn push_blob(&self, bytes: &Bytes) -> Result<Digest, Error> {
        let digest = Digest::sha256(bytes);
        let what = format!("uploading blob {digest} to {}", self.name);
        retrying(self.deadline(), &what, || async {
            if self.has_blob(&digest, &what).await? {
                return Ok(());
            }
            let start = self.url("blobs/uploads/");
            let resp = self
                .session
                .send_authorized(&what, || {
                    self.session
                        .host
                        .http
                        .post(&start)
                        .header(header::CONTENT_LENGTH, "0")
                })
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(self.write_failure(resp, &what).await);
            }
            let location = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| {
                    Error::corrupt(format!("{what}: the registry named no upload location"))
                })?
                .to_string();
            let base = Url::parse(&start)
                .map_err(|e| Error::usage(format!("{what}: {start}")).with_source(e))?;
            let mut url = self.own_url(&base, &location, &what)?;
            url.query_pairs_mut()
                .append_pair("digest", &digest.to_string());
            let resp = self
                .session
                .send_authorized(&what, || {
                    self.session
                        .host
                        .http
                        .put(url.clone())
                        .header(header::CONTENT_TYPE, "application/octet-stream")
                        .body(bytes.clone())
                })
                .await?;
            if resp.status() != StatusCode::CREATED {
                return Err(self.write_failure(resp, &what).await);
            }
            Ok(())
        })
        .await?;
        Ok(digest)
    }

    /// `PUT`s a manifest under `target` (a tag, or its own digest).
    pub async fn put_manifest(
        &self,
        target: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<Pushed, Error> {
        let digest = Digest::sha256(bytes);
        let what = format!("pushing manifest {digest} to {}:{target}", self.name);
        let url = self.url(&format!("manifests/{target}"));
        let content_type = HeaderValue::from_str(media_type)
            .map_err(|_| Error::usage(format!("{what}: media type {media_type:?}")))?;
        let indexes_subject = retrying(self.deadline(), &what, || async {
            let resp = self
                .session
                .send_authorized(&what, || {
                    self.session
                        .host
                        .http
                        .put(&url)
                        .header(header::CONTENT_TYPE, content_type.clone())
                        .body(bytes.clone())
                })
                .await?;
            if resp.status() != StatusCode::CREATED && resp.status() != StatusCode::OK {
                return Err(self.write_failure(resp, &what).await);
            }
            Ok(resp.headers().contains_key("oci-subject"))
        })
        .await?;
        Ok(Pushed {
            digest,
            indexes_subject,
        })
    }

    /// The repository's tags, page by page (`?n=`, then the `Link` the
    /// registry names), at most [`MAX_TAGS`].
    pub async fn tags(&self) -> Result<Tags, Error> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let what = format!("the tags of {}", self.name);
        let first = self.url(&format!("tags/list?n={TAGS_PAGE}"));
        let mut next =
            Some(Url::parse(&first).map_err(|e| Error::usage(what.clone()).with_source(e))?);
        let mut out = Tags::default();
        let deadline = self.deadline();
        while let Some(url) = next.take() {
            let (page, link) = retrying(deadline, &what, || async {
                let resp = self
                    .session
                    .send_authorized(&what, || self.session.host.http.get(url.clone()))
                    .await?;
                if resp.status() == StatusCode::NOT_FOUND {
                    return Err(Error::not_found(format!(
                        "{what}: the registry has no repository {}",
                        self.name
                    ))
                    .into());
                }
                if !resp.status().is_success() {
                    return Err(http::status_failure(resp, &what, self.who()).await);
                }
                let link = resp
                    .headers()
                    .get(header::LINK)
                    .and_then(|v| v.to_str().ok())
                    .and_then(next_link)
                    .map(str::to_string);
                let body = http::read_capped(resp, MAX_DOCUMENT_BYTES, &what, deadline).await?;
                let page: Page = crate::go_json::from_slice(&body).map_err(|e| {
                    Error::corrupt(format!("{what}: not a tag list")).with_source(e)
                })?;
                Ok::<_, Failed>((page, link))
            })
            .await?;
            let page = page.tags.unwrap_or_default();
            let empty = page.is_empty();
            for tag in page {
                if out.tags.len() >= MAX_TAGS {
                    out.cut = true;
                    return Ok(out);
                }
                out.tags.push(tag);
            }
            // A page with no tags ends the listing whatever its link says.
            if let Some(link) = link.filter(|_| !empty) {
                next = Some(self.own_url(&url, &link, &what)?);
            }
        }
        Ok(out)
    }

    /// The referrers of `subject` of one artifact type: from the
    /// referrers API, or, where the registry has none (a 404), from the
    /// fallback tag's index (none there: no referrers).
    pub async fn referrers(
        &self,
        subject: &Digest,
        artifact_type: &str,
    ) -> Result<Referrers, Error> {
        let what = format!("the referrers of {}@{subject}", self.name);
        let url = self.url(&format!("referrers/{subject}?artifactType={artifact_type}"));
        let (body, api) = match self.document(&url, OCI_INDEX, &what).await? {
            Some((body, _)) => (body, true),
            None => match self.manifest(&fallback_tag(subject)).await? {
                Some(m) => (m.bytes, false),
                None => return Ok(Referrers::default()),
            },
        };
        let index: Value = serde_json::from_slice(&body)
            .map_err(|e| Error::corrupt(format!("{what}: not an image index")).with_source(e))?;
        let descriptors = index["manifests"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|d| d["artifactType"].as_str() == Some(artifact_type))
                    .take(MAX_REFERRERS)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Ok(Referrers { descriptors, api })
    }

    /// Adds `descriptor` to the fallback tag's index of `subject`, every
    /// other referrer kept (another tool's signatures, SBOMs), and pushes
    /// the index back under the tag.
    pub async fn add_to_fallback_index(
        &self,
        subject: &Digest,
        descriptor: &Descriptor,
    ) -> Result<(), Error> {
        let tag = fallback_tag(subject);
        let mut index = match self.manifest(&tag).await? {
            Some(m) => serde_json::from_slice::<Value>(&m.bytes).map_err(|e| {
                Error::corrupt(format!(
                    "{}:{tag} is not an image index, so its referrers cannot be kept",
                    self.name
                ))
                .with_source(e)
            })?,
            None => serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [],
            }),
        };
        let Some(entries) = index["manifests"].as_array_mut() else {
            return Err(Error::corrupt(format!(
                "{}:{tag} is not an image index (no manifests), so its referrers cannot be kept",
                self.name
            )));
        };
        let digest = descriptor["digest"].clone();
        if !entries.iter().any(|d| d["digest"] == digest) {
            entries.push(descriptor.clone());
        }
        let bytes = Bytes::from(
            serde_json::to_vec(&index)
                .map_err(|e| Error::corrupt("the referrers index").with_source(e))?,
        );
        self.put_manifest(&tag, OCI_INDEX, &bytes).await?;
        Ok(())
    }
}

/// The media type an answer names, without parameters.
fn content_type(resp: &Response) -> Option<String> {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
}

/// The `rel="next"` target of a `Link` header.
fn next_link(value: &str) -> Option<&str> {
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then_some(target)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_read_from_link_headers() {
        assert_eq!(
            next_link(r#"</v2/app/tags/list?n=2&last=b>; rel="next""#),
            Some("/v2/app/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn the_fallback_tag_is_the_algorithm_and_hex() {
        let d = Digest::sha256(b"{}");
        assert_eq!(
            fallback_tag(&d),
            "sha256-44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
