//! The client side of the websocket opening handshake (RFC 6455 §4.1), lean, for the load
//! probe. tungstenite's own client handshake holds a 4 KiB read chunk, the request and
//! response as `http` types with header maps and a growing buffer, about 8 KiB per handshake
//! in flight; with thousands in flight at once that is the probe's peak memory. Here: one
//! request string built from a prepared template, one response buffer sized for a load
//! balancer's `101` with its cookies, parsed in place with `httparse`. The accept key is
//! checked and the stickiness cookie kept; bytes read past the head (Engine.IO's open packet
//! often rides in the same segment as the `101`) are handed to the websocket stream.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use super::{quoted, Error};
use crate::outside::Outside;

/// Largest response head accepted.
pub const HEAD_LIMIT: usize = 16 * 1024;
/// First size of the response buffer: a `101` with ALB's two cookies is about 500 bytes.
const HEAD_START: usize = 1024;
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The request, prepared once: everything but the key.
#[derive(Debug, Clone)]
pub struct Template {
    head: String,
}

impl Template {
    /// For a `ws(s)://host[:port]/path?query` URL; `user_agent` is sent as is.
    pub fn new(url: &Url, user_agent: &str) -> Template {
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => String::new(),
        };
        let mut path = url.path().to_string();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        Template {
            head: format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Version: 13\r\nUser-Agent: {user_agent}\r\nSec-WebSocket-Key: "
            ),
        }
    }

    /// The request with `key`.
    pub fn request(&self, key: &str) -> String {
        self.request_with(key, None)
    }

    /// The request with `key` and, when given, a `Cookie` header (`name=value`): a session
    /// that comes back sends the stickiness cookie its last connection was given, as a
    /// browser does.
    pub fn request_with(&self, key: &str, cookie: Option<&str>) -> String {
        let cookie_len = cookie.map_or(0, |c| c.len() + 10);
        let mut r = String::with_capacity(self.head.len() + key.len() + 4 + cookie_len);
        r.push_str(&self.head);
        r.push_str(key);
        if let Some(c) = cookie {
            r.push_str("\r\nCookie: ");
            r.push_str(c);
        }
        r.push_str("\r\n\r\n");
        r
    }
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64.
pub fn new_key() -> String {
    let bytes: [u8; 16] = rand::random();
    STANDARD.encode(bytes)
}

/// The `Sec-WebSocket-Accept` a server must answer to `key`.
pub fn accept_for(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    STANDARD.encode(h.finalize())
}

/// A complete `101` head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded<'a> {
    /// Length of the head, including the blank line.
    pub head_len: usize,
    /// The `Set-Cookie` values.
    pub set_cookies: Vec<&'a str>,
}

/// Parses a response head in `buf`: `Ok(None)` while incomplete; `Err` for anything but a
/// valid `101` answering `key` (a status other than 101 keeps its first body bytes, as far as
/// they are in `buf`, for the message).
pub fn parse_response<'a>(buf: &'a [u8], key: &str) -> Result<Option<Upgraded<'a>>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(n)) => n,
        Err(e) => {
            return Err(Error::Protocol(format!(
                "websocket handshake: invalid HTTP response ({e})"
            )))
        }
    };
    let status = resp.code.unwrap_or(0);
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    if status != 101 {
        let body = Outside::from_bytes(&buf[head_len..]);
        return Err(if status == 400 && body.contains("Session ID unknown") {
            Error::SessionUnknown { status, body }
        } else {
            Error::Http { status, body }
        });
    }
    let upgrade = header("upgrade").unwrap_or_default();
    let connection = header("connection").unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket")
        || !connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
    {
        return Err(Error::Protocol(format!(
            "websocket handshake: 101 without `Upgrade: websocket` / `Connection: Upgrade` (got {} / {})",
            quoted(upgrade.as_bytes(), 40),
            quoted(connection.as_bytes(), 40)
        )));
    }
    if header("sec-websocket-accept").as_deref() != Some(accept_for(key).as_str()) {
        return Err(Error::Protocol(
            "websocket handshake: Sec-WebSocket-Accept does not answer the key".into(),
        ));
    }
    let set_cookies = resp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .collect();
    Ok(Some(Upgraded {
        head_len,
        set_cookies,
    }))
}

