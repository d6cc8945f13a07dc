//! Fuzzes the polling-body decoder and the Socket.IO packet decoder: no input may panic, and
//! whatever decodes must survive encode-then-decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/gateway/codec.rs"]
mod codec;
// The codec quotes server text in its errors through `crate::outside`.
#[allow(dead_code)]
#[path = "../../src/outside.rs"]
mod outside;

use codec::{EioPacket, Handshake, SioPacket};

fuzz_target!(|data: &[u8]| {
    let Ok(packets) = codec::decode_payload_bytes(data) else {
        return;
    };
    for p in &packets {
        let again = EioPacket::decode(&p.encode()).expect("an encoded packet decodes");
        assert_eq!(&again, p);
        match p {
            EioPacket::Open(json) => {
                let _ = Handshake::parse(json);
            }
            EioPacket::Message(text) => {
                if let Ok(sio) = SioPacket::decode(text) {
                    let again =
                        SioPacket::decode(&sio.encode()).expect("an encoded packet decodes");
                    assert_eq!(again, sio);
                    let _ = sio.event_name();
                    let _ = sio.error_message();
                }
            }
            _ => {}
        }
    }
});
