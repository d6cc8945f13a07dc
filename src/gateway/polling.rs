//! Engine.IO HTTP long-polling over reqwest. One [`Polling`] is one HTTP client with (or
//! without) a cookie jar; the jar is a `cookie_store` that keeps each cookie's attributes and
//! expiry, so the checks can read what the load balancer set. Every request has a timeout and
//! every body a size limit; TLS is verified (never disabled).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, SET_COOKIE};
use reqwest_cookie_store::{CookieStore, CookieStoreMutex};
use url::Url;

use super::codec::{self, EioPacket, Handshake};
use super::{error_chain, quoted, Error, BODY_LIMIT};
use crate::outside::Outside;

pub type Jar = Arc<CookieStoreMutex>;

/// A fresh, empty cookie jar.
pub fn new_jar() -> Jar {
    Arc::new(CookieStoreMutex::new(CookieStore::new()))
}

/// One HTTP response, body read in full (within [`BODY_LIMIT`]).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Names of the cookies this response set (values are not kept here).
    pub set_cookies: Vec<String>,
    pub elapsed: Duration,
    /// `Access-Control-Allow-Origin` and `Access-Control-Allow-Credentials`, as sent (what a
    /// browser on another origin reads).
    pub allow_origin: Option<String>,
    pub allow_credentials: Option<String>,
}

impl Reply {
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(|_| Error::Codec(codec::CodecError::NotUtf8))
    }
}

#[derive(Clone)]
pub struct Polling {
    client: reqwest::Client,
    jar: Option<Jar>,
    base: Url,
    engine: Url,
    /// Bound of a request the server answers at once (health, handshake, POST).
    pub request_timeout: Duration,
}

impl std::fmt::Debug for Polling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Polling")
            .field("base", &self.base.as_str())
            .field("cookies", &self.jar.is_some())
            .finish()
    }
}

impl Polling {
    /// `base` is the gateway URL (`https://host[:port][/prefix]`); Engine.IO lives under
    /// `/socket.io/` below it. Without a jar no request carries or keeps cookies.
    pub fn new(base: &Url, jar: Option<Jar>, request_timeout: Duration) -> Result<Polling, Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("bosar-deploy-verify/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(request_timeout)
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(jar) = &jar {
            builder = builder.cookie_provider(jar.clone());
        }
        let client = builder.build().map_err(|e| {
            Error::Connect(format!("cannot build the HTTP client: {}", error_chain(&e)))
        })?;
        Ok(Polling {
            client,
            jar,
            base: base.clone(),
            engine: join(base, "/socket.io/")?,
            request_timeout,
        })
    }

    pub fn jar(&self) -> Option<&Jar> {
        self.jar.as_ref()
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `base` + `path` (for the health endpoint).
    pub fn url(&self, path: &str) -> Result<Url, Error> {
        join(&self.base, path)
    }

    /// The Engine.IO endpoint with `EIO=4`, the transport and the session id.
    pub fn engine_url(&self, transport: &str, sid: Option<&str>) -> Url {
        self.engine_url_eio("4", transport, sid)
    }

    /// [`Polling::engine_url`] for another protocol revision (`3`: socket.io 2.x clients).
    pub fn engine_url_eio(&self, eio: &str, transport: &str, sid: Option<&str>) -> Url {
        let mut url = self.engine.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("EIO", eio)
                .append_pair("transport", transport);
            if transport == "polling" {
                q.append_pair("t", &cache_buster());
            }
            if let Some(sid) = sid {
                q.append_pair("sid", sid);
            }
        }
        url
    }

    /// GET `url`, the body read within the limit.
    pub async fn get(&self, url: Url, timeout: Duration) -> Result<Reply, Error> {
        let started = Instant::now();
        let r = self
            .request(self.client.get(url.clone()), "GET", timeout)
            .await;
        super::log_request("GET", &url, &r, started);
        r
    }

    pub async fn post(&self, url: Url, body: String, timeout: Duration) -> Result<Reply, Error> {
        let started = Instant::now();
        let req = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
            .body(body);
        let r = self.request(req, "POST", timeout).await;
        super::log_request("POST", &url, &r, started);
        r
    }

    /// GET as a page on `origin` sends it (an `Origin` header; the jar's cookies as a browser
    /// with `withCredentials` sends them).
    pub async fn get_from(
        &self,
        url: Url,
        origin: &str,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        let started = Instant::now();
        let req = self.client.get(url.clone()).header("origin", origin);
        let r = self.request(req, "GET", timeout).await;
        super::log_request("GET", &url, &r, started);
        r
    }

