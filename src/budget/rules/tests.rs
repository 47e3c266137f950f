//! Tests of the budget's pure functions (costs, the layer diff, the rules)
//! on synthetic measurements: the arithmetic, not the I/O.

use std::sync::Arc;

use super::*;
use crate::analyze::ImageReport;
use crate::budget::cost::Runtime;
use crate::budget::kubelet::{NodeFs, Thresholds, headroom};
use crate::budget::verdict::{Level, Verdict, verdict};
use crate::measure::layer::{Compression, LayerFigures, LayerMeasurement};
use crate::measure::merged::FinalFigures;
use crate::measure::{LayerReport, MeasuredImage};
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
    let measured = MeasuredImage {
        image: ResolvedImage {
            reference: "reg/app:x".into(),
            digest: digest.into(),
            index_digest: None,
            index_bytes: None,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            platform: Platform::new("linux", "amd64", None),
            manifest_bytes: 500,
            config_digest: "sha256:c".into(),
            config_bytes: 1500,
            created: None,
            diff_ids: vec![],
            created_by: vec![],
            locale_env: Vec::new(),
            layers: vec![],
            provenance: Default::default(),
        },
        layers,
        totals,
        final_fs: FinalFigures::default(),
        wasted_bytes: 0,
        largest_files: vec![],
        complete: true,
        estimated: false,
        dive: Some(Default::default()),
        merged: None,
    };
    ImageReport {
        measured,
        hints: Vec::new(),
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
    const BLOCK: u64 = 4096;
    let (cand, base) = pair();
    // containerd: blobs (whole MiB: no rounding) + snapshots + 2 directories
    // beside each snapshot's own root + manifest and config, a block each,
    // + bbolt pages: 6 per image, 1 per layer.
    let store = StoreModel::default();
    let c = image_cost(&cand, store);
    assert_eq!(c.pull_bytes, 2000 + 540 * MIB);
    assert_eq!(c.disk_bytes, 700 * MIB);
    assert_eq!(
        c.node_bytes,
        540 * MIB + 700 * MIB + 3 * 2 * BLOCK + 2 * BLOCK + 6 * BLOCK + 3 * BLOCK
    );
    assert_eq!(c.peak_pull_bytes, c.node_bytes);
    assert_eq!(c.node_inodes, 3140 + 3 * 2 + 3 + 2);
    let r = rollout_cost(&cand, &base, store);
    assert_eq!(r.pull_bytes, 2000 + 500 * MIB);
    assert_eq!(r.disk_bytes, 600 * MIB);
    assert_eq!(
        r.node_bytes,
        500 * MIB + 600 * MIB + 2 * BLOCK + 2 * BLOCK + 6 * BLOCK + BLOCK
    );
    assert_eq!(r.node_inodes, 40 + 2 + 1 + 2);

    // Discarding keeps what containerd keeps but the layer blobs, which
    // still exist at the peak.
    let discard = image_cost(&cand, StoreModel::of(Runtime::ContainerdDiscard));
    assert_eq!(
        discard.node_bytes,
        700 * MIB + 3 * 2 * BLOCK + 2 * BLOCK + 6 * BLOCK + 3 * BLOCK
    );
    assert_eq!(discard.peak_pull_bytes, discard.node_bytes + 540 * MIB);
    assert_eq!(discard.node_inodes, 3140 + 3 * 2 + 2);
    assert_eq!(discard.peak_pull_inodes, discard.node_inodes + 3);

    // containers/storage: no blob; 6 blocks and 6 inodes beside each
    // layer, a tar-split of 70 bytes per tar entry + 200, the manifest
    // twice, the config, the image's directory and (empty) signature file,
    // and the JSON records of the image and its layers.
    let crio = image_cost(&cand, StoreModel::of(Runtime::CriO));
    let tar_split = |entries: u64| (entries * 70 + 200).div_ceil(BLOCK) * BLOCK;
    assert_eq!(
        crio.node_bytes,
        700 * MIB
            + 3 * 6 * BLOCK
            + tar_split(3000)
            + tar_split(100)
            + tar_split(40)
            + 2 * BLOCK
            + BLOCK
            + BLOCK
            + 1600
            + 3 * 700
    );
    assert_eq!(crio.node_inodes, 3140 + 3 * (6 + 1) + 2 + 1 + 2);
    assert_eq!(crio.peak_pull_bytes, crio.node_bytes + 540 * MIB);

    // An image picked from an index keeps the index too.
    let mut indexed = cand.clone();
    indexed.measured.image.index_digest = Some("sha256:i".into());
    indexed.measured.image.index_bytes = Some(5000);
    let i = image_cost(&indexed, store);
    assert_eq!(i.node_bytes, c.node_bytes + 2 * BLOCK);
    assert_eq!(i.node_inodes, c.node_inodes + 1);
    assert_eq!(i.pull_bytes, c.pull_bytes);
}

