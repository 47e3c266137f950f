//! Priced hints: what an image could drop, and what dropping it would save
//! on a node. Pure functions over the facts the analyzer and the merged
//! view gathered ([`Facts`]); hints are advice and never change a verdict.
//!
//! Each hint prices the files it names three ways:
//! - `disk_bytes`: their allocation in 4 KiB blocks, as the layer figures
//!   count it (for debug sections, the blocks the file would shrink by);
//! - `inodes`: one per file (the directories that would be left empty are
//!   not counted);
//! - `pull_bytes_estimate`: their bytes times the compression ratio
//!   (compressed / tar) of the layer that holds each, an estimate since
//!   files do not compress alike.
//!
//! Only files the final filesystem holds are priced, except by
//! `deleted_later`, which is about the hidden bytes of lower layers. A file
//! claimed by a path rule (or the bytecode rule) is not priced again as a
//! duplicate or for its debug sections, and duplicates count copies in the
//! final filesystem only (hidden copies are `deleted_later`'s), so the
//! hints' savings can be added up.

pub mod facts;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet, HashSet};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

pub use facts::{Facts, FinalFile, HiddenPath};
use rules::{PATH_RULES, PathRule};

use crate::measure::layer::FS_BLOCK;
use crate::measure::tree::NodeId;

/// What `[hints]` in `sizeguard.toml` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintSettings {
    /// Rule ids switched off.
    pub disabled: BTreeSet<String>,
    /// A hint saving fewer disk bytes is not shown.
    pub min_bytes: u64,
    /// Per-rule thresholds, overriding `min_bytes`.
    pub rule_min_bytes: BTreeMap<String, u64>,
}

/// Below this a hint is noise next to any image's size.
pub const DEFAULT_MIN_BYTES: u64 = 1024 * 1024;

impl Default for HintSettings {
    fn default() -> Self {
        HintSettings {
            disabled: BTreeSet::new(),
            min_bytes: DEFAULT_MIN_BYTES,
            rule_min_bytes: BTreeMap::new(),
        }
    }
}

/// The layers a `deleted_later` hint is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LayerPair {
    /// Index of the layer that added the bytes.
    pub added_in: u32,
    /// Index of the layer that deleted or overwrote them.
    pub hidden_by: u32,
}

/// A hint's saving against the node's figures (`check` with a node).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NodeShare {
    /// What the node would not store: disk bytes plus, when it keeps the
    /// compressed blobs, the pull-bytes estimate.
    pub node_bytes_estimate: u64,
    /// That, as a percentage of what the rollout costs the node.
    #[schemars(range(min = 0.0))]
    pub rollout_cost_percent: f64,
    /// That, as a percentage of the node's GC headroom (absent when the
    /// headroom is not positive).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub gc_headroom_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Hint {
    /// Rule id (apt_lists, pip_cache, pycache, docs, locales, duplicates,
    /// debug_sections, deleted_later, ...): the name [hints] in
    /// sizeguard.toml uses.
    pub rule: String,
    pub title: String,
    pub advice: String,
    /// The largest matched paths (without the leading /), at most `--top`
    /// of them.
    pub paths: Vec<String>,
    /// Files matched.
    pub files: u64,
    /// Disk saving in 4 KiB blocks (for debug_sections, the blocks the
    /// files shrink by).
    pub disk_bytes: u64,
    /// Inodes freed (one per removed file).
    pub inodes: u64,
    /// Estimated pull saving: bytes times the compressed/tar ratio of the
    /// layer holding each file.
    pub pull_bytes_estimate: u64,
    /// deleted_later only: the layer (index) that added the bytes and the
    /// one that hid them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<LayerPair>,
    /// check with a node only: the saving against the node's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeShare>,
}

/// A file's allocation in whole blocks.
pub fn blocks(size: u64) -> u64 {
    size.div_ceil(FS_BLOCK).saturating_mul(FS_BLOCK)
}

