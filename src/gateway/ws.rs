//! Engine.IO over WebSocket (tokio-tungstenite), carrying the cookies of the polling jar so the
//! upgrade request reaches the same target. One Engine.IO packet per text frame. Every connect,
//! send and receive is time-bounded; messages are limited to [`BODY_LIMIT`]; TLS is verified
//! against the native roots.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{COOKIE, SET_COOKIE, USER_AGENT};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::codec::EioPacket;
use super::polling::{Jar, Polling};
use super::{error_chain, snippet, Error, BODY_LIMIT};
use crate::outside::Outside;

/// What came in on the socket.
#[derive(Debug)]
pub enum Incoming {
    Packet(EioPacket),
    /// The server closed the websocket (close frame or end of stream).
    Closed(String),
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    closed: bool,
}

impl std::fmt::Debug for Ws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ws").field("closed", &self.closed).finish()
    }
}

/// The http(s) URL a ws(s) URL's cookies belong to.
fn cookie_url(ws: &Url) -> Url {
    let mut u = ws.clone();
    let scheme = if ws.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    let _ = u.set_scheme(scheme);
    u
}

/// `ws(s)://…/socket.io/?EIO=4&transport=websocket[&sid=…]`.
pub fn ws_url(polling: &Polling, sid: Option<&str>) -> Url {
    let mut u = polling.engine_url("websocket", sid);
    let scheme = if u.scheme() == "https" { "wss" } else { "ws" };
    let _ = u.set_scheme(scheme);
    u
}

impl Ws {
    /// Opens the websocket (sending the jar's cookies, keeping the cookies the 101 sets).
    pub async fn connect(url: &Url, jar: Option<&Jar>, timeout: Duration) -> Result<Ws, Error> {
        Ws::connect_from(url, jar, timeout, None).await
    }

