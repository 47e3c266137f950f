//! Rule tests on synthetic measurements: the arithmetic, not the I/O.

use std::sync::Arc;

use super::*;
use crate::budget::kubelet::{NodeFs, Thresholds, headroom};
use crate::measure::layer::{Compression, LayerFigures, LayerMeasurement};
use crate::measure::merged::FinalFigures;
use crate::measure::{ImageReport, LayerReport};
use crate::source::platform::Platform;
use crate::source::{LayerDescriptor, ResolvedImage};

/// An image whose layers are `(digest, diff_id, compressed, disk, inodes)`.
fn image(digest: &str, layers: &[(&str, &str, u64, u64, u64)]) -> ImageReport {
    let mut totals = LayerFigures::default();
    let layers: Vec<LayerReport> = layers
        .iter()
        .map(|&(d, diff, compressed, disk, inodes)| {
            let figures = LayerFigures {
                compressed_bytes: compressed,
                tar_bytes: disk,
                content_bytes: disk,
                disk_bytes: disk,
                inodes,
                ..Default::default()
            };
            totals.add(&figures);
            LayerReport {
                descriptor: LayerDescriptor {
                    digest: d.into(),
                    size: compressed,
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    urls: vec![],
                },
                measurement: Some(Arc::new(LayerMeasurement {
                    figures,
                    digest: d.into(),
                    diff_id: diff.into(),
                    diff_id_verified: true,
                    compression: Compression::Gzip,
                    index: Default::default(),
                })),
                not_measured_reason: None,
                largest_files: vec![],
                estimate: None,
            }
        })
        .collect();
    ImageReport {
        image: ResolvedImage {
            reference: "reg/app:x".into(),
            digest: digest.into(),
            index_digest: None,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            platform: Platform::new("linux", "amd64", None),
            manifest_bytes: 500,
            config_digest: "sha256:c".into(),
            config_bytes: 1500,
            diff_ids: vec![],
            layers: vec![],
        },
        layers,
        totals,
        final_fs: FinalFigures::default(),
        wasted_bytes: 0,
        largest_files: vec![],
        complete: true,
        estimated: false,
    }
}

const MIB: u64 = 1 << 20;

fn pair() -> (ImageReport, ImageReport) {
    let base = image(
        "sha256:m1",
        &[
            ("sha256:a", "sha256:da", 30 * MIB, 80 * MIB, 3000),
            ("sha256:b", "sha256:db", 10 * MIB, 20 * MIB, 100),
        ],
    );
    let cand = image(
        "sha256:m2",
        &[
            ("sha256:a", "sha256:da", 30 * MIB, 80 * MIB, 3000),
            ("sha256:b", "sha256:db", 10 * MIB, 20 * MIB, 100),
            ("sha256:n", "sha256:dn", 500 * MIB, 600 * MIB, 40),
        ],
    );
    (cand, base)
}

#[test]
fn costs_follow_the_node_model() {
    let (cand, base) = pair();
    let store = StoreModel::default();
    let c = image_cost(&cand, store);
    assert_eq!(c.pull_bytes, 2000 + 540 * MIB);
    assert_eq!(c.disk_bytes, 700 * MIB);
    assert_eq!(c.node_bytes, c.pull_bytes + c.disk_bytes);
    // 3 layer blobs + manifest + config stored as files.
    assert_eq!(c.node_inodes, 3140 + 5);
    let r = rollout_cost(&cand, &base, store);
    assert_eq!(r.pull_bytes, 2000 + 500 * MIB);
    assert_eq!(r.disk_bytes, 600 * MIB);
    assert_eq!(r.node_inodes, 40 + 3);
    let discard = image_cost(
        &cand,
        StoreModel {
            discard_unpacked_layers: true,
        },
    );
    assert_eq!(discard.node_bytes, 700 * MIB + 2000);
    assert_eq!(discard.peak_pull_bytes, c.pull_bytes + c.disk_bytes);
}

#[test]
fn same_layer_on_another_base_costs_its_snapshot_again() {
    let base = image(
        "sha256:m1",
        &[
            ("sha256:a", "sha256:da", MIB, 2 * MIB, 10),
            ("sha256:b", "sha256:db", MIB, 3 * MIB, 10),
        ],
    );
    // Layer b on top of a new base layer x: blob shared, snapshot not.
    let cand = image(
        "sha256:m2",
        &[
            ("sha256:x", "sha256:dx", MIB, 5 * MIB, 10),
            ("sha256:b", "sha256:db", MIB, 3 * MIB, 10),
        ],
    );
    let r = rollout_cost(&cand, &base, StoreModel::default());
    assert_eq!(r.disk_bytes, 8 * MIB);
    assert_eq!(r.pull_bytes, 2000 + MIB);
}