#[test]
fn runtimes_and_presets_parse_by_name() {
    for r in Runtime::ALL {
        assert_eq!(StoreModel::parse(r.name()).unwrap(), StoreModel::of(r));
    }
    let eks = StoreModel::parse("eks").unwrap();
    assert_eq!(eks.runtime, Runtime::ContainerdDiscard);
    assert_eq!(eks.describe(), "containerd-discard (eks)");
    assert_eq!(
        StoreModel::parse("openshift").unwrap().runtime,
        Runtime::CriO
    );
    let err = StoreModel::parse("docker\n").unwrap_err();
    assert_eq!(err.kind(), crate::error::Kind::Usage);
    assert!(err.to_string().contains("containerd-discard"), "{err}");
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
fn a_pods_images_share_their_layers_and_the_node_holds_every_baseline() {
    use crate::budget::cost::{rollout_cost_onto, rollout_costs};
    let store = StoreModel::default();
    let shared = ("sha256:base", "sha256:dbase", 10 * MIB, 30 * MIB, 100);
    let app = image(
        "sha256:app",
        &[shared, ("sha256:a", "sha256:da", MIB, 2 * MIB, 10)],
    );
    let sidecar = image(
        "sha256:side",
        &[shared, ("sha256:s", "sha256:ds", 2 * MIB, 4 * MIB, 20)],
    );
    // Nothing held: the base is pulled with the first image only.
    let costs = rollout_costs(&[&app, &sidecar], &[], store);
    assert_eq!(costs[0], image_cost(&app, store));
    assert_eq!(costs[1].disk_bytes, 4 * MIB);
    assert_eq!(costs[1].pull_bytes, 2000 + 2 * MIB);
    let total = costs[0].then(&costs[1]);
    assert_eq!(total.disk_bytes, 36 * MIB);
    // Pulled one after the other, the blobs of the first are discarded
    // before the second's exist.
    let discard = StoreModel::of(Runtime::ContainerdDiscard);
    let d = rollout_costs(&[&app, &sidecar], &[], discard);
    let serial = d[0].then(&d[1]);
    assert_eq!(
        serial.peak_pull_bytes,
        d[0].peak_pull_bytes
            .max(d[0].node_bytes + d[1].peak_pull_bytes)
    );
    assert!(serial.peak_pull_bytes < d[0].peak_pull_bytes + d[1].peak_pull_bytes);
    // The old app held: the base and the old layer are on the node.
    let old = image(
        "sha256:old",
        &[shared, ("sha256:o", "sha256:do", MIB, MIB, 5)],
    );
    let costs = rollout_costs(&[&app, &sidecar], &[&old], store);
    assert_eq!(costs[0], rollout_cost(&app, &old, store));
    assert_eq!(costs[0].disk_bytes, 2 * MIB);
    // The same image as one held costs nothing, not even its manifest.
    let again = rollout_cost_onto(&app, &[&old, &app], store);
    assert_eq!(again, ImageCost::default());
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
            .any(|f| f.figure == Figure::PullBytes && f.level == Level::Fail)
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
    // Rollout cost = 500 MiB blob + 600 MiB snapshot, 2 directories beside
    // it, manifest and config: a block each; 7 pages of containerd's bbolt.
    let rollout = 1100 * MIB + 11 * 4096;
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
        container_fs: None,
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
            .any(|f| f.rule == Rule::GcHeadroom && f.level == Level::Fail),
        "{:?}",
        e.findings
    );
    assert!(!e.findings.iter().any(|f| f.rule == Rule::EvictionHeadroom));
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
        ..small.clone()
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
    // Discarding the blobs, what stays fits easily, but the peak of the
    // pull is judged, and the finding says so.
    let discard = Policy {
        store: StoreModel::of(Runtime::ContainerdDiscard),
        ..Default::default()
    };
    let small_budget = NodeBudget {
        fs: small.clone(),
        headroom: headroom(&small, &t).unwrap(),
    };
    let e = evaluate(&discard, &cand, Some(&base), Some(&small_budget));
    assert!(e.rollout_cost.node_bytes < 700 * MIB);
    let gc = e
        .findings
        .iter()
        .find(|f| f.rule == Rule::GcHeadroom)
        .expect("the peak crosses the GC line");
    assert_eq!(gc.figure, FindingFigure::PeakPullBytes);
    assert_eq!(gc.value, e.rollout_cost.peak_pull_bytes as i128);
    assert!(gc.message.contains("at its peak"), "{}", gc.message);
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
    let rules: Vec<(&str, Level)> = e.findings.iter().map(|f| (f.rule.id(), f.level)).collect();
    assert!(
        rules.contains(&("max_layer_size", Level::Warn)),
        "{rules:?}"
    );
    assert!(rules.contains(&("max_layers", Level::Fail)), "{rules:?}");
    assert!(!rules.iter().any(|(r, _)| *r == "max_pull_size"));
}