    /// [`Ws::connect`] as a page on `origin` opens it (an `Origin` header, as browsers send).
    pub async fn connect_from(
        url: &Url,
        jar: Option<&Jar>,
        timeout: Duration,
        origin: Option<&str>,
    ) -> Result<Ws, Error> {
        let http_url = cookie_url(url);
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| Error::Connect(error_chain(&e)))?;
        if let Some(jar) = jar {
            let header = {
                let store = jar
                    .lock()
                    .map_err(|_| Error::Protocol("cookie jar poisoned".into()))?;
                store
                    .get_request_values(&http_url)
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            if !header.is_empty() {
                if let Ok(v) = HeaderValue::from_str(&header) {
                    request.headers_mut().insert(COOKIE, v);
                }
            }
        }
        if let Some(o) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
            request.headers_mut().insert("origin", o);
        }
        request.headers_mut().insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("bosar-deploy-verify/", env!("CARGO_PKG_VERSION"))),
        );
        let config = WebSocketConfig::default()
            .max_message_size(Some(BODY_LIMIT))
            .max_frame_size(Some(BODY_LIMIT));
        let connect = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
        let started = std::time::Instant::now();
        let (stream, response) = match tokio::time::timeout(timeout, connect).await {
            Err(_) => {
                let e = Error::Timeout {
                    what: "websocket connect".into(),
                    after: timeout,
                };
                super::log_line("GET (websocket)", url, &e.to_string(), started);
                return Err(e);
            }
            Ok(Err(e)) => {
                let e = map_connect_error(e);
                super::log_line("GET (websocket)", url, &e.to_string(), started);
                return Err(e);
            }
            Ok(Ok(x)) => x,
        };
        super::log_line(
            "GET (websocket)",
            url,
            &format!("HTTP {}", response.status().as_u16()),
            started,
        );
        if let Some(jar) = jar {
            if let Ok(mut store) = jar.lock() {
                for v in response.headers().get_all(SET_COOKIE) {
                    if let Ok(s) = v.to_str() {
                        let _ = store.parse(s, &http_url);
                    }
                }
            }
        }
        Ok(Ws {
            stream,
            closed: false,
        })
    }

    pub async fn send(&mut self, packet: &EioPacket, timeout: Duration) -> Result<(), Error> {
        let msg = match packet {
            EioPacket::Binary(b) => Message::binary(b.clone()),
            p => Message::text(p.encode()),
        };
        match tokio::time::timeout(timeout, self.stream.send(msg)).await {
            Err(_) => Err(Error::Timeout {
                what: "websocket send".into(),
                after: timeout,
            }),
            Ok(Err(e)) => Err(map_io_error(e)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// The next packet, or `Ok(None)` when `deadline` passed first. Reading is cancel-safe:
    /// a partial frame stays buffered in the stream.
    pub async fn recv(&mut self, deadline: Instant) -> Result<Option<Incoming>, Error> {
        if self.closed {
            return Ok(Some(Incoming::Closed("already closed".into())));
        }
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let next = match tokio::time::timeout(deadline - now, self.stream.next()).await {
                Err(_) => return Ok(None),
                Ok(n) => n,
            };
            match next {
                None => {
                    self.closed = true;
                    return Ok(Some(Incoming::Closed("connection ended".into())));
                }
                Some(Err(e)) => {
                    self.closed = true;
                    return Err(map_io_error(e));
                }
                Some(Ok(Message::Text(t))) => {
                    return Ok(Some(Incoming::Packet(EioPacket::decode(t.as_str())?)))
                }
                Some(Ok(Message::Binary(b))) => {
                    return Ok(Some(Incoming::Packet(EioPacket::Binary(b.to_vec()))))
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = true;
                    let why = match frame {
                        Some(f) => format!(
                            "close frame {} {}",
                            u16::from(f.code),
                            snippet(f.reason.as_bytes(), 80)
                        ),
                        None => "close frame".into(),
                    };
                    return Ok(Some(Incoming::Closed(why.trim().to_string())));
                }
                // Websocket-level ping/pong are answered by tungstenite itself.
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Sends a close frame and waits (bounded) for the server's close or end of stream.
    /// Returns what ended the connection.
    pub async fn close(&mut self, timeout: Duration) -> Result<String, Error> {
        if self.closed {
            return Ok("already closed by the server".into());
        }
        let deadline = Instant::now() + timeout;
        match tokio::time::timeout(timeout, self.stream.close(None)).await {
            Err(_) => {
                return Err(Error::Timeout {
                    what: "websocket close".into(),
                    after: timeout,
                })
            }
            Ok(Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)) => {
                self.closed = true;
                return Ok("connection closed".into());
            }
            Ok(Err(e)) => return Err(map_io_error(e)),
            Ok(Ok(())) => {}
        }
        loop {
            match self.recv(deadline).await {
                Ok(None) => {
                    return Err(Error::Timeout {
                        what: "the server's close frame".into(),
                        after: timeout,
                    })
                }
                Ok(Some(Incoming::Closed(why))) => return Ok(why),
                Ok(Some(Incoming::Packet(_))) => continue,
                // After our close frame, the stream ends with ConnectionClosed: that is success.
                Err(Error::Closed(_)) => return Ok("connection closed".into()),
                Err(e) => return Err(e),
            }
        }
    }
}

fn map_connect_error(e: tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::Http(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_deref()
                .map(Outside::from_bytes)
                .unwrap_or_default();
            if status == 400 && body.contains("Session ID unknown") {
                Error::SessionUnknown { status, body }
            } else {
                Error::Http { status, body }
            }
        }
        tungstenite::Error::Io(io) => Error::Connect(io.to_string()),
        tungstenite::Error::Tls(t) => Error::Connect(format!("TLS: {}", error_chain(&t))),
        e => Error::Transport(format!("websocket handshake: {}", error_chain(&e))),
    }
}

pub(crate) fn map_io_error(e: tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            Error::Closed("websocket closed".into())
        }
        tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => Error::Closed("the connection was closed without a websocket close frame".into()),
        tungstenite::Error::Capacity(c) => Error::Protocol(format!(
            "websocket message refused: {c} (limit {} KiB)",
            BODY_LIMIT / 1024
        )),
        e => Error::Transport(format!("websocket: {}", error_chain(&e))),
    }
}
