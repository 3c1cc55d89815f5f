//! The agent's local API: one JSON object per line over a unix socket
//! (mode 0600, root only), a response line for every request line.
//!
//! ```text
//! → {"op":"endpoint_add","endpoint":{"id":"c0ffee","host_if":"lxc1","addrs":["10.1.0.5"],"pod_mac":"02:00:00:00:00:05"}}
//! ← {"ok":true,"result":{...}}
//! → {"op":"mode_set","mode":"bogus"}
//! ← {"ok":false,"error":{"code":"bad_request","message":"..."}}
//! ```
//!
//! [`Client`] is what the lab, the CNI plugin and tests call it with.

use std::{
    io::{self, BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dataplane::{AttachKind, Mode};

/// A request. Unknown fields are refused, so a typo never silently means
/// "default".
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is the agent up and its dataplane in place.
    Health,
    /// The dataplane: mode, attach kind, every port with counters.
    Status,
    ModeGet,
    ModeSet {
        mode: Mode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attach: Option<AttachKind>,
    },
    /// Adds an endpoint, or updates the one with the same id.
    EndpointAdd {
        endpoint: EndpointRequest,
    },
    EndpointRemove {
        id: String,
    },
    EndpointList,
}

/// An endpoint as a client describes it; checked by the agent before
/// anything happens (see `agent::endpoint`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// The caller's identity for it (container id, pod name): 1–128 of
    /// `[A-Za-z0-9_-]`.
    pub id: String,
    /// The host side of the pod's veth, in the agent's namespace.
    pub host_if: String,
    /// The pod's addresses; each inside the node's pod CIDR.
    pub addrs: Vec<String>,
    /// MAC of the pod's own interface (the veth peer).
    pub pod_mac: String,
    /// The pod interface's MTU; the host veth's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// Why a request failed; `code` is stable, `message` says what to do.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not a known op, or a field of the wrong type.
    BadRequest,
    /// A field that parses but is not acceptable (CIDR, name, MAC).
    Invalid,
    NotFound,
    /// An address another endpoint owns.
    Conflict,
    /// The agent is starting or its dataplane is not in place.
    NotReady,
    /// The caller is not root.
    Forbidden,
    /// The kernel refused; nothing was left half-done.
    Internal,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(Value::as_str).unwrap_or("error"))
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A response line.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl From<Result<Value, ApiError>> for Response {
    fn from(r: Result<Value, ApiError>) -> Self {
        match r {
            Ok(v) => Self {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Self {
                ok: false,
                result: None,
                error: Some(e),
            },
        }
    }
}

/// Why a call did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach shortpathd at {path}: {source} (is the agent running? see `systemctl status shortpathd`)")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("shortpathd at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("shortpathd at {path} answered something that is not a response: {line:?}")]
    Garbled { path: PathBuf, line: String },
    #[error("shortpathd refused: {0}")]
    Api(#[from] ApiError),
}

/// A connection to an agent's socket (blocking; a few requests per call
/// site, each answered in milliseconds).
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.into(),
            source,
        })?;
        let io = |source| ClientError::Io {
            path: path.into(),
            source,
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        Ok(Self {
            path: path.into(),
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends one raw line and returns the raw response line (for tests of
    /// malformed input).
    pub fn raw(&mut self, line: &str) -> Result<String, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        self.writer
            .write_all(format!("{}\n", line.trim_end()).as_bytes())
            .map_err(io)?;
        let mut out = String::new();
        let n = self
            .reader
            .read_line(&mut out)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(ClientError::Io {
                path: self.path.clone(),
                source: io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"),
            });
        }
        Ok(out)
    }

    /// Sends a request; an error response becomes [`ClientError::Api`].
    pub fn call(&mut self, req: &Request) -> Result<Value, ClientError> {
        let line = serde_json::to_string(req).expect("requests serialize");
        let out = self.raw(&line)?;
        let resp: Response = serde_json::from_str(&out).map_err(|_| ClientError::Garbled {
            path: self.path.clone(),
            line: out.clone(),
        })?;
        match (resp.ok, resp.result, resp.error) {
            (true, r, _) => Ok(r.unwrap_or(Value::Null)),
            (false, _, Some(e)) => Err(ClientError::Api(e)),
            (false, _, None) => Err(ClientError::Garbled {
                path: self.path.clone(),
                line: out,
            }),
        }
    }
}

/// One request on a fresh connection.
pub fn call(path: &Path, req: &Request) -> Result<Value, ClientError> {
    Client::connect(path)?.call(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_unknown_fields_are_refused() {
        let r: Request = serde_json::from_str(r#"{"op":"mode_set","mode":"peer"}"#).unwrap();
        assert_eq!(
            r,
            Request::ModeSet {
                mode: Mode::Peer,
                attach: None
            }
        );
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(line, r#"{"op":"mode_set","mode":"peer"}"#);
        for bad in [
            r#"{"op":"mode_set","mode":"fast"}"#,
            r#"{"op":"reboot"}"#,
            r#"{"op":"endpoint_add","endpoint":{"id":"a","host_if":"x","addrs":[],"pod_mac":"","color":1}}"#,
            r#"{"mode":"peer"}"#,
            "[]",
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
        let e = ApiError::new(ErrorCode::NotFound, "no endpoint \"x\"");
        let resp = Response::from(Err(e));
        let s = serde_json::to_string(&resp).unwrap();
        assert_eq!(
            s,
            r#"{"ok":false,"error":{"code":"not_found","message":"no endpoint \"x\""}}"#
        );
    }
}
