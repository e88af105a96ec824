//! An event body, as any client may send it.
#![no_main]

use dr_sf_bridge::digital_river::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = Envelope::parse(body);
});