#[test]
fn growth_rules_fire_at_their_level() {
    let (cand, base) = pair();
    let policy = Policy {
        fail_growth: vec![GrowthRule::parse("10%").unwrap()],
        ..Default::default()
    };
    let e = evaluate(&policy, &cand, Some(&base), None);
    assert_eq!(verdict(&e.findings), Verdict::Fail);
    assert!(
        e.findings
            .iter()
            .any(|f| f.figure == "pull_bytes" && f.level == Level::Fail)
    );
    let lenient = Policy {
        fail_growth: vec![GrowthRule::parse("2GiB").unwrap()],
        warn_growth: vec![GrowthRule::parse("pull_bytes=100MiB").unwrap()],
        ..Default::default()
    };
    let e = evaluate(&lenient, &cand, Some(&base), None);
    assert_eq!(verdict(&e.findings), Verdict::Warn, "{:?}", e.findings);
    assert_eq!(e.findings.len(), 1);
    assert_eq!(e.growth(Figure::PullBytes), Some(500 * MIB as i128));
    assert!(GrowthRule::parse("lol=5%").is_err());
    assert!(GrowthRule::parse("-5%").is_err());
    assert_eq!(
        GrowthRule::parse("inodes=5000").unwrap().figures(),
        vec![Figure::Inodes]
    );
    assert_eq!(GrowthRule::parse("1GiB").unwrap().figures().len(), 3);
}

#[test]
fn node_budget_uses_rollout_cost_and_kubelet_headroom() {
    let (cand, base) = pair();
    // Rollout cost = 500 MiB blob + 600 MiB snapshot + 2000 B of metadata.
    let rollout = 1100 * MIB + 2000;
    let t = Thresholds::default();
    let capacity = 20 * 1024 * MIB;
    // Choose available so gc headroom is just under the rollout cost.
    let floor = ((101 - 85) as u128 * capacity as u128).div_ceil(100) as u64;
    let small = NodeFs {
        name: "small".into(),
        capacity_bytes: capacity,
        available_bytes: floor + rollout - 1,
        inodes: None,
        inodes_free: None,
    };
    let h = headroom(&small, &t).unwrap();
    assert_eq!(h.gc_headroom, rollout as i128 - 1);
    let budget = NodeBudget {
        fs: small.clone(),
        headroom: h,
    };
    let e = evaluate(&Policy::default(), &cand, Some(&base), Some(&budget));
    assert!(
        e.findings
            .iter()
            .any(|f| f.rule == "gc_headroom" && f.level == Level::Fail),
        "{:?}",
        e.findings
    );
    assert!(!e.findings.iter().any(|f| f.rule == "eviction_headroom"));
    // Softened to a warning.
    let soft = Policy {
        gc_headroom_level: Some(Level::Warn),
        ..Default::default()
    };
    assert_eq!(
        verdict(&evaluate(&soft, &cand, Some(&base), Some(&budget)).findings),
        Verdict::Warn
    );
    // One more byte of room and it fits.
    let roomy = NodeFs {
        available_bytes: floor + rollout,
        ..small
    };
    let budget = NodeBudget {
        headroom: headroom(&roomy, &t).unwrap(),
        fs: roomy,
    };
    assert!(
        evaluate(&Policy::default(), &cand, Some(&base), Some(&budget))
            .findings
            .is_empty()
    );
    // Fresh pull judges the whole image.
    let fresh = Policy {
        fresh_pull: true,
        ..Default::default()
    };
    assert!(
        !evaluate(&fresh, &cand, Some(&base), Some(&budget))
            .findings
            .is_empty()
    );
}

#[test]
fn absolute_limits() {
    let (cand, _) = pair();
    let policy = Policy {
        layer_size: Levels {
            warn: Some(100 * MIB),
            fail: Some(600 * MIB),
        },
        layers: Levels {
            warn: None,
            fail: Some(2),
        },
        pull_size: Levels {
            warn: None,
            fail: Some(10 * 1024 * MIB),
        },
        ..Default::default()
    };
    let e = evaluate(&policy, &cand, None, None);
    let rules: Vec<(&str, Level)> = e
        .findings
        .iter()
        .map(|f| (f.rule.as_str(), f.level))
        .collect();
    assert!(
        rules.contains(&("max_layer_size", Level::Warn)),
        "{rules:?}"
    );
    assert!(rules.contains(&("max_layers", Level::Fail)), "{rules:?}");
    assert!(!rules.iter().any(|(r, _)| *r == "max_pull_size"));
}