#[test]
fn rule_ids_serialize_as_published() {
    let ids: Vec<String> = Rule::ALL
        .iter()
        .map(|r| {
            serde_json::to_value(r)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        ids,
        [
            "gc_headroom",
            "eviction_headroom",
            "inode_headroom",
            "growth",
            "max_pull_size",
            "max_unpacked_size",
            "max_layer_size",
            "max_layers",
            "max_wasted",
            "baseline_missing",
            "not_evaluated",
            "nothing_judged",
            "lowest_efficiency",
            "highest_wasted_bytes",
            "highest_user_wasted_percent",
        ]
    );
    for r in Rule::ALL {
        assert_eq!(r.to_string(), r.id());
    }
    let f = Finding::baseline_missing("no baseline yet");
    let v = serde_json::to_value(&f).unwrap();
    assert_eq!(v["rule"], "baseline_missing");
    assert_eq!(v["level"], "warn");
    assert_eq!(v["platform"], "");
}

/// A node whose headroom is given directly, in bytes and inodes.
fn node(gc: i128, eviction: i128, inodes: Option<i128>) -> NodeBudget {
    NodeBudget {
        fs: NodeFs {
            name: "n1".into(),
            capacity_bytes: 1 << 40,
            available_bytes: 1 << 39,
            inodes: None,
            inodes_free: None,
            container_fs: None,
        },
        headroom: crate::budget::kubelet::Headroom {
            usage_percent: 50,
            gc_headroom: gc,
            eviction_headroom: eviction,
            inode_headroom: inodes,
            gc_already_triggered: false,
        },
    }
}

fn cost(node_bytes: u64, node_inodes: u64) -> ImageCost {
    ImageCost {
        node_bytes,
        node_inodes,
        ..Default::default()
    }
}

#[test]
fn headroom_rules_fire_one_over_the_limit() {
    let rollout = cost(1000, 50);
    // Exactly the headroom: it fits.
    let at = node(1000, 1000, Some(50));
    assert!(headroom::findings(&at, &rollout, "rollout cost", Level::Fail).is_empty());
    // One byte (one inode) less room: each rule fires.
    let gc = headroom::findings(&node(999, 1000, Some(50)), &rollout, "x", Level::Warn);
    assert_eq!(gc.len(), 1);
    assert_eq!((gc[0].rule, gc[0].level), (Rule::GcHeadroom, Level::Warn));
    assert_eq!((gc[0].value, gc[0].limit), (1000, 999));
    assert!(
        gc[0].message.starts_with("x 1000 B exceeds"),
        "{}",
        gc[0].message
    );
    let ev = headroom::findings(&node(1000, 999, Some(50)), &rollout, "x", Level::Warn);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].rule, ev[0].level),
        (Rule::EvictionHeadroom, Level::Fail)
    );
    let ino = headroom::findings(&node(1000, 1000, Some(49)), &rollout, "x", Level::Fail);
    assert_eq!(ino.len(), 1);
    assert_eq!(
        (ino[0].rule, ino[0].figure.name()),
        (Rule::InodeHeadroom, "inodes")
    );
    // A filesystem without inode figures has no inode rule.
    assert!(headroom::findings(&node(1000, 1000, None), &rollout, "x", Level::Fail).is_empty());
}

