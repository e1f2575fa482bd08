//! Feeds arbitrary bytes to every decoder of the wire format (every command
//! and frame kind, the status ones included: the kind comes from the input).
//! Decoding must return a value or an error, never panic; whatever decodes
//! must encode back to the same bytes (command messages) or decode again to
//! the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shmxfer::testing::protocol::{Command, FrameHeader, Reply, FRAME_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = Command::decode(data) {
        assert_eq!(cmd.encode().expect("a decoded command encodes"), data);
    }
    let max_payload = data.first().map_or(0, |b| usize::from(*b) * 16);
    if let Ok(header) = FrameHeader::decode(data, max_payload) {
        assert!(header.len as usize <= max_payload);
        let payload = &data[FRAME_HEADER_LEN.min(data.len())..];
        if let Ok(reply) = Reply::decode(header.kind, payload) {
            let mut again = Vec::new();
            reply.encode_payload(&mut again);
            assert_eq!(Reply::decode(header.kind, &again).expect("re-decodes"), reply);
        }
    }
});
