//! Engine.IO v3 framing (socket.io 2.x clients, served by socket.io 4 with `allowEIO3`). Pure:
//! no I/O, no panics on any input.
//!
//! A v3 polling body is a run of `<length>:<packet>` records, the length counting the
//! packet's characters as JavaScript does (UTF-16 code units: `é` is 1, an emoji 2); a binary
//! packet over polling is `b<type digit><base64>`. Over websocket a frame is one packet, text
//! as in v4. The packets themselves (`0` open … `6` noop) and the Socket.IO packets inside
//! messages are v4's, except that a namespace is joined with its query in the namespace
//! (`40/chat?token=…,`, no auth payload), which [`connect_with_query`] writes.
//!
//! Depends on [`super::codec`] only, so the fuzz target includes both by path.

use super::codec::{CodecError, EioPacket};

/// Most digits of a length prefix: a body is at most a few MB.
const MAX_LENGTH_DIGITS: usize = 9;

/// Characters of `s` as JavaScript counts them.
fn js_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// One packet as v3 writes it over polling (binary as `b4<base64>`).
pub fn encode_packet(p: &EioPacket) -> String {
    match p {
        EioPacket::Binary(_) => {
            let v4 = p.encode();
            format!("b4{}", &v4[1..])
        }
        p => p.encode(),
    }
}

/// One v3 packet: v4's text packets, and `b<type><base64>` binary (only messages, type 4,
/// carry data a client reads).
pub fn decode_packet(s: &str) -> Result<EioPacket, CodecError> {
    match s.strip_prefix('b') {
        Some(rest) => match rest.strip_prefix('4') {
            Some(b64) => EioPacket::decode(&format!("b{b64}")),
            None => Err(CodecError::V3Frame(
                "a binary packet that is not a message (b4…)".into(),
            )),
        },
        None => EioPacket::decode(s),
    }
}

/// A v3 polling body: each packet as `<length>:<packet>`.
pub fn encode_payload(packets: &[EioPacket]) -> String {
    let mut out = String::new();
    for p in packets {
        let text = encode_packet(p);
        out.push_str(&js_len(&text).to_string());
        out.push(':');
        out.push_str(&text);
    }
    out
}

/// Splits a v3 polling body into packets; any malformed record fails the whole body, as
/// engine.io-parser 2 does.
pub fn decode_payload(body: &str) -> Result<Vec<EioPacket>, CodecError> {
    if body.is_empty() {
        return Err(CodecError::Empty);
    }
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let index = out.len();
        let in_batch = |error| CodecError::InBatch {
            index,
            error: Box::new(error),
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > MAX_LENGTH_DIGITS || rest.as_bytes().get(digits) != Some(&b':') {
            return Err(in_batch(CodecError::V3Frame(
                "a record does not start with <length>:".into(),
            )));
        }
        // At most 9 digits: fits.
        let want: usize = rest[..digits].parse().unwrap_or(usize::MAX);
        let text = &rest[digits + 1..];
        let mut units = 0;
        let mut end = 0;
        for c in text.chars() {
            if units >= want {
                break;
            }
            units += c.len_utf16();
            end += c.len_utf8();
        }
        if units != want {
            return Err(in_batch(CodecError::V3Frame(format!(
                "length {want} runs past the body or splits a character"
            ))));
        }
        out.push(decode_packet(&text[..end]).map_err(in_batch)?);
        rest = &text[end..];
    }
    Ok(out)
}

