//! The image reference parser fed arbitrary strings. No input may panic;
//! a registry or daemon reference that parses must print as a reference
//! that parses back to itself, on the same transport, since reports and messages name images by
//! that spelling. (Layout and archive references depend on which paths
//! exist, so only their parsing is exercised.)

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sizeguard::fuzzing::check_reference_round_trip(data);
});
