//! The app layer in process: images served from memory (no registry, no
//! subprocess), requests built as any entry point would build them.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::budget::{Rule, Verdict};
use crate::config::{NodeConfig, Settings};
use crate::error::Kind;
use crate::measure::progress::{LayerProgress, Progress};
use crate::source::LayerDescriptor;
use crate::source::platform::Platform;

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A layer blob in memory: a gzip'd tar of regular files.
#[derive(Clone)]
struct Layer {
    blob: Vec<u8>,
    descriptor: LayerDescriptor,
    diff_id: String,
}

fn layer(files: &[(&str, usize)]) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, size) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(*size as u64);
        h.set_mode(0o644);
        // Content that depends on the path, so layers differ by digest.
        let content: Vec<u8> = path.bytes().cycle().take(*size).collect();
        tar.append_data(&mut h, path, &content[..]).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let blob = gz.finish().unwrap();
    Layer {
        descriptor: LayerDescriptor {
            digest: crate::digest::sha256_digest(&blob),
            size: blob.len() as u64,
            media_type: GZIP_LAYER.into(),
            urls: vec![],
        },
        diff_id: crate::digest::sha256_digest(&tar),
        blob,
    }
}

/// How a layer's stream behaves when opened.
#[derive(Clone, Copy, PartialEq)]
enum Serve {
    Intact,
    /// The connection breaks half-way.
    Reset,
    /// A byte in the middle is flipped.
    Flipped,
}

struct MemoryImage {
    reference: String,
    layers: Vec<Layer>,
    serve: Serve,
    opened: AtomicUsize,
}

#[async_trait]
impl ImageSource for MemoryImage {
    fn reference(&self) -> String {
        self.reference.clone()
    }

    async fn resolve(&self, _: &PlatformSelector) -> Result<Vec<ResolvedImage>, Error> {
        Ok(vec![ResolvedImage {
            reference: self.reference.clone(),
            digest: format!("sha256:{:064x}", self.layers.len()),
            index_digest: None,
            index_bytes: None,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            platform: Platform::new("linux", "amd64", None),
            manifest_bytes: 500,
            config_digest: format!("sha256:{:064x}", 100 + self.layers.len()),
            config_bytes: 300,
            created: None,
            diff_ids: self.layers.iter().map(|l| l.diff_id.clone()).collect(),
            created_by: vec![],
            locale_env: Vec::new(),
            layers: self.layers.iter().map(|l| l.descriptor.clone()).collect(),
            provenance: Default::default(),
        }])
    }

    async fn open_layer(&self, desc: &LayerDescriptor) -> Result<Box<dyn Read + Send>, Error> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        let layer = self
            .layers
            .iter()
            .find(|l| l.descriptor.digest == desc.digest)
            .ok_or_else(|| Error::not_found(format!("blob {}", desc.digest)))?;
        let mut blob = layer.blob.clone();
        let half = blob.len() / 2;
        Ok(match self.serve {
            Serve::Intact => Box::new(std::io::Cursor::new(blob)),
            Serve::Flipped => {
                blob[half] ^= 0xff;
                Box::new(std::io::Cursor::new(blob))
            }
            Serve::Reset => Box::new(std::io::Cursor::new(blob[..half].to_vec()).chain(Reset)),
        })
    }
}

/// A reader whose connection was reset.
struct Reset;

impl Read for Reset {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::ConnectionReset.into())
    }
}

#[derive(Default)]
struct Memory {
    images: HashMap<String, Arc<MemoryImage>>,
}

impl Memory {
    fn with(mut self, reference: &str, layers: &[&Layer], serve: Serve) -> Self {
        self.images.insert(
            reference.into(),
            Arc::new(MemoryImage {
                reference: reference.into(),
                layers: layers.iter().map(|l| (*l).clone()).collect(),
                serve,
                opened: AtomicUsize::new(0),
            }),
        );
        self
    }