/// Sums a hint's files as they are added.
/// A hint's running sums, and its largest paths: at most a few times `top`
/// kept at any moment, so a rule matching a million files holds a few
/// dozen paths, not a million.
#[derive(Default)]
struct Tally {
    paths: Vec<(u64, String)>,
    files: u64,
    disk: u64,
    inodes: u64,
    pull: f64,
    top: usize,
}

impl Tally {
    fn new(top: usize) -> Tally {
        Tally {
            top,
            ..Tally::default()
        }
    }

    fn add(&mut self, path: &str, size: u64, disk: u64, pull: f64) {
        self.paths.push((size, path.to_string()));
        if self.paths.len() >= 4 * self.top.max(16) {
            self.keep_largest();
        }
        self.files += 1;
        self.inodes += 1;
        self.disk = self.disk.saturating_add(disk);
        self.pull += pull;
    }

    fn keep_largest(&mut self) {
        self.paths
            .sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        self.paths.truncate(self.top);
    }

    fn into_hint(mut self, rule: (&str, &str, &str)) -> Hint {
        self.keep_largest();
        Hint {
            rule: rule.0.to_string(),
            title: rule.1.to_string(),
            advice: rule.2.to_string(),
            paths: self.paths.into_iter().map(|(_, p)| p).collect(),
            files: self.files,
            disk_bytes: self.disk,
            inodes: self.inodes,
            pull_bytes_estimate: self.pull.round() as u64,
            layers: None,
            node: None,
        }
    }
}

/// The path rules compiled into one matcher: pattern index → rule index.
struct Matcher {
    set: GlobSet,
    rule_of: Vec<usize>,
    except: GlobSet,
}

/// The table is built in: a pattern that does not compile is a bug, said
/// loudly (the unit tests build every one), never a hint that silently
/// stops matching.
fn glob(p: &str) -> Glob {
    globset::GlobBuilder::new(p)
        .literal_separator(true)
        .build()
        .unwrap_or_else(|e| panic!("built-in hint pattern {p:?} does not compile: {e}"))
}

impl Matcher {
    fn new(rules: &[&PathRule]) -> Matcher {
        let mut set = GlobSetBuilder::new();
        let mut except = GlobSetBuilder::new();
        let mut rule_of = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            for g in r.patterns.iter().map(|p| glob(p)) {
                set.add(g);
                rule_of.push(i);
            }
            for g in r.except.iter().map(|p| glob(p)) {
                except.add(g);
            }
        }
        Matcher {
            set: set.build().expect("built-in hint patterns form a set"),
            rule_of,
            except: except.build().expect("built-in hint exceptions form a set"),
        }
    }

    /// The first rule (in table order) matching `path`.
    fn rule(&self, path: &str, scratch: &mut Vec<usize>) -> Option<usize> {
        self.set.matches_into(path, scratch);
        let first = scratch.iter().map(|&p| self.rule_of[p]).min()?;
        (!self.except.is_match(path)).then_some(first)
    }
}

/// The locale directories kept: `C`/`POSIX` and English (the language
/// programs fall back to, whose catalogues are tiny), and those the image's
/// `LANG`, `LC_ALL`, `LC_MESSAGES` and `LANGUAGE` name, each with its
/// language alone (`de_DE.UTF-8` keeps `de_DE.UTF-8`, `de_DE` and `de`).
pub fn kept_locales(env_values: &[String]) -> HashSet<String> {
    let mut kept: HashSet<String> = ["C", "POSIX", "C.UTF-8", "en", "en_US", "en_GB"]
        .into_iter()
        .map(String::from)
        .collect();
    for v in env_values.iter().flat_map(|v| v.split(':')) {
        let no_modifier = v.split('@').next().unwrap_or(v);
        let no_codeset = no_modifier.split('.').next().unwrap_or(no_modifier);
        let language = no_codeset.split('_').next().unwrap_or(no_codeset);
        for k in [v, no_modifier, no_codeset, language] {
            if !k.is_empty() {
                kept.insert(k.to_string());
            }
        }
    }
    kept
}

