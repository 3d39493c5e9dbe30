//! A fake Hugging Face hub served on 127.0.0.1 by a thread of the test (see `hub_download.rs`
//! for what it answers).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The commit `main` points at, unless a test says otherwise.
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Clone)]
pub struct FakeRepo {
    pub files: BTreeMap<String, Vec<u8>>,
    /// Whether `/api/models/...` answers (a bare mirror may only proxy `resolve`).
    listing: bool,
    /// What `main` points at.
    pub commit: &'static str,
    /// Answer every file with a redirect that has no `Location` (a broken proxy).
    pub broken_redirects: bool,
}

impl FakeRepo {
    pub fn new(files: &[(&str, Vec<u8>)]) -> Self {
        let files = files
            .iter()
            .map(|(n, b)| (n.to_string(), b.clone()))
            .collect();
        Self {
            files,
            listing: true,
            commit: COMMIT,
            broken_redirects: false,
        }
    }
    pub fn without_listing(mut self) -> Self {
        self.listing = false;
        self
    }
}

pub struct FakeHub {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHub {
    pub fn start(repos: &[(&str, FakeRepo)]) -> Self {
        let repos: BTreeMap<String, FakeRepo> = repos
            .iter()
            .map(|(id, r)| (id.to_string(), r.clone()))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        // One request per connection; errors only end that connection.
                        let _ = serve(stream, &repos, &requests);
                    }
                }
            })
        };
        Self {
            addr,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `"GET <path> [<range>]"` for every request so far, and forgets them.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A stable fake content hash, hex; `len` hex digits (64 like sha256, 40 like git's sha1).
fn fake_hash(bytes: &[u8], salt: u64, len: usize) -> String {
    let mut out = String::new();
    let mut round = 0u64;
    while out.len() < len {
        let mut h: u64 = 0xcbf29ce484222325 ^ salt.wrapping_mul(0x9e3779b97f4a7c15) ^ round;
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        out.push_str(&format!("{h:016x}"));
        round += 1;
    }
    out.truncate(len);
    out
}

/// Weights are LFS files on the hub: hf-hub names their blob after `X-Linked-Etag` (the sha256).
fn is_lfs(name: &str) -> bool {
    name.ends_with(".safetensors") || name.ends_with(".bin")
}

pub fn blob_name(name: &str, bytes: &[u8]) -> String {
    if is_lfs(name) {
        fake_hash(bytes, 1, 64)
    } else {
        fake_hash(bytes, 2, 40)
    }
}

fn serve(
    stream: TcpStream,
    repos: &BTreeMap<String, FakeRepo>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    log.lock().unwrap().push(match &range {
        Some(r) => format!("GET {path} {r}"),
        None => format!("GET {path}"),
    });
    let response = route(&path, range.as_deref(), repos);
    let mut stream = stream;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        206 => "Partial Content",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Other",
    }
}

fn hub_error(status: u16, code: &str, message: &str) -> Response {
    Response {
        status,
        headers: vec![
            ("X-Error-Code", code.to_string()),
            ("Content-Type", "text/plain".into()),
        ],
        body: message.as_bytes().to_vec(),
    }
}

fn route(path: &str, range: Option<&str>, repos: &BTreeMap<String, FakeRepo>) -> Response {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    // The repository listing; dataset repositories are registered as `datasets/<id>`, which is
    // also how their files are resolved (`/datasets/<id>/resolve/...`).
    let listing = path
        .strip_prefix("/api/models/")
        .map(|rest| ("", rest))
        .or_else(|| {
            path.strip_prefix("/api/datasets/")
                .map(|rest| ("datasets/", rest))
        });
    match listing {
        Some((kind, rest)) => route_listing(kind, rest, repos),
        None => route_file(path, range, repos),
    }
}

/// `/api/{models,datasets}/<id>/revision/<rev>`: the repository listing.
fn route_listing(kind: &str, rest: &str, repos: &BTreeMap<String, FakeRepo>) -> Response {
    let Some((id, rev)) = rest.split_once("/revision/") else {
        return hub_error(404, "EntryNotFound", "bad api path");
    };
    let Some(repo) = repos.get(&format!("{kind}{id}")) else {
        return hub_error(401, "RepoNotFound", "Repository not found");
    };
    if !repo.listing {
        // A plain 404 page, as from a mirror that does not implement the API.
        return Response {
            status: 404,
            headers: vec![],
            body: b"Not Found".to_vec(),
        };
    }
    if rev != "main" && rev != repo.commit {
        return hub_error(404, "RevisionNotFound", "Invalid rev id");
    }
    let siblings: Vec<_> = repo
        .files
        .iter()
        .map(|(name, bytes)| {
            if is_lfs(name) {
                serde_json::json!({
                    "rfilename": name,
                    "blobId": fake_hash(bytes, 3, 40),
                    "size": bytes.len(),
                    "lfs": { "sha256": blob_name(name, bytes), "size": bytes.len(), "pointerSize": 134 },
                })
            } else {
                serde_json::json!({ "rfilename": name, "blobId": blob_name(name, bytes), "size": bytes.len() })
            }
        })
        .collect();
    let body =
        serde_json::json!({ "id": id, "modelId": id, "sha": repo.commit, "siblings": siblings });
    Response {
        status: 200,
        headers: vec![("Content-Type", "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// `/<id>/resolve/<rev>/<file>`: a file, whole or the `range` asked for.
fn route_file(path: &str, range: Option<&str>, repos: &BTreeMap<String, FakeRepo>) -> Response {
    let Some((id, rest)) = path.trim_start_matches('/').split_once("/resolve/") else {
        return hub_error(404, "EntryNotFound", "not a resolve path");
    };
    let Some(repo) = repos.get(id) else {
        return hub_error(401, "RepoNotFound", "Repository not found");
    };
    let Some((rev, file)) = rest.split_once('/') else {
        return hub_error(404, "EntryNotFound", "no file");
    };
    if rev != "main" && rev != repo.commit {
        return hub_error(404, "RevisionNotFound", "Invalid rev id");
    }
    let Some(bytes) = repo.files.get(file) else {
        let mut r = hub_error(404, "EntryNotFound", "Entry not found");
        r.headers.push(("X-Repo-Commit", repo.commit.into()));
        return r;
    };
    if repo.broken_redirects {
        let mut r = hub_error(302, "", "");
        r.headers = vec![
            ("X-Repo-Commit", repo.commit.into()),
            ("ETag", "\"abc\"".into()),
        ];
        return r;
    }
    let total = bytes.len();
    let mut headers = vec![
        ("X-Repo-Commit", repo.commit.to_string()),
        ("Accept-Ranges", "bytes".to_string()),
        ("Content-Type", "application/octet-stream".to_string()),
    ];
    if is_lfs(file) {
        // The hub's ETag for an LFS file is not the sha256; hf-hub must prefer X-Linked-Etag.
        headers.push(("ETag", format!("\"{}\"", fake_hash(bytes, 3, 40))));
        headers.push(("X-Linked-Etag", format!("\"{}\"", blob_name(file, bytes))));
        headers.push(("X-Linked-Size", total.to_string()));
    } else {
        headers.push(("ETag", format!("\"{}\"", blob_name(file, bytes))));
    }
    let Some(range) = range else {
        return Response {
            status: 200,
            headers,
            body: bytes.clone(),
        };
    };
    let parsed = range
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(s, e)| {
            let start: usize = s.parse().ok()?;
            let end: usize = if e.is_empty() {
                total.checked_sub(1)?
            } else {
                e.parse::<usize>().ok()?.min(total - 1)
            };
            (start <= end && end < total).then_some((start, end))
        });
    match parsed {
        Some((start, end)) => {
            headers.push(("Content-Range", format!("bytes {start}-{end}/{total}")));
            Response {
                status: 206,
                headers,
                body: bytes[start..=end].to_vec(),
            }
        }
        None => {
            headers.push(("Content-Range", format!("bytes */{total}")));
            Response {
                status: 416,
                headers,
                body: vec![],
            }
        }
    }
}
