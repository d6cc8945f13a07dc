//! Fuzzes the Engine.IO v3 polling-body decoder (`<length>:<packet>` records, lengths in
//! UTF-16 units): no input may panic, and whatever decodes must survive encode-then-decode
//! unchanged, its Socket.IO messages too.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/gateway/codec.rs"]
mod codec;
#[allow(dead_code)]
#[path = "../../src/gateway/codec_v3.rs"]
mod codec_v3;
// The codec quotes server text in its errors through `crate::outside`.
#[allow(dead_code)]
#[path = "../../src/outside.rs"]
mod outside;

use codec::{EioPacket, SioPacket};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(packets) = codec_v3::decode_payload(text) else {
        return;
    };
    let again = codec_v3::decode_payload(&codec_v3::encode_payload(&packets))
        .expect("an encoded body decodes");
    assert_eq!(again, packets);
    for p in &packets {
        if let EioPacket::Message(m) = p {
            if let Ok(sio) = SioPacket::decode(m) {
                let again = SioPacket::decode(&sio.encode()).expect("an encoded packet decodes");
                assert_eq!(again, sio);
            }
        }
    }
});
