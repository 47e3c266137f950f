use super::*;

fn file(path: &str, size: u64, layer: u32, hash: u64) -> FinalFile {
    FinalFile {
        node: 0,
        path: path.into(),
        size,
        layer,
        hash,
        debug_bytes: 0,
    }
}

fn facts(files: Vec<FinalFile>) -> Facts<'static> {
    Facts {
        files,
        pull_ratio: vec![0.5, 0.25],
        ..Default::default()
    }
}

fn everything() -> HintSettings {
    HintSettings {
        min_bytes: 0,
        ..Default::default()
    }
}

#[test]
fn every_built_in_pattern_compiles() {
    for r in rules::PATH_RULES.iter().chain([&rules::LOCALES]) {
        for p in r.patterns.iter().chain(r.except) {
            // Panics, naming the pattern, if it does not compile.
            assert!(!glob(p).glob().is_empty(), "{p}");
        }
    }
}

#[test]
fn path_rules_price_the_matched_files_and_skip_the_lock() {
    let f = facts(vec![
        file(
            "var/lib/apt/lists/deb.debian.org_dists_Packages",
            5000,
            0,
            1,
        ),
        file("var/lib/apt/lists/lock", 0, 0, 2),
        file("var/lib/apt/lists/partial/x", 10, 1, 3),
        file("root/.cache/pip/http/a/b", 100, 1, 4),
        file("usr/bin/app", 9000, 1, 5),
    ]);
    let hints = find(&f, &everything(), 10);
    let apt = hints.iter().find(|h| h.rule == "apt_lists").unwrap();
    assert_eq!((apt.files, apt.disk_bytes, apt.inodes), (2, 8192 + 4096, 2));
    assert_eq!(
        apt.pull_bytes_estimate,
        (5000.0 * 0.5 + 10.0 * 0.25_f64).round() as u64
    );
    assert!(!apt.paths.iter().any(|p| p.ends_with("lock")));
    assert!(hints.iter().any(|h| h.rule == "pip_cache"));
    assert_eq!(hints[0].rule, "apt_lists", "largest first");
}

#[test]
fn bytecode_counts_only_where_the_source_is_present() {
    let f = facts(vec![
        file("app/m.py", 10, 0, 1),
        file("app/__pycache__/m.cpython-311.pyc", 10, 0, 2),
        file("app/__pycache__/orphan.cpython-311.pyc", 10, 0, 3),
        file("app/plain.pyc", 10, 0, 4),
    ]);
    let hints = find(&f, &everything(), 10);
    let pyc = hints.iter().find(|h| h.rule == "pycache").unwrap();
    assert_eq!(pyc.paths, vec!["app/__pycache__/m.cpython-311.pyc"]);
}

#[test]
fn duplicates_keep_the_lowest_copy_and_ignore_claimed_files() {
    let f = facts(vec![
        file("a/big", 20 << 20, 0, 42),
        file("b/big-copy", 20 << 20, 1, 42),
        file("usr/share/doc/x", 20 << 20, 1, 42),
        file("c/empty", 0, 1, 0),
    ]);
    let hints = find(&f, &everything(), 10);
    let d = hints.iter().find(|h| h.rule == "duplicates").unwrap();
    assert_eq!(d.paths, vec!["b/big-copy"]);
    assert_eq!(d.disk_bytes, 20 << 20);
}

#[test]
fn locales_keep_english_and_the_image_language() {
    let mut f = facts(vec![
        file("usr/share/locale/de/LC_MESSAGES/x.mo", 5000, 0, 1),
        file("usr/share/locale/fr/LC_MESSAGES/x.mo", 5000, 0, 2),
        file("usr/share/locale/en_GB/LC_MESSAGES/x.mo", 5000, 0, 3),
        file("usr/share/locale/locale.alias", 5000, 0, 4),
    ]);
    f.locale_env = vec!["de_DE.UTF-8".into()];
    let hints = find(&f, &everything(), 10);
    let l = hints.iter().find(|h| h.rule == "locales").unwrap();
    assert_eq!(l.paths, vec!["usr/share/locale/fr/LC_MESSAGES/x.mo"]);
}

#[test]
fn settings_disable_rules_and_set_thresholds() {
    let f = facts(vec![
        file("usr/share/doc/a", 5000, 0, 1),
        file("var/cache/apk/b", 500_000, 0, 2),
    ]);
    let mut s = everything();
    s.disabled.insert("docs".into());
    assert!(!find(&f, &s, 10).iter().any(|h| h.rule == "docs"));
    s.rule_min_bytes.insert("apk_cache".into(), 1 << 20);
    assert!(find(&f, &s, 10).is_empty());
    assert!(find(&f, &HintSettings::default(), 10).is_empty());
}

#[test]
fn deleted_later_names_the_layer_pair_and_debug_counts_shrunk_blocks() {
    let mut f = facts(vec![FinalFile {
        debug_bytes: 10_000,
        ..file("usr/bin/app", 20_000, 1, 9)
    }]);
    f.hidden = vec![HiddenPath {
        path: "tmp/blob".into(),
        size: 50 << 20,
        lower: 0,
        upper: 1,
    }];
    let hints = find(&f, &everything(), 10);
    assert_eq!(hints[0].rule, "deleted_later");
    assert_eq!(
        hints[0].layers,
        Some(LayerPair {
            added_in: 0,
            hidden_by: 1
        })
    );
    let d = hints.iter().find(|h| h.rule == "debug_sections").unwrap();
    assert_eq!(
        (d.disk_bytes, d.inodes),
        (blocks(20_000) - blocks(10_000), 0)
    );
}

#[test]
fn every_rule_id_is_unique() {
    let ids: Vec<&str> = rules::ids().collect();
    let set: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), set.len());
}
