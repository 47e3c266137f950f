//! Replays the saved fuzz corpora (and any crash kept in `fuzz/artifacts`)
//! on the stable toolchain, exactly as each fuzz target feeds them: the
//! layer analyzer (`layer_analyzer`), the image document parsers
//! (`documents`), the reference parser (`reference`); then mutations of
//! them with a fixed seed: no input may panic. The test build keeps overflow checks, which the
//! fuzz build leaves out, so the two catch different things.
//! `SIZEGUARD_MUTATIONS=N` runs N mutations instead of the default,
//! `SIZEGUARD_MUTATION_SEED=S` another sequence.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use sizeguard::fuzzing::{analyze_layer, check_reference_round_trip, parse_untrusted_document};

/// What a fuzz target does with one input.
type Harness = fn(&[u8]);

/// Each parser target, what it does with an input, and the fewest inputs
/// its saved corpus has.
const PARSER_TARGETS: &[(&str, Harness, usize)] = &[
    ("documents", parse_untrusted_document, 10),
    ("reference", check_reference_round_trip, 10),
];

#[test]
fn parser_corpora_replay_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for &(target, run, least) in PARSER_TARGETS {
        let corpus = inputs(&root.join("corpus").join(target));
        assert!(
            corpus.len() >= least,
            "the saved {target} corpus is missing: {} inputs",
            corpus.len()
        );
        let crashes = inputs(&root.join("artifacts").join(target));
        for path in corpus.iter().chain(&crashes) {
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{} panics {target}", path.display());
        }
    }
}

#[test]
fn mutations_of_the_parser_corpora_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let runs: usize = std::env::var("SIZEGUARD_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for &(target, run, _) in PARSER_TARGETS {
        let corpus: Vec<Vec<u8>> = inputs(&root.join(target))
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .filter(|d| d.len() > 1)
            .collect();
        let mut rng = StdRng::seed_from_u64(0x5eed);
        for i in 0..runs {
            let input = &corpus[rng.random_range(0..corpus.len())];
            let other = &corpus[rng.random_range(0..corpus.len())];
            let data = mutate(&mut rng, input, other);
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                let keep = std::env::temp_dir().join(format!("sizeguard-{target}-mutation-{i}"));
                std::fs::write(&keep, &data).unwrap();
                panic!("mutation {i} panics {target}; kept in {}", keep.display());
            }
        }
    }
}

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
}

#[test]
fn layer_analyzer_corpus_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = inputs(&root.join("corpus/layer_analyzer"));
    assert!(
        corpus.len() >= 10,
        "the saved corpus is missing: {} inputs",
        corpus.len()
    );
    let crashes = inputs(&root.join("artifacts/layer_analyzer"));
    for path in corpus.iter().chain(&crashes) {
        let data = std::fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| analyze_layer(&data));
        assert!(outcome.is_ok(), "{} panics the analyzer", path.display());
    }
}

/// One libFuzzer-style mutation of `input` (its first byte, the mode, kept).
fn mutate(rng: &mut StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    const INTERESTING: &[u8] = b"\x00\xff\x80 0179=\n/.xgLKS5";
    let mut out = input.to_vec();
    if out.len() < 2 {
        return out;
    }
    for _ in 0..rng.random_range(1..4) {
        let at = rng.random_range(1..out.len());
        match rng.random_range(0..6) {
            0 => out[at] ^= 1 << rng.random_range(0..8),
            1 => out[at] = INTERESTING[rng.random_range(0..INTERESTING.len())],
            2 => out.truncate(at.max(2)),
            // A header field's worth of one byte, where numbers live.
            3 => {
                let end = (at + 12).min(out.len());
                let b = INTERESTING[rng.random_range(0..INTERESTING.len())];
                out[at..end].fill(b);
            }
            4 => {
                let n = rng.random_range(1..1024).min(other.len());
                let from = rng.random_range(0..=other.len() - n);
                out.splice(at..at, other[from..from + n].iter().copied());
            }
            _ => {
                let block = at / 512 * 512;
                let end = (block + 512).min(out.len());
                let copy = out[block.max(1)..end].to_vec();
                out.splice(end..end, copy);
            }
        }
        if out.len() < 2 {
            break;
        }
    }
    out
}

#[test]
fn mutations_of_the_corpus_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/layer_analyzer");
    let corpus: Vec<Vec<u8>> = inputs(&root)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .filter(|d| d.len() > 1)
        .collect();
    let runs: usize = std::env::var("SIZEGUARD_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed = std::env::var("SIZEGUARD_MUTATION_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..runs {
        let input = &corpus[rng.random_range(0..corpus.len())];
        let other = &corpus[rng.random_range(0..corpus.len())];
        let data = mutate(&mut rng, input, other);
        let outcome = std::panic::catch_unwind(|| analyze_layer(&data));
        if outcome.is_err() {
            let keep = std::env::temp_dir().join(format!("sizeguard-mutation-{i}"));
            std::fs::write(&keep, &data).unwrap();
            panic!(
                "mutation {i} panics the analyzer; kept in {}",
                keep.display()
            );
        }
    }
}
