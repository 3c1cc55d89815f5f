//! The unix socket: created 0600 in a checked root-only directory, every
//! peer checked to be root (`SO_PEERCRED`), one JSON request per line.

use std::{
    collections::BTreeMap,
    io,
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::Path,
    sync::{Arc, Mutex},
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{
    api::{ApiError, ErrorCode, Request, Response},
    core::Agent,
    store,
};

/// A request line longer than this is refused (and the connection closed).
const MAX_LINE: u64 = 64 * 1024;

/// API calls by op and outcome, for `/metrics`.
pub type ApiCounts = Arc<Mutex<BTreeMap<(String, &'static str), u64>>>;

/// Binds the API socket at `path`: its directory is created 0700 and
/// checked; a stale socket there is replaced (the node lock says no other
/// agent uses it), anything else is refused.
pub fn bind(path: &Path) -> Result<UnixListener, io::Error> {
    let parent = path
        .parent()
        .ok_or_else(|| io::Error::other(format!("socket path {path:?} has no directory")))?;
    store::ensure_dir("socket", parent).map_err(io::Error::other)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::other(format!(
                "{} exists and is not a socket; remove it or choose another --socket",
                path.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, agent: Arc<Mutex<Agent>>, counts: ApiCounts) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an API connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (agent, counts) = (agent.clone(), counts.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, agent, counts).await {
                tracing::debug!(error = %e, "API connection ended");
            }
        });
    }
}

async fn connection(
    stream: UnixStream,
    agent: Arc<Mutex<Agent>>,
    counts: ApiCounts,
) -> io::Result<()> {
    let uid = stream.peer_cred()?.uid();
    let (read, mut write) = stream.into_split();
    if uid != 0 {
        let e = ApiError::new(
            ErrorCode::Forbidden,
            format!("uid {uid} may not use shortpathd: root only"),
        );
        write_response(&mut write, Response::from(Err(e))).await?;
        return Ok(());
    }
    let mut lines = BufReader::new(read);
    loop {
        let mut line = String::new();
        let n = (&mut lines).take(MAX_LINE).read_line(&mut line).await?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') && n as u64 >= MAX_LINE {
            let e = ApiError::new(
                ErrorCode::BadRequest,
                format!("request longer than {MAX_LINE} bytes"),
            );
            write_response(&mut write, Response::from(Err(e))).await?;
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let (op, result) = match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                let op = op_name(&req);
                let agent = agent.clone();
                let r = tokio::task::spawn_blocking(move || {
                    let mut a = agent.lock().unwrap_or_else(|p| p.into_inner());
                    dispatch(&mut a, req)
                })
                .await
                .unwrap_or_else(|e| Err(ApiError::new(ErrorCode::Internal, e.to_string())));
                (op, r)
            }
            Err(e) => (
                "invalid".to_owned(),
                Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("not a request: {e} (one JSON object per line, with \"op\")"),
                )),
            ),
        };
        let outcome = if result.is_ok() { "ok" } else { "error" };
        *counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((op, outcome))
            .or_default() += 1;
        write_response(&mut write, Response::from(result)).await?;
    }
}

async fn write_response(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    resp: Response,
) -> io::Result<()> {
    let mut line = serde_json::to_vec(&resp).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}

fn op_name(req: &Request) -> String {
    serde_json::to_value(req)
        .ok()
        .and_then(|v| v.get("op").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default()
}

fn dispatch(agent: &mut Agent, req: Request) -> Result<Value, ApiError> {
    if !agent.ready && !matches!(req, Request::Health) {
        return Err(ApiError::new(ErrorCode::NotReady, "shortpathd is starting"));
    }
    match req {
        Request::Health => Ok(agent.health()),
        Request::Status => agent.status(),
        Request::ModeGet => agent.mode(),
        Request::ModeSet { mode, attach } => agent.set_mode(mode, attach),
        Request::EndpointAdd { endpoint } => agent.add(&endpoint),
        Request::EndpointRemove { id } => agent.remove(&id),
        Request::EndpointList => agent.list(),
    }
}