#[test]
fn growth_rules_fire_one_over_the_limit() {
    let base = ImageCost {
        pull_bytes: 1000,
        node_bytes: 1000,
        disk_bytes: 1000,
        node_inodes: 100,
        ..Default::default()
    };
    let grown = |by: u64| ImageCost {
        pull_bytes: base.pull_bytes + by,
        ..base
    };
    let amount = [GrowthRule::parse("pull_bytes=100").unwrap()];
    assert!(growth::findings(&amount, &[], &grown(100), &base).is_empty());
    let f = growth::findings(&amount, &[], &grown(101), &base);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].rule, f[0].level), (Rule::Growth, Level::Fail));
    assert_eq!((f[0].value, f[0].limit), (101, 100));
    assert_eq!(f[0].limit_text, "100 B");

    // 10 % of 1000 is 100: 100 bytes is at the limit, 101 over it.
    let percent = [GrowthRule::parse("10%").unwrap()];
    assert!(growth::findings(&[], &percent, &grown(100), &base).is_empty());
    let f = growth::findings(&[], &percent, &grown(101), &base);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].figure.name(), f[0].level),
        ("pull_bytes", Level::Warn)
    );
    assert_eq!(f[0].limit_text, "10%");

    // A figure that fails is not also warned about.
    let f = growth::findings(&amount, &percent, &grown(500), &base);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].level, Level::Fail);
}

#[test]
fn limit_rules_fire_one_over_the_limit() {
    let (cand, _) = pair();
    let c = image_cost(&cand, StoreModel::default());
    let at = |v: u64| Levels {
        warn: None,
        fail: Some(v),
    };
    type SetLimit = fn(&mut Policy, Levels);
    let cases: [(Rule, SetLimit, u64); 5] = [
        (Rule::PullSize, |p, l| p.pull_size = l, c.pull_bytes),
        (Rule::UnpackedSize, |p, l| p.unpacked_size = l, c.disk_bytes),
        (Rule::LayerSize, |p, l| p.layer_size = l, 500 * MIB),
        (Rule::LayerCount, |p, l| p.layers = l, 3),
        (Rule::Wasted, |p, l| p.wasted = l, cand.wasted_bytes),
    ];
    for (rule, set, value) in cases {
        let mut policy = Policy::default();
        set(&mut policy, at(value));
        assert!(
            limits::findings(&policy, &cand, &c).is_empty(),
            "{rule} fired at its limit"
        );
        if value == 0 {
            continue;
        }
        set(&mut policy, at(value - 1));
        let f = limits::findings(&policy, &cand, &c);
        assert_eq!(f.len(), 1, "{rule}: {f:?}");
        assert_eq!((f[0].rule, f[0].level), (rule, Level::Fail));
        assert_eq!((f[0].value, f[0].limit), (value as i128, value as i128 - 1));
    }
    let mut wasteful = cand.clone();
    wasteful.measured.wasted_bytes = 10;
    let policy = Policy {
        wasted: Levels {
            warn: Some(9),
            fail: Some(10),
        },
        ..Default::default()
    };
    let f = limits::findings(&policy, &wasteful, &c);
    assert_eq!((f[0].rule, f[0].level), (Rule::Wasted, Level::Warn));
}