/// Sends the upgrade request on `io` (with `cookie` as its `Cookie` header when given) and
/// reads the `101`. Returns the stickiness cookie chosen by `pick` from the response's
/// `Set-Cookie` values, and the bytes read past the head.
pub async fn handshake<S, T>(
    io: &mut S,
    template: &Template,
    cookie: Option<&str>,
    pick: impl FnOnce(&[&str]) -> T,
) -> Result<(T, Vec<u8>), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let key = new_key();
    io.write_all(template.request_with(&key, cookie).as_bytes())
        .await
        .map_err(|e| Error::Transport(format!("sending the websocket upgrade: {e}")))?;
    let mut buf: Vec<u8> = Vec::with_capacity(HEAD_START);
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= HEAD_LIMIT {
                return Err(Error::TooLarge { limit: HEAD_LIMIT });
            }
            buf.reserve(buf.len());
        }
        let n = io
            .read_buf(&mut buf)
            .await
            .map_err(|e| Error::Transport(format!("reading the websocket upgrade: {e}")))?;
        if n == 0 {
            return Err(Error::Closed(
                "the connection ended before the websocket upgrade was answered".into(),
            ));
        }
        if let Some(up) = parse_response(&buf, &key)? {
            let picked = pick(&up.set_cookies);
            let rest = buf[up.head_len..].to_vec();
            return Ok((picked, rest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_for("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(new_key().len(), 24);
        assert_ne!(new_key(), new_key());
    }

    #[test]
    fn request_from_the_url() {
        let u = Url::parse("ws://127.0.0.1:8080/api/socket.io/?EIO=4&transport=websocket").unwrap();
        let r = Template::new(&u, "ua/1").request("KEY");
        assert!(r.starts_with(
            "GET /api/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        ));
        assert!(
            r.ends_with("User-Agent: ua/1\r\nSec-WebSocket-Key: KEY\r\n\r\n"),
            "{r}"
        );
        let u = Url::parse("wss://api.example.com/socket.io/").unwrap();
        assert!(Template::new(&u, "x")
            .request("k")
            .contains("Host: api.example.com\r\n"));
        let r = Template::new(&u, "x").request_with("k", Some("AWSALB=a+b/c=="));
        assert!(
            r.ends_with("Sec-WebSocket-Key: k\r\nCookie: AWSALB=a+b/c==\r\n\r\n"),
            "{r}"
        );
    }

    #[test]
    fn response_heads() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let ok = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                  sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
                  set-cookie: AWSALB=abc==; Expires=Fri, 04 Dec 2026 15:47:07 GMT; Path=/\r\n\
                  set-cookie: AWSALBCORS=abc==; Path=/; SameSite=None; Secure\r\n\r\n\u{81}\u{5}0{}";
        let up = parse_response(ok.as_bytes(), key).unwrap().unwrap();
        assert_eq!(up.set_cookies.len(), 2);
        assert!(up.set_cookies[0].starts_with("AWSALB=abc=="));
        assert_eq!(&ok.as_bytes()[up.head_len..], "\u{81}\u{5}0{}".as_bytes());
        // Incomplete.
        assert_eq!(parse_response(&ok.as_bytes()[..40], key).unwrap(), None);
        // Wrong accept key.
        let e = parse_response(ok.as_bytes(), "other").unwrap_err();
        assert!(e.to_string().contains("Sec-WebSocket-Accept"), "{e}");
        // Not an upgrade.
        let e = parse_response(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 20\r\n\r\n<h1>503 no server</h1>",
            key,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "unexpected HTTP 503: <h1>503 no server</h1>");
        let e =
            parse_response(b"HTTP/1.1 400 Bad Request\r\n\r\nSession ID unknown", key).unwrap_err();
        assert!(e.is_session_unknown());
        let e = parse_response(
            b"HTTP/1.1 101 Switching\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n",
            key,
        )
        .unwrap_err();
        assert!(e.to_string().contains("Upgrade: websocket"), "{e}");
        assert!(parse_response(b"NOT HTTP\r\n\r\n", key).is_err());
    }
}
