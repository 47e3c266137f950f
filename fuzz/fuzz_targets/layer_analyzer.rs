//! The layer analyzer fed arbitrary bytes: as they are (the analyzer sniffs
//! gzip, zstd or a plain tar), or compressed first with gzip or zstd so the
//! mutations reach the tar parser through a valid stream. The merged view
//! then stacks the index twice (a layer over itself). No input may panic,
//! hang or allocate past libFuzzer's RSS limit.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sizeguard::fuzzing::analyze_layer(data);
});