#[test]
fn layer_diff_compares_by_position_and_chain() {
    use crate::analyze::layer_diff::{LayerChange, layer_diff};
    let (cand, base) = pair();
    let changes: Vec<LayerChange> = layer_diff(&cand, &base).iter().map(|r| r.change).collect();
    assert_eq!(
        changes,
        [LayerChange::Shared, LayerChange::Shared, LayerChange::Added]
    );
    // A new base layer changes the chain of every layer above it.
    let rebased = image(
        "sha256:m3",
        &[
            ("sha256:x", "sha256:dx", MIB, 2 * MIB, 10),
            ("sha256:b", "sha256:db", 10 * MIB, 20 * MIB, 100),
        ],
    );
    let rows = layer_diff(&rebased, &base);
    assert_eq!(rows[0].change, LayerChange::Changed);
    assert_eq!(rows[1].change, LayerChange::Changed);
    assert_eq!(rows[0].disk_growth(), 2 * MIB as i128 - 80 * MIB as i128);
    let rows = layer_diff(&base, &cand);
    assert_eq!(rows[2].change, LayerChange::Removed);
    assert_eq!(rows[2].candidate_digest, None);
}

#[test]
fn dive_rules_fail_on_their_own_definitions() {
    use crate::budget::rules::dive::DiveRules;
    use crate::measure::merged::DiveFigures;
    // Three layers of 10 MiB each; dive counts the first as the base's.
    let mut img = image(
        "sha256:i",
        &[
            ("sha256:a", "sha256:da", MIB, 10 * MIB, 1),
            ("sha256:b", "sha256:db", MIB, 10 * MIB, 1),
            ("sha256:c", "sha256:dc", MIB, 10 * MIB, 1),
        ],
    );
    img.measured.dive = Some(DiveFigures {
        efficiency: 0.9,
        wasted_bytes: 5 * MIB,
    });
    let a = crate::budget::rules::dive::analysis(&img).unwrap();
    let user: u64 = img.layers[1..]
        .iter()
        .map(|l| l.figures().unwrap().content_bytes)
        .sum();
    assert_eq!(a.user_bytes, user);
    assert_eq!(a.user_wasted_ratio, Some(5.0 * MIB as f64 / user as f64));
    let policy = Policy {
        dive: DiveRules {
            lowest_efficiency: Some(0.95),
            highest_wasted_bytes: Some(5 * MIB),
            highest_user_wasted_percent: Some(0.1),
        },
        ..Policy::default()
    };
    let e = evaluate(&policy, &img, None, None);
    let rules: Vec<Rule> = e.findings.iter().map(|f| f.rule).collect();
    // 5 MiB is not above 5 MiB; 0.9 is below 0.95.
    assert!(rules.contains(&Rule::LowestEfficiency), "{rules:?}");
    assert!(!rules.contains(&Rule::HighestWastedBytes), "{rules:?}");
    let f = &e.findings[0];
    assert_eq!((f.level, f.value, f.limit), (Level::Fail, 9000, 9500));
    let over_ratio = a.user_wasted_ratio.unwrap() > 0.1;
    assert_eq!(rules.contains(&Rule::HighestUserWastedPercent), over_ratio);
}

#[test]
fn finding_figures_are_written_by_their_names() {
    for f in FindingFigure::ALL {
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, format!("\"{}\"", f.name()));
        assert_eq!(serde_json::from_str::<FindingFigure>(&json).unwrap(), f);
    }
    for g in Figure::ALL {
        assert_eq!(FindingFigure::from(g).name(), g.name());
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            format!("\"{}\"", g.name())
        );
    }
}