/// `dir/__pycache__/X.cpython-312.pyc` (or `X.opt-1` variants) → `dir/X.py`.
fn pyc_source(path: &str) -> Option<String> {
    let (dir, name) = path.rsplit_once("/__pycache__/")?;
    if name.contains('/') {
        return None;
    }
    let stem = name.strip_suffix(".pyc")?;
    let (module, tag) = stem.split_once('.')?;
    if tag.is_empty() || module.is_empty() {
        return None;
    }
    Some(format!("{dir}/{module}.py"))
}

/// Every hint the facts support, under the settings, largest first.
pub fn find(facts: &Facts, settings: &HintSettings, top: usize) -> Vec<Hint> {
    let on = |id: &str| !settings.disabled.contains(id);
    let (mut out, unclaimed) = path_hints(facts, &on, top);
    out.extend(duplicates(facts, unclaimed.copies, top));
    out.extend(debug_sections(facts, &unclaimed.debug, top));
    if on(rules::DELETED_LATER.0) {
        out.extend(deleted_later(facts, top));
    }
    out.retain(|h| {
        let min = settings
            .rule_min_bytes
            .get(&h.rule)
            .copied()
            .unwrap_or(settings.min_bytes);
        h.disk_bytes > 0 && h.disk_bytes >= min
    });
    out.sort_by(|a, b| {
        b.disk_bytes
            .cmp(&a.disk_bytes)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| pair(a).cmp(&pair(b)))
    });
    out
}

fn pair(h: &Hint) -> Option<(u32, u32)> {
    h.layers.map(|l| (l.added_in, l.hidden_by))
}

/// The files no path rule or the bytecode rule claimed, as the duplicate
/// and debug-section hints need them (empty for a hint switched off).
#[derive(Default)]
struct Unclaimed {
    /// (hash, size, layer, node) of every non-empty file with a hash.
    copies: Vec<(u64, u64, u32, NodeId)>,
    /// (node, size, debug bytes, layer) of every file with debug sections.
    debug: Vec<(NodeId, u64, u64, u32)>,
}

/// The path-rule and bytecode hints, and what they left to the others: one
/// pass over the final files, so each file's path is built once.
fn path_hints(facts: &Facts, on: &dyn Fn(&str) -> bool, top: usize) -> (Vec<Hint>, Unclaimed) {
    let mut table: Vec<&PathRule> = PATH_RULES.iter().filter(|r| on(r.id)).collect();
    let locales = on(rules::LOCALES.id);
    if locales {
        table.push(&rules::LOCALES);
    }
    let locale_rule = table.len().wrapping_sub(1);
    let kept = kept_locales(&facts.locale_env);
    let matcher = Matcher::new(&table);
    let mut tallies: Vec<Tally> = table.iter().map(|_| Tally::new(top)).collect();
    let (pycache, copies, debug) = (
        on(rules::PYCACHE.0),
        on(rules::DUPLICATES.0),
        on(rules::DEBUG_SECTIONS.0),
    );
    let mut scratch = Vec::new();
    let mut sources: HashSet<String> = HashSet::new();
    // Bytecode whose source may turn up later in the pass:
    // (source path, path, size, layer, node).
    let mut pyc_files: Vec<(String, String, u64, u32, NodeId)> = Vec::new();
    let mut unclaimed = Unclaimed::default();
    facts.for_each_file(|f| {
        if pycache && f.path.ends_with(".py") {
            sources.insert(f.path.clone());
        }
        let rule = matcher.rule(&f.path, &mut scratch);
        let kept_locale = locales && rule == Some(locale_rule) && locale_is_kept(&f.path, &kept);
        if let Some(r) = rule.filter(|_| !kept_locale) {
            tallies[r].add(
                &f.path,
                f.size,
                blocks(f.size),
                facts.pull_of(f.layer, f.size),
            );
            return;
        }
        if let Some(src) = pyc_source(&f.path).filter(|_| pycache && !kept_locale) {
            pyc_files.push((src, f.path.clone(), f.size, f.layer, f.node));
        }
        if copies && f.hash != 0 && f.size > 0 {
            unclaimed.copies.push((f.hash, f.size, f.layer, f.node));
        }
        if debug && f.debug_bytes > 0 {
            unclaimed
                .debug
                .push((f.node, f.size, f.debug_bytes, f.layer));
        }
    });
    let mut pyc = Tally::new(top);
    let mut pyc_claimed = HashSet::new();
    for (src, path, size, layer, node) in &pyc_files {
        if sources.contains(src) {
            pyc.add(path, *size, blocks(*size), facts.pull_of(*layer, *size));
            pyc_claimed.insert(*node);
        }
    }
    unclaimed.copies.retain(|c| !pyc_claimed.contains(&c.3));
    unclaimed.debug.retain(|d| !pyc_claimed.contains(&d.0));
    let mut out: Vec<Hint> = table
        .iter()
        .zip(tallies)
        .filter(|(_, t)| t.files > 0)
        .map(|(r, t)| t.into_hint((r.id, r.title, r.advice)))
        .collect();
    if pyc.files > 0 {
        out.push(pyc.into_hint(rules::PYCACHE));
    }
    (out, unclaimed)
}

