//! Replays the saved fuzz corpus (and any crash kept in `fuzz/artifacts`)
//! through the layer analyzer on the stable toolchain, exactly as the
//! `layer_analyzer` fuzz target feeds it: no input may panic.

use std::io::Write;
use std::path::Path;

use sizeguard::measure::layer::{Expected, analyze};
use sizeguard::measure::merged::MergedFs;

/// What `fuzz/fuzz_targets/layer_analyzer.rs` does with one input.
fn run_layer_analyzer(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let blob = match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(rest).unwrap();
            gz.finish().unwrap()
        }
        _ => zstd::encode_all(rest, 1).unwrap(),
    };
    if let Ok(m) = analyze(&blob[..], &Expected::default(), None) {
        let _ = m.largest_files(3);
        let mut fs = MergedFs::new();
        fs.apply(&m.index);
        fs.apply(&m.index);
        let _ = (fs.figures(), fs.wasted_bytes(), fs.largest_files(3));
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
        let outcome = std::panic::catch_unwind(|| run_layer_analyzer(&data));
        assert!(outcome.is_ok(), "{} panics the analyzer", path.display());
    }
}
