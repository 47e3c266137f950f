//! The image reference parser fed arbitrary strings. No input may panic;
//! a registry or daemon reference that parses must print as a reference
//! that parses back to itself, on the same transport, since reports and messages name images by
//! that spelling. (Layout and archive references depend on which paths
//! exist, so only their parsing is exercised.)

#![no_main]

use libfuzzer_sys::fuzz_target;
use sizeguard::source::reference::ImageRef;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = ImageRef::parse(input) else {
        return;
    };
    let _ = parsed.short_name();
    if matches!(parsed, ImageRef::Registry(_) | ImageRef::Daemon { .. }) {
        let printed = parsed.to_string();
        let again = match ImageRef::parse(&printed) {
            Ok(r) => r,
            Err(e) => panic!("{input:?} prints as {printed:?}, which does not parse: {e}"),
        };
        assert_eq!(again.to_string(), printed, "{input:?} does not read back");
        assert_eq!(
            std::mem::discriminant(&again),
            std::mem::discriminant(&parsed),
            "{input:?} prints as {printed:?}, which names another transport"
        );
    }
});
