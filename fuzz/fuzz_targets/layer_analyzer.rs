//! The layer analyzer fed arbitrary bytes: as they are (the analyzer sniffs
//! gzip, zstd or a plain tar), or compressed first with gzip or zstd so the
//! mutations reach the tar parser through a valid stream. The merged view
//! then stacks the index twice (a layer over itself). No input may panic,
//! hang or allocate past libFuzzer's RSS limit.

#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use sizeguard::measure::layer::{Expected, analyze};
use sizeguard::measure::merged::MergedFs;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let blob = match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let _ = gz.write_all(rest);
            gz.finish().unwrap_or_default()
        }
        _ => zstd::encode_all(rest, 1).unwrap_or_default(),
    };
    if let Ok(m) = analyze(&blob[..], &Expected::default(), None) {
        let _ = m.largest_files(3);
        let mut fs = MergedFs::new();
        fs.apply(&m.index);
        fs.apply(&m.index);
        let _ = (fs.figures(), fs.wasted_bytes(), fs.largest_files(3));
    }
});