    /// POST as a page on `origin` sends it (socket.io-client's `text/plain`, a simple request:
    /// no preflight).
    pub async fn post_from(
        &self,
        url: Url,
        origin: &str,
        body: String,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        let started = Instant::now();
        let req = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "text/plain;charset=UTF-8")
            .header("origin", origin)
            .body(body);
        let r = self.request(req, "POST", timeout).await;
        super::log_request("POST", &url, &r, started);
        r
    }

    async fn request(
        &self,
        req: reqwest::RequestBuilder,
        method: &str,
        timeout: Duration,
    ) -> Result<Reply, Error> {
        let started = Instant::now();
        let what = format!("{method} request");
        let fut = async {
            let mut resp = req
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| map_reqwest(&e, &what, timeout))?;
            let status = resp.status().as_u16();
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let set_cookies = resp
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split_once('=').map(|(n, _)| n.trim().to_string()))
                .collect();
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let allow_origin = header("access-control-allow-origin");
            let allow_credentials = header("access-control-allow-credentials");
            let body = read_body(&mut resp, BODY_LIMIT, &what, timeout).await?;
            Ok(Reply {
                status,
                content_type,
                body,
                set_cookies,
                elapsed: started.elapsed(),
                allow_origin,
                allow_credentials,
            })
        };
        // reqwest's timeout covers connect, headers and body; this outer bound is a backstop.
        match tokio::time::timeout(timeout + Duration::from_millis(500), fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what,
                after: timeout,
            }),
        }
    }

    /// Opens a session: the handshake GET. Returns the handshake, any packets that came with
    /// the open packet, and the reply (for its cookies and timing).
    pub async fn open(&self) -> Result<(Handshake, Vec<EioPacket>, Reply), Error> {
        let reply = self
            .get(self.engine_url("polling", None), self.request_timeout)
            .await
            .map_err(|e| rename_timeout(e, "handshake GET"))?;
        let mut packets = decode_reply(&reply)?;
        if packets.is_empty() {
            return Err(Error::Protocol("empty handshake response".into()));
        }
        let first = packets.remove(0);
        let EioPacket::Open(json) = first else {
            return Err(Error::Protocol(format!(
                "the first packet is {} ({}), not an Engine.IO open packet",
                first.type_name(),
                quoted(first.encode().as_bytes(), 40)
            )));
        };
        let hs = Handshake::parse(&json)?;
        Ok((hs, packets, reply))
    }

    /// One long-poll GET on `sid`: the server answers when it has packets, or with a ping
    /// after at most pingInterval, so `timeout` must exceed that.
    pub async fn poll(&self, sid: &str, timeout: Duration) -> Result<Vec<EioPacket>, Error> {
        let reply = self
            .get(self.engine_url("polling", Some(sid)), timeout)
            .await
            .map_err(|e| rename_timeout(e, "long-poll GET"))?;
        decode_reply(&reply)
    }

    /// POSTs packets on `sid`; the server answers `ok`.
    pub async fn send(&self, sid: &str, packets: &[EioPacket]) -> Result<Reply, Error> {
        let reply = self
            .post(
                self.engine_url("polling", Some(sid)),
                codec::encode_payload(packets),
                self.request_timeout,
            )
            .await
            .map_err(|e| rename_timeout(e, "POST"))?;
        check_status(&reply)?;
        if reply.body != b"ok" {
            return Err(Error::Protocol(format!(
                "POST answered {} instead of \"ok\"",
                quoted(&reply.body, 60)
            )));
        }
        Ok(reply)
    }
}

/// Reads a response body chunk by chunk, refusing it as soon as it would pass `limit` (before
/// reading, when Content-Length says so): a server cannot make this hold more than `limit`
/// bytes. Bound it in time by awaiting it under a timeout; dropping it drops the connection.
pub(crate) async fn read_body(
    resp: &mut reqwest::Response,
    limit: usize,
    what: &str,
    timeout: Duration,
) -> Result<Vec<u8>, Error> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Error::TooLarge { limit });
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(Error::TooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => {
                return Err(Error::Timeout {
                    what: format!("{what} (reading the body)"),
                    after: timeout,
                })
            }
            Err(e) => {
                return Err(Error::Transport(format!(
                    "reading the response body: {}",
                    error_chain(&e)
                )))
            }
        }
    }
}

fn rename_timeout(e: Error, what: &str) -> Error {
    match e {
        Error::Timeout { after, .. } => Error::Timeout {
            what: what.to_string(),
            after,
        },
        e => e,
    }
}

fn join(base: &Url, path: &str) -> Result<Url, Error> {
    let s = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    Url::parse(&s).map_err(|e| Error::Protocol(format!("bad URL {s:?}: {e}")))
}

fn cache_buster() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{:x}", n & 0xffff_ffff_ffff)
}

fn map_reqwest(e: &reqwest::Error, what: &str, timeout: Duration) -> Error {
    if e.is_timeout() {
        Error::Timeout {
            what: what.to_string(),
            after: timeout,
        }
    } else if e.is_connect() {
        Error::Connect(error_chain(e))
    } else {
        Error::Transport(error_chain(e))
    }
}

/// 200, or the Engine.IO error (`{"code":1,"message":"Session ID unknown"}`) as an [`Error`].
pub fn check_status(reply: &Reply) -> Result<(), Error> {
    if reply.status == 200 {
        return Ok(());
    }
    let body = engine_error(&reply.body).unwrap_or_else(|| Outside::from_bytes(&reply.body));
    if reply.status == 400 && body.contains("Session ID unknown") {
        return Err(Error::SessionUnknown {
            status: reply.status,
            body,
        });
    }
    Err(Error::Http {
        status: reply.status,
        body,
    })
}

/// `{"code":5,"message":"Unsupported protocol version"}` as `Unsupported protocol version (code 5)`.
fn engine_error(body: &[u8]) -> Option<Outside> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let msg = v.get("message")?.as_str()?;
    Some(match v.get("code").and_then(|c| c.as_i64()) {
        Some(code) => Outside::new(&format!("{msg} (Engine.IO error code {code})")),
        None => Outside::new(msg),
    })
}

/// A polling GET's packets: 200, a text content type, UTF-8, valid framing.
fn decode_reply(reply: &Reply) -> Result<Vec<EioPacket>, Error> {
    check_status(reply)?;
    let ct = reply.content_type.to_ascii_lowercase();
    if !(ct.starts_with("text/plain") || ct.starts_with("application/octet-stream")) {
        return Err(Error::ContentType {
            got: if ct.is_empty() {
                "(none)".into()
            } else {
                Outside::new(&reply.content_type)
            },
            expected: "text/plain",
        });
    }
    codec::decode_payload_bytes(&reply.body).map_err(Error::Codec)
}
