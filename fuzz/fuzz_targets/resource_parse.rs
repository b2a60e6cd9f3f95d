//! Fuzz target: a resource string through `ResourcePath::parse`.
//!
//! Never panics; anything that parses formats back to the exact input and
//! is accepted by `ResourcePath::new` as it stands.

#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::ResourcePath;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path) = ResourcePath::parse(text) else {
        return;
    };
    assert_eq!(path.to_string(), text);
    let rebuilt = ResourcePath::new(path.node().map(str::to_owned), path.target().clone());
    assert_eq!(rebuilt, Ok(path));
});