/// The Socket.IO CONNECT a socket.io 2.x client sends for `namespace` (not `/`), with its
/// query (`token=…`), as the text of an Engine.IO message: `0/chat?token=…,`.
pub fn connect_with_query(namespace: &str, query: &[(&str, &str)]) -> String {
    let mut out = format!("0{namespace}");
    if !query.is_empty() {
        out.push('?');
        let pairs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", uri_component(k), uri_component(v)))
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out.push(',');
    out
}

/// `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` percent-encoded.
fn uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::codec::SioPacket;

    #[test]
    fn a_real_v3_handshake_body() {
        // What socket.io 4.8 with allowEIO3 answered (tests/gateway), the open packet then the
        // root namespace's CONNECT.
        let open =
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":2000,"pingTimeout":3000}"#;
        let body = format!("{}:{open}2:40", open.len());
        let p = decode_payload(&body).unwrap();
        assert_eq!(
            p,
            vec![
                EioPacket::Open(open[1..].to_string()),
                EioPacket::Message("0".into())
            ]
        );
        assert_eq!(encode_payload(&p), body);
    }

    #[test]
    fn lengths_count_utf16_units_as_javascript_does() {
        let p = vec![EioPacket::Message("2[\"é😀\"]".into())];
        // 4 + 2[" (3) + é (1) + 😀 (2) + "] (2) = 9 units, 12 bytes.
        let body = encode_payload(&p);
        assert_eq!(body, "9:42[\"é😀\"]");
        assert_eq!(decode_payload(&body).unwrap(), p);
        // A length that would split the emoji's surrogate pair, or run past the end.
        assert!(matches!(
            decode_payload("5:42[\"😀\"]"),
            Err(CodecError::InBatch { index: 0, .. })
        ));
        assert!(decode_payload("99:4x").is_err());
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            "",
            "4",
            ":4",
            "x:4",
            "1:",
            "0:",
            "1234567890:4",
            "1:4x",
            "2:4x1:",
            "1:9",
            "2:b5",
            "5:b4!!!",
        ] {
            assert!(decode_payload(bad).is_err(), "{bad:?}");
        }
        // The second record is the bad one.
        assert!(matches!(
            decode_payload("1:21:9"),
            Err(CodecError::InBatch { index: 1, .. })
        ));
    }

    #[test]
    fn binary_over_v3_polling() {
        let p = vec![
            EioPacket::Binary(vec![1, 2, 3]),
            EioPacket::Ping(String::new()),
        ];
        let body = encode_payload(&p);
        assert_eq!(body, "6:b4AQID1:2");
        assert_eq!(decode_payload(&body).unwrap(), p);
    }

    #[test]
    fn the_connect_of_a_socket_io_2_client() {
        let c = connect_with_query("/chat", &[("token", "a.b-c_d")]);
        assert_eq!(c, "0/chat?token=a.b-c_d,");
        assert_eq!(
            connect_with_query("/chat", &[("token", "a b&c=d/é")]),
            "0/chat?token=a%20b%26c%3Dd%2F%C3%A9,"
        );
        assert_eq!(connect_with_query("/chat", &[]), "0/chat,");
        // The server's answers decode with the v4 Socket.IO decoder.
        let ok = SioPacket::decode("0/chat,").unwrap();
        assert_eq!(ok.namespace, "/chat");
        let refused = SioPacket::decode(r#"4/chat,{"reason":"bad signature"}"#).unwrap();
        assert_eq!(refused.namespace, "/chat");
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn packet() -> impl Strategy<Value = EioPacket> {
            prop_oneof![
                "\\PC{0,40}".prop_map(EioPacket::Open),
                Just(EioPacket::Close),
                "(probe)?".prop_map(EioPacket::Ping),
                "(probe)?".prop_map(EioPacket::Pong),
                "\\PC{0,60}".prop_map(EioPacket::Message),
                proptest::collection::vec(any::<u8>(), 0..40).prop_map(EioPacket::Binary),
                Just(EioPacket::Upgrade),
                Just(EioPacket::Noop),
            ]
        }

        proptest! {
            #[test]
            fn encode_then_decode_is_identity(ps in proptest::collection::vec(packet(), 1..8)) {
                let body = encode_payload(&ps);
                prop_assert_eq!(decode_payload(&body).unwrap(), ps);
            }

            #[test]
            fn any_text_decodes_or_fails_without_panic(s in "\\PC{0,80}") {
                if let Ok(ps) = decode_payload(&s) {
                    // What decodes encodes back to something that decodes alike.
                    prop_assert_eq!(decode_payload(&encode_payload(&ps)).unwrap(), ps);
                }
            }
        }
    }
}
