//! Every parser of an image's JSON documents fed the same bytes: manifests,
//! indexes (and the platform choice over them), image configs, a layout's
//! `index.json`, a docker-archive's `manifest.json`, a kubelet stats
//! summary. No input may panic, hang or allocate past libFuzzer's RSS
//! limit; what the parsers answer is not judged here.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sizeguard::fuzzing::parse_untrusted_document;

fuzz_target!(|data: &[u8]| {
    parse_untrusted_document(data);
});