fn locale_is_kept(path: &str, kept: &HashSet<String>) -> bool {
    path.strip_prefix("usr/share/locale/")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|name| kept.contains(name))
}

/// Identical files (same size and content hash) at several paths of the
/// final filesystem: every copy but the one in the lowest layer (then the
/// first path) is removable.
fn duplicates(facts: &Facts, mut copies: Vec<(u64, u64, u32, NodeId)>, top: usize) -> Option<Hint> {
    // Sorted by content, then by layer, so each run of equal (hash, size)
    // is one set of copies with the one to keep first; 24 bytes a
    // candidate, no map of every file.
    copies.sort_unstable();
    let mut tally = Tally::new(top);
    for run in copies.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        if run.len() < 2 {
            continue;
        }
        let mut named: Vec<(u32, String, u64)> = run
            .iter()
            .map(|&(_, size, layer, node)| (layer, facts.path_of(node), size))
            .collect();
        named.sort();
        for (layer, path, size) in &named[1..] {
            tally.add(path, *size, blocks(*size), facts.pull_of(*layer, *size));
        }
    }
    (tally.files > 0).then(|| tally.into_hint(rules::DUPLICATES))
}

/// ELF files with debug sections: what `strip --strip-debug` would save.
fn debug_sections(facts: &Facts, files: &[(NodeId, u64, u64, u32)], top: usize) -> Option<Hint> {
    let mut tally = Tally::new(top);
    for &(node, size, debug_bytes, layer) in files {
        let debug = debug_bytes.min(size);
        let disk = blocks(size) - blocks(size - debug);
        tally.add(
            &facts.path_of(node),
            debug,
            disk,
            facts.pull_of(layer, debug),
        );
        // Stripping keeps the file.
        tally.inodes -= 1;
    }
    (tally.files > 0).then(|| tally.into_hint(rules::DEBUG_SECTIONS))
}

/// One hint per (adding layer, hiding layer) pair.
fn deleted_later(facts: &Facts, top: usize) -> Vec<Hint> {
    let mut pairs: BTreeMap<(u32, u32), Tally> = BTreeMap::new();
    for h in &facts.hidden {
        pairs
            .entry((h.lower, h.upper))
            .or_insert_with(|| Tally::new(top))
            .add(
                &h.path,
                h.size,
                blocks(h.size),
                facts.pull_of(h.lower, h.size),
            );
    }
    pairs
        .into_iter()
        .map(|((lower, upper), t)| {
            let mut hint = t.into_hint(rules::DELETED_LATER);
            hint.layers = Some(LayerPair {
                added_in: lower,
                hidden_by: upper,
            });
            hint
        })
        .collect()
}

#[cfg(test)]
mod tests;
