//! The commit status `serve` posts for a judged image, against the local
//! GitHub API stand-in: the request GitHub documents (method, path, token,
//! body), GitHub Enterprise's `/api/v3` prefix, rate-limit retries, the
//! errors of a rejected or read-only token, and the labels it is built
//! from, read from a real image through the source layer.

use crate::support;

use serde_json::json;
use sizeguard::budget::verdict::Verdict;
use sizeguard::error::Kind;
use sizeguard::publish::github::Token;
use sizeguard::publish::status::{self, Commit, State, Status};
use sizeguard::source::{Provenance, SourceFactory, SourceOptions};
use support::github_standin::{GithubStandin, Limit};
use support::layout::{Comp, LayerSpec, LayoutBuilder, Platform};

const TOKEN: &str = "ghs_statusT0kenForTests";
const SHA: &str = "5d1c7a2e9b0f4c3d8e6a1b2c3d4e5f60718293a4";

fn commit() -> Commit {
    Commit {
        owner: "octo-org".into(),
        repo: "shop".into(),
        sha: SHA.into(),
    }
}

fn token(t: &str) -> Token {
    Token::new(t).unwrap()
}

#[tokio::test]
async fn posts_the_documented_request() {
    let api = GithubStandin::start(TOKEN);
    let s = Status::new(
        State::of(Verdict::Fail),
        "team/app",
        "fail: +412 MB over the 10% growth limit",
        Some("https://sizeguard.example/v1/verdicts/sha256:abc"),
    );
    status::post(&api.url(), &token(TOKEN), &commit(), &s)
        .await
        .unwrap();
    let reqs = api.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/repos/octo-org/shop/statuses/{SHA}"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        r.json(),
        json!({
            "state": "failure",
            "context": "sizeguard/team/app",
            "description": "fail: +412 MB over the 10% growth limit",
            "target_url": "https://sizeguard.example/v1/verdicts/sha256:abc",
        })
    );
    let statuses = api.state().statuses.clone();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].0, "octo-org/shop");
}

#[tokio::test]
async fn enterprise_prefix_and_rate_limits() {
    let api = GithubStandin::start_with_prefix(TOKEN, "/api/v3");
    api.state().limits.push(Limit::Secondary { secs: 1 });
    let s = Status::new(State::Success, "team/app", "pass", None);
    status::post(&api.url(), &token(TOKEN), &commit(), &s)
        .await
        .unwrap();
    let reqs = api.requests();
    assert_eq!(
        reqs.len(),
        2,
        "one rate-limited answer, one retry: {reqs:?}"
    );
    for r in &reqs {
        assert_eq!(
            r.path,
            format!("/api/v3/repos/octo-org/shop/statuses/{SHA}")
        );
    }
    // No target_url key when there is none.
    assert_eq!(
        reqs[1].json(),
        json!({"state": "success", "context": "sizeguard/team/app", "description": "pass"})
    );
}

#[tokio::test]
async fn rejected_and_read_only_tokens() {
    let api = GithubStandin::start(TOKEN);
    let s = Status::new(State::Error, "team/app", "could not measure", None);
    let e = status::post(&api.url(), &token("wrong"), &commit(), &s)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Usage, "{e:?}");
    assert!(!e.one_line().contains("wrong"), "{e:?}");
    api.state().read_only = true;
    let e = status::post(&api.url(), &token(TOKEN), &commit(), &s)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), Kind::Unauthorized, "{e:?}");
    assert!(api.state().statuses.is_empty());
}

/// The labels come from the image config (and the manifest's
/// annotations) as the source layer reads them; a refused label means no
/// request at all.
#[tokio::test]
async fn labels_of_a_real_image_name_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = LayoutBuilder::new(dir.path());
    let layer = b.add_layer(&LayerSpec::new().file("app/bin", 4096), Comp::Gzip);
    let config = |source: &str| {
        json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {
                "org.opencontainers.image.source": source,
                "org.opencontainers.image.revision": SHA,
            }},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        })
    };
    let good = b.add_image_with_config(
        std::slice::from_ref(&layer),
        &config("https://github.com/octo-org/shop"),
        Platform::new("linux", "amd64", None),
        false,
    );
    b.tag_image(&good, "good");
    let bad = b.add_image_with_config(
        std::slice::from_ref(&layer),
        &config("https://evil.example/octo-org/shop"),
        Platform::new("linux", "amd64", None),
        false,
    );
    b.tag_image(&bad, "bad");

    let factory = SourceFactory::new(SourceOptions::default());
    let provenance = |tag: &str| {
        let reference = format!("oci:{}:{tag}", dir.path().display());
        let factory = &factory;
        async move {
            let source = factory.open(&reference).await.unwrap();
            let images = source.resolve(&Default::default()).await.unwrap();
            images[0].provenance.clone()
        }
    };
    let p = provenance("good").await;
    assert_eq!(
        p,
        Provenance {
            source: Some("https://github.com/octo-org/shop".into()),
            revision: Some(SHA.into()),
        }
    );
    assert_eq!(status::commit_of(&p, "github.com").unwrap(), Some(commit()));
    let p = provenance("bad").await;
    let e = status::commit_of(&p, "github.com").unwrap_err();
    assert_eq!(e.kind(), Kind::Corrupt);
}