    fn opened(&self, reference: &str) -> usize {
        self.images[reference].opened.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Sources for Memory {
    async fn open(&self, reference: &str) -> Result<Arc<dyn ImageSource>, Error> {
        match self.images.get(reference) {
            Some(i) => Ok(i.clone()),
            None => Err(Error::not_found(format!("{reference}: manifest unknown"))),
        }
    }
}

/// A streamed layer as the observer saw it: digest, announced size, bytes read.
type Seen = (String, u64, Arc<AtomicUsize>);

/// Records every streamed layer's bytes.
#[derive(Default)]
struct Recorder {
    layers: Arc<Mutex<Vec<Seen>>>,
}

struct RecordedLayer(Arc<AtomicUsize>);

impl LayerProgress for RecordedLayer {
    fn advanced(&self, bytes: u64) {
        self.0.fetch_add(bytes as usize, Ordering::SeqCst);
    }
    fn finished(&self) {}
}

impl Progress for Recorder {
    fn layer_started(&self, digest: &str, total: u64) -> Box<dyn LayerProgress> {
        let seen = Arc::new(AtomicUsize::new(0));
        self.layers
            .lock()
            .unwrap()
            .push((digest.to_string(), total, seen.clone()));
        Box::new(RecordedLayer(seen))
    }
}

fn services(memory: Memory) -> (Services, Arc<Memory>) {
    let memory = Arc::new(memory);
    let services = Services {
        sources: memory.clone(),
        measurer: Measurer::default(),
    };
    (services, memory)
}

fn check_request(candidate: &str, baseline: Option<&str>, settings: Settings) -> CheckRequest {
    CheckRequest {
        candidate: candidate.into(),
        baseline: baseline.map(str::to_string),
        baseline_optional: settings.baseline_optional.unwrap_or(false),
        platforms: PlatformSelector::parse(None).unwrap(),
        policy: settings.policy().unwrap(),
        node: settings.node_choice(false).unwrap(),
        thresholds: settings.thresholds().unwrap(),
        options: MeasureOptions::default(),
        hints: Default::default(),
        paths: Default::default(),
    }
}

fn base_and_app() -> (Layer, Layer) {
    (
        layer(&[("etc/os-release", 100), ("usr/lib/libc.so", 9000)]),
        layer(&[("app/server", 50_000), ("app/config", 10)]),
    )
}

#[tokio::test]
async fn measure_reports_each_image_in_order_with_exact_figures() {
    let (base, app) = base_and_app();
    let (services, _) = services(
        Memory::default()
            .with("mem/a", &[&base], Serve::Intact)
            .with("mem/b", &[&base, &app], Serve::Intact),
    );
    let req = MeasureRequest {
        references: vec!["mem/b".into(), "mem/a".into()],
        platforms: PlatformSelector::parse(None).unwrap(),
        options: MeasureOptions::default(),
    };
    let reports = measure(&services, &req).await.unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(reports[0].image.reference, "mem/b");
    assert_eq!(reports[0].totals.content_bytes, 100 + 9000 + 50_000 + 10);
    assert_eq!(reports[0].totals.files, 4);
    assert_eq!(reports[1].totals.content_bytes, 9100);
    assert_eq!(
        reports[0].totals.compressed_bytes,
        base.descriptor.size + app.descriptor.size
    );
}

#[tokio::test]
async fn a_layer_shared_by_candidate_and_baseline_is_streamed_once() {
    let (base, app) = base_and_app();
    let (mut services, memory) = services(
        Memory::default()
            .with("mem/v1", &[&base], Serve::Intact)
            .with("mem/v2", &[&base, &app], Serve::Intact),
    );
    let recorder = Arc::new(Recorder::default());
    services.measurer.progress = recorder.clone();
    let report = check(
        &services,
        &check_request("mem/v2", Some("mem/v1"), Settings::default()),
    )
    .await
    .unwrap();
    assert_eq!(report.platforms.len(), 1);
    assert_eq!(memory.opened("mem/v1") + memory.opened("mem/v2"), 2);
    // Every streamed byte reached the observer, once per layer.
    let layers = recorder.layers.lock().unwrap();
    assert_eq!(layers.len(), 2);
    for (_, total, seen) in layers.iter() {
        assert_eq!(*total, seen.load(Ordering::SeqCst) as u64);
    }
}

#[tokio::test]
async fn growth_over_the_limit_fails_and_under_it_passes() {
    let (base, app) = base_and_app();
    let (services, _) = services(
        Memory::default()
            .with("mem/v1", &[&base], Serve::Intact)
            .with("mem/v2", &[&base, &app], Serve::Intact),
    );
    // Only the limit judges: the default warnings are off.
    let limit = |l: &str| Settings {
        max_growth: Some(vec![l.into()]),
        default_rules: Some(false),
        ..Default::default()
    };
    let fail = check(
        &services,
        &check_request("mem/v2", Some("mem/v1"), limit("10%")),
    )
    .await
    .unwrap();
    assert_eq!(fail.verdict, Verdict::Fail);
    assert!(fail.findings().any(|f| f.rule == Rule::Growth));
    let pass = check(
        &services,
        &check_request("mem/v2", Some("mem/v1"), limit("1GiB")),
    )
    .await
    .unwrap();
    assert_eq!(pass.verdict, Verdict::Pass);
}

#[tokio::test]
async fn a_node_too_small_for_the_rollout_fails_the_check() {
    let (base, app) = base_and_app();
    let (services, _) = services(
        Memory::default()
            .with("mem/v1", &[&base], Serve::Intact)
            .with("mem/v2", &[&base, &app], Serve::Intact),
    );
    // 1 MB imageFS at 84.5 % used: ~5 KB of GC headroom, far less than the
    // new layer's blob and snapshot.
    let settings = Settings {
        node: Some(NodeConfig {
            capacity: Some("1000000".into()),
            available: Some("155000".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let report = check(
        &services,
        &check_request("mem/v2", Some("mem/v1"), settings),
    )
    .await
    .unwrap();
    assert_eq!(report.verdict, Verdict::Fail);
    assert!(report.findings().any(|f| f.rule == Rule::GcHeadroom));
    assert!(report.node.is_some());
}

#[tokio::test]
async fn a_missing_baseline_is_not_found_unless_optional() {
    let (base, _) = base_and_app();
    let (services, _) = services(Memory::default().with("mem/v2", &[&base], Serve::Intact));
    let err = check(
        &services,
        &check_request("mem/v2", Some("mem/v1"), Settings::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), Kind::NotFound);
    assert!(err.one_line().starts_with("baseline: "), "{err}");

    let optional = Settings {
        baseline_optional: Some(true),
        ..Default::default()
    };
    let report = check(
        &services,
        &check_request("mem/v2", Some("mem/v1"), optional),
    )
    .await
    .unwrap();
    assert_eq!(report.verdict, Verdict::Warn);
    let finding = report.findings().next().unwrap();
    assert_eq!(finding.rule, Rule::BaselineMissing);
    assert!(
        finding.message.contains("manifest unknown"),
        "{}",
        finding.message
    );
}

#[tokio::test]
async fn a_broken_stream_is_transient_and_a_flipped_byte_is_corrupt() {
    let (base, _) = base_and_app();
    for (serve, kind) in [
        (Serve::Reset, Kind::Transient),
        (Serve::Flipped, Kind::Corrupt),
    ] {
        let (services, _) = services(Memory::default().with("mem/x", &[&base], serve));
        let err = check(
            &services,
            &check_request("mem/x", None, Settings::default()),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), kind, "{}", err.one_line());
        assert_eq!(err.kind().is_retryable(), kind == Kind::Transient);
        assert!(
            err.one_line().contains(&base.descriptor.digest),
            "the error names the layer: {}",
            err.one_line()
        );
    }
}

#[tokio::test]
async fn a_failing_layer_cancels_the_others_and_explains_itself() {
    let layers: Vec<Layer> = (0..6)
        .map(|i| layer(&[(&format!("f{i}"), 200_000 + i)]))
        .collect();
    let refs: Vec<&Layer> = layers.iter().collect();
    let (services, _) = services(Memory::default().with("mem/many", &refs, Serve::Flipped));
    let err = check(
        &services,
        &check_request("mem/many", None, Settings::default()),
    )
    .await
    .unwrap_err();
    // The first failure is reported, never a "cancelled" from a layer it stopped.
    assert_eq!(err.kind(), Kind::Corrupt, "{}", err.one_line());
    assert!(!err.is_cancelled());
}
