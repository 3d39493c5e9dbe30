//! Downloading checkpoints (and, in [`dataset`], datasets' parquet files) from the Hugging Face
//! hub into the standard cache.
//!
//! Files land exactly where Python's `huggingface_hub` puts them:
//! `<cache>/models--org--name/blobs/<etag>`, with `snapshots/<commit>/<file>` symlinks to the
//! blobs and `refs/<revision>` holding the commit, so one cache serves both ecosystems.
//!
//! Online, the repository listing (`/api/models/<id>/revision/<rev>?blobs=true`) gives the
//! commit, the file names and their blob ids; files already in that commit's snapshot, or whose
//! blob is already cached (unchanged since another commit), are not downloaded again; the others
//! are downloaded with hf-hub, pinned to that commit. Mirrors without the listing API are handled by probing the
//! files directly. When the hub cannot be reached, a complete cached snapshot is used instead
//! (with a warning). Offline, only the cache is read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

mod dataset;
use crate::error::{Error, Result};
use crate::files::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE, WEIGHTS_INDEX_FILE};
pub use dataset::fetch_dataset_split;

/// The hub used when no endpoint is given.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Fetched when the repository has them; their absence is not an error.
const OPTIONAL_FILES: [&str; 2] = ["generation_config.json", "spiece.model"];
/// Download retries (with resume) after the transfer of a file broke off.
const DOWNLOAD_RETRIES: usize = 2;

/// Where and how to fetch.
#[derive(Clone, Debug, Default)]
pub struct HubOptions {
    /// `HF_ENDPOINT`, default `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// The hub cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`).
    pub cache_dir: Option<PathBuf>,
    /// `HF_HUB_OFFLINE`: use only the cache.
    pub offline: bool,
    /// Show download progress bars.
    pub progress: bool,
}

impl HubOptions {
    /// Reads the variables Python's `huggingface_hub` reads: `HF_ENDPOINT`; `HF_HUB_CACHE`
    /// (else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`); `HF_HUB_OFFLINE`
    /// (`1`/`true`/`yes`/`on`). Progress bars are shown when stderr is a terminal and
    /// `HF_HUB_DISABLE_PROGRESS_BARS` is not set.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`HubOptions::from_env`], reading the variables through `var` (for tests and
    /// embedders that keep their settings elsewhere).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let endpoint = get("HF_ENDPOINT").map(|e| e.trim_end_matches('/').to_string());
        // Python expands `~` in these.
        let path = |value: String| match (value.strip_prefix("~/"), get("HOME")) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ if value == "~" => get("HOME").map_or_else(|| PathBuf::from(&value), PathBuf::from),
            _ => PathBuf::from(value),
        };
        let cache_dir = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(path)
            .or_else(|| get("HF_HOME").map(|home| path(home).join("hub")))
            .or_else(|| get("XDG_CACHE_HOME").map(|xdg| path(xdg).join("huggingface").join("hub")));
        let offline = get("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v));
        let progress = std::io::stderr().is_terminal()
            && !get("HF_HUB_DISABLE_PROGRESS_BARS").is_some_and(|v| truthy(&v));
        Self {
            endpoint,
            cache_dir,
            offline,
            progress,
        }
    }
}

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// `~/.cache/huggingface/hub`.
fn default_cache_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var_os("USERPROFILE").filter(|h| !h.is_empty()))?;
    Some(
        PathBuf::from(home)
            .join(".cache")
            .join("huggingface")
            .join("hub"),
    )
}

/// Fetches `config.json`, `tokenizer.json` and the safetensors weights of `repo_id` and returns
/// the cache directory that holds them (`<cache>/models--org--name/snapshots/<commit>/`).
///
/// `repo_id` is `name` or `org/name`, optionally followed by `@revision` (a branch, tag or
/// commit; default `main`). `generation_config.json` and `spiece.model` are fetched too when
/// the repository has them. `options.endpoint: None` means [`DEFAULT_ENDPOINT`] and
/// `options.cache_dir: None` means `~/.cache/huggingface/hub` (use [`HubOptions::from_env`] to
/// honour `HF_ENDPOINT`, `HF_HOME` and friends). A token is taken from `HF_TOKEN`, else from the
/// `token` file next to the cache (`huggingface-cli login`).
pub fn fetch_model(repo_id: &str, options: &HubOptions) -> Result<PathBuf> {
    let fetch = Fetch::new(repo_id, options, RepoType::Model)?;
    if options.offline {
        return match fetch.check_cache()? {
            Cached::Complete(dir) => Ok(dir),
            missing => Err(fetch.offline_error(missing)),
        };
    }
    if is_commit_hash(&fetch.revision) {
        // A commit never changes: when its snapshot is complete there is nothing to ask the hub.
        if let Ok(Cached::Complete(dir)) = fetch.check_cache() {
            return Ok(dir);
        }
    }
    match fetch.online() {
        Ok(dir) => Ok(dir),
        Err(Fail::Fatal(e)) => Err(e),
        Err(Fail::Network(msg)) => match fetch.check_cache() {
            Ok(Cached::Complete(dir)) => {
                tracing::warn!("{msg}; using the cached snapshot {}", dir.display());
                Ok(dir)
            }
            _ => Err(Error::Hub(msg)),
        },
    }
}

/// Splits `org/name@rev` and checks the id against the hub's naming rules.
fn parse_repo_id(spec: &str) -> Result<(String, String)> {
    let spec = spec.trim();
    let (id, revision) = match spec.split_once('@') {
        Some((id, rev)) => (id, rev),
        None => (spec, "main"),
    };
    let invalid = |why: &str| {
        Error::Invalid(format!(
            "`{spec}` is neither an existing directory nor a hub repository id \
             (`name`, `org/name` or `org/name@revision`): {why}"
        ))
    };
    let revision_chars = revision
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if revision.is_empty()
        || !revision_chars
        || revision.contains("..")
        || revision.starts_with('/')
        || revision.ends_with('/')
    {
        return Err(invalid("bad revision"));
    }
    let parts: Vec<&str> = id.split('/').collect();
    if id.is_empty() || parts.len() > 2 || id.len() > 96 {
        return Err(invalid("expected at most one `/`"));
    }
    for part in &parts {
        let ok_chars = part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if part.is_empty()
            || !ok_chars
            || part.starts_with(['-', '.'])
            || part.ends_with(['-', '.'])
            || part.contains("--")
            || part.contains("..")
        {
            return Err(invalid(&format!("`{part}` is not a valid name")));
        }
    }
    Ok((id.to_string(), revision.to_string()))
}

fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A commit id that is safe as a directory name.
fn is_safe_commit(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A file name from a repository (an index's shard) that stays inside the snapshot.
fn is_safe_file_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && !s.contains('\\')
        && !s.contains(':')
        && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The shard files listed by `model.safetensors.index.json`, deduplicated and sorted; each must
/// stay inside the snapshot.
fn index_shards(index: &Path) -> Result<Vec<String>> {
    let shards = crate::weights::index_shards(index)?;
    if let Some(bad) = shards.iter().find(|s| !is_safe_file_name(s)) {
        return Err(Error::checkpoint(
            index,
            format!("`weight_map` names an invalid file `{bad}`"),
        ));
    }
    Ok(shards)
}

/// What the cache holds for the requested revision.
enum Cached {
    Complete(PathBuf),
    /// `refs/<revision>` is missing: nothing is known about this revision.
    NoSnapshot {
        refs: PathBuf,
    },
    /// The snapshot exists but lacks `files` (and the weights when `weights_unknown`).
    Incomplete {
        snapshot: PathBuf,
        files: Vec<String>,
        weights_unknown: bool,
    },
}

/// The repository listing: the commit the revision points at, and each file with its blob name.
struct Listing {
    commit: String,
    files: BTreeMap<String, Option<String>>,
}

/// Why an online fetch stopped.
enum Fail {
    /// The hub could not be reached (or failed on its side): the cache may stand in.
    Network(String),
    /// Anything else: reported as is.
    Fatal(Error),
}

/// A hub request that failed, classified.
enum Failure {
    /// No HTTP answer: connection refused, DNS, TLS, reset, timeout.
    Network(String),
    /// An HTTP error status, with the hub's `X-Error-Code` when it sent one.
    Status {
        code: u16,
        error_code: Option<String>,
    },
    /// Anything else (a server that is not a hub, the local cache, a lock).
    Other(String),
}

impl Failure {
    fn is_not_found(&self) -> bool {
        matches!(self, Failure::Status { code: 404, .. })
    }
}

/// Runs an hf-hub call, turning a panic inside it into a failure: hf-hub 0.4.3 unwraps a few
/// things a broken server controls (a redirect without `Location`, for one).
fn guarded<T>(
    call: impl FnOnce() -> std::result::Result<T, Failure>,
) -> std::result::Result<T, Failure> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into());
        Err(Failure::Other(format!(
            "the hub client failed on an unexpected answer ({what})"
        )))
    })
}

fn classify(err: ApiError) -> Failure {
    match err {
        ApiError::RequestError(e) => {
            let e = *e;
            let text = e.to_string();
            let kind = e.kind().to_string();
            let source = std::error::Error::source(&e).map(|s| s.to_string());
            match e.into_response() {
                Some(response) => Failure::Status {
                    code: response.status(),
                    error_code: response.header("x-error-code").map(str::to_string),
                },
                None => Failure::Network(match source {
                    Some(source) => format!("{}: {source}", kind.to_lowercase()),
                    None => text,
                }),
            }
        }
        ApiError::TooManyRetries(inner) => classify(*inner),
        ApiError::IoError(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Failure::Network(format!("transfer broke off: {e}"))
        }
        ApiError::IoError(e) => Failure::Other(format!("I/O error: {e}")),
        ApiError::MissingHeader(h) => Failure::Other(format!(
            "the server sent no `{h}` header (is the endpoint a Hugging Face hub or mirror?)"
        )),
        ApiError::InvalidHeader(h) => {
            Failure::Other(format!("the server sent an invalid `{h}` header"))
        }
        ApiError::ParseIntError(e) => Failure::Other(format!(
            "the server sent an invalid Content-Range header ({e})"
        )),
        ApiError::InvalidResume => Failure::Other(
            "a partial download (`blobs/*.part`) is larger than the file; delete it and retry"
                .into(),
        ),
        ApiError::LockAcquisition(lock) => Failure::Other(format!(
            "another process is downloading it (lock {}); wait for it or delete the lock",
            lock.display()
        )),
        #[allow(unreachable_patterns)]
        other => Failure::Other(other.to_string()),
    }
}

struct Fetch {
    id: String,
    revision: String,
    endpoint: String,
    cache_root: PathBuf,
    progress: bool,
    repo_type: RepoType,
}

impl Fetch {
    /// Checks the repository id, the endpoint and the cache location before any request.
    fn new(repo_id: &str, options: &HubOptions, repo_type: RepoType) -> Result<Self> {
        let (id, revision) = parse_repo_id(repo_id)?;
        let endpoint = match &options.endpoint {
            Some(e) => {
                let e = e.trim().trim_end_matches('/');
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Err(Error::Invalid(format!(
                        "hub endpoint `{e}` is not an http(s) URL (check HF_ENDPOINT)"
                    )));
                }
                e.to_string()
            }
            None => DEFAULT_ENDPOINT.to_string(),
        };
        let Some(cache_root) = options.cache_dir.clone().or_else(default_cache_dir) else {
            return Err(Error::Hub(format!(
                "{repo_id}: cannot locate the Hugging Face cache (no home directory); set HF_HOME"
            )));
        };
        Ok(Self {
            id,
            revision,
            endpoint,
            cache_root,
            progress: options.progress,
            repo_type,
        })
    }

    fn repo(&self, revision: &str) -> Repo {
        Repo::with_revision(self.id.clone(), self.repo_type, revision.to_string())
    }

    /// `<cache>/models--org--name`.
    fn repo_dir(&self) -> PathBuf {
        self.cache_root
            .join(self.repo(&self.revision).folder_name())
    }

    fn refs_path(&self, revision: &str) -> PathBuf {
        self.repo_dir().join("refs").join(revision)
    }

    /// `org/name` or `org/name@rev` as the user wrote it.
    fn display_id(&self) -> String {
        if self.revision == "main" {
            self.id.clone()
        } else {
            format!("{}@{}", self.id, self.revision)
        }
    }

    // ---------------------------------------------------------------- cache (offline) --

    fn check_cache(&self) -> Result<Cached> {
        let commit = if is_commit_hash(&self.revision) {
            Some(self.revision.clone())
        } else {
            std::fs::read_to_string(self.refs_path(&self.revision))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| is_safe_commit(s))
        };
        let Some(commit) = commit else {
            return Ok(Cached::NoSnapshot {
                refs: self.refs_path(&self.revision),
            });
        };
        let snapshot = self.repo_dir().join("snapshots").join(&commit);
        let mut files: Vec<String> = [CONFIG_FILE, TOKENIZER_FILE]
            .into_iter()
            .filter(|f| !snapshot.join(f).is_file())
            .map(String::from)
            .collect();
        let mut weights_unknown = false;
        if snapshot.join(WEIGHTS_FILE).is_file() {
        } else if snapshot.join(WEIGHTS_INDEX_FILE).is_file() {
            let shards = index_shards(&snapshot.join(WEIGHTS_INDEX_FILE))?;
            files.extend(shards.into_iter().filter(|s| !snapshot.join(s).is_file()));
        } else {
            weights_unknown = true;
        }
        if files.is_empty() && !weights_unknown {
            Ok(Cached::Complete(snapshot))
        } else {
            Ok(Cached::Incomplete {
                snapshot,
                files,
                weights_unknown,
            })
        }
    }

    fn offline_error(&self, cached: Cached) -> Error {
        let (mut missing, weights_unknown, place) = match cached {
            Cached::Complete(_) => (vec![], false, String::new()),
            Cached::NoSnapshot { refs } => (
                vec![CONFIG_FILE.to_string(), TOKENIZER_FILE.to_string()],
                true,
                format!(
                    "no snapshot of revision `{}` is cached ({} does not exist)",
                    self.revision,
                    refs.display()
                ),
            ),
            Cached::Incomplete {
                snapshot,
                files,
                weights_unknown,
            } => (
                files,
                weights_unknown,
                format!("looked in {}", snapshot.display()),
            ),
        };
        let revision_flag = if self.revision == "main" {
            String::new()
        } else {
            format!(" --revision {}", self.revision)
        };
        let command = if weights_unknown {
            format!(
                "huggingface-cli download {}{revision_flag} --include \"*.json\" \"*.safetensors\"",
                self.id
            )
        } else {
            format!(
                "huggingface-cli download {}{revision_flag} {}",
                self.id,
                missing.join(" ")
            )
        };
        if weights_unknown {
            missing.push(format!(
                "{WEIGHTS_FILE} (or {WEIGHTS_INDEX_FILE} and its shards)"
            ));
        }
        Error::MissingFiles(format!(
            "{}: offline mode, and the Hugging Face cache {} lacks {}: {place}; run `{command}` on a \
             machine with internet (then copy {} here), or go online (unset HF_HUB_OFFLINE)",
            self.display_id(),
            self.cache_root.display(),
            missing.join(", "),
            self.repo_dir().display(),
        ))
    }

    // ------------------------------------------------------------------------- online --

    fn build_api(&self) -> std::result::Result<Api, Fail> {
        let mut builder = ApiBuilder::from_cache(Cache::new(self.cache_root.clone()))
            .with_endpoint(self.endpoint.clone())
            .with_progress(self.progress)
            .with_retries(DOWNLOAD_RETRIES)
            .with_user_agent("t5-core", env!("CARGO_PKG_VERSION"));
        let token = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"].iter().find_map(|v| {
            std::env::var(v)
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
        if let Some(token) = token {
            builder = builder.with_token(Some(token));
        }
        builder.build().map_err(|e| {
            Fail::Fatal(Error::Hub(format!(
                "{}: cannot set up the hub client: {e}",
                self.display_id()
            )))
        })
    }

    fn online(&self) -> std::result::Result<PathBuf, Fail> {
        let api = self.build_api()?;
        match self.list(&api) {
            Ok(listing) => self.fetch_listed(&api, &listing),
            Err(failure) => match failure {
                Failure::Network(cause) => Err(self.network(&cause, "the file list")),
                Failure::Status { code, error_code } if code >= 500 => {
                    Err(self.server_error(code, error_code, "the file list"))
                }
                failure @ Failure::Status {
                    code: 401 | 403, ..
                } => Err(self.http_error(failure, "the file list")),
                failure @ Failure::Status {
                    error_code: Some(_),
                    ..
                } => Err(self.http_error(failure, "the file list")),
                // A mirror without the listing API (404 without a hub error code, or a page that
                // is not the hub's JSON): fetch the files one by one.
                other => {
                    tracing::debug!(
                        "{}: no repository listing on {} ({}); probing files",
                        self.display_id(),
                        self.endpoint,
                        match &other {
                            Failure::Status { code, .. } => format!("HTTP {code}"),
                            Failure::Network(m) | Failure::Other(m) => m.clone(),
                        }
                    );
                    self.fetch_probing(&api)
                }
            },
        }
    }

    /// The repository listing with blob ids (`/api/models/<id>/revision/<rev>?blobs=true`).
    fn list(&self, api: &Api) -> std::result::Result<Listing, Failure> {
        let response = api
            .repo(self.repo(&self.revision))
            .info_request()
            .query("blobs", "true")
            .call()
            .map_err(|e| classify(ApiError::RequestError(Box::new(e))))?;
        let value: serde_json::Value = response
            .into_json()
            .map_err(|e| Failure::Other(format!("the listing is not the hub's JSON: {e}")))?;
        let commit = value["sha"]
            .as_str()
            .map(|s| s.trim().to_string())
            .ok_or_else(|| Failure::Other("the listing has no `sha`".into()))?;
        let siblings = value["siblings"]
            .as_array()
            .ok_or_else(|| Failure::Other("the listing has no `siblings`".into()))?;
        let files = siblings
            .iter()
            .filter_map(|sibling| {
                let name = sibling["rfilename"].as_str()?.to_string();
                // The blob name Python and hf-hub use: the sha256 of LFS files, else the git id.
                let etag = sibling["lfs"]["sha256"]
                    .as_str()
                    .or_else(|| sibling["blobId"].as_str())
                    .filter(|e| is_safe_commit(e))
                    .map(str::to_string);
                Some((name, etag))
            })
            .collect();
        Ok(Listing { commit, files })
    }

    fn network(&self, cause: &str, what: &str) -> Fail {
        Fail::Network(format!(
            "{}: could not reach {} to fetch {what}: {cause}; set HF_ENDPOINT for a mirror or \
             HF_HUB_OFFLINE=1 to use the cache",
            self.display_id(),
            self.endpoint
        ))
    }

    fn server_error(&self, code: u16, error_code: Option<String>, what: &str) -> Fail {
        Fail::Network(format!(
            "{}: {} answered HTTP {code}{} for {what}; try again later, set HF_ENDPOINT for a \
             mirror or HF_HUB_OFFLINE=1 to use the cache",
            self.display_id(),
            self.endpoint,
            error_code.map(|c| format!(" ({c})")).unwrap_or_default(),
        ))
    }

    /// Turns a failed request for `what` into the error the user sees.
    fn http_error(&self, failure: Failure, what: &str) -> Fail {
        let id = self.display_id();
        let endpoint = &self.endpoint;
        match failure {
            Failure::Network(cause) => self.network(&cause, what),
            Failure::Status { code, error_code } if code >= 500 => {
                self.server_error(code, error_code, what)
            }
            Failure::Status { code, error_code } => {
                let code_text = match &error_code {
                    Some(c) => format!("HTTP {code}, {c}"),
                    None => format!("HTTP {code}"),
                };
                let msg = match error_code.as_deref() {
                    Some("RevisionNotFound") => format!(
                        "{id}: revision `{}` not found on {endpoint} ({code_text}); check the branch, tag or commit after `@`",
                        self.revision
                    ),
                    Some("GatedRepo") => format!(
                        "{id}: {what} is in a gated repository on {endpoint} ({code_text}); accept its \
                         terms on the hub and set HF_TOKEN (or run `huggingface-cli login`)"
                    ),
                    Some("RepoNotFound") => self.repo_not_found(&code_text),
                    Some("EntryNotFound") => {
                        format!("{id}: {what} not found on {endpoint} (revision `{}`, {code_text})", self.revision)
                    }
                    _ if code == 401 || code == 403 => self.repo_not_found(&code_text),
                    _ if code == 404 => {
                        format!("{id}: {what} not found on {endpoint} (revision `{}`, {code_text})", self.revision)
                    }
                    _ => format!("{id}: {endpoint} refused {what} ({code_text})"),
                };
                Fail::Fatal(Error::Hub(msg))
            }
            Failure::Other(cause) => Fail::Fatal(Error::Hub(format!(
                "{id}: fetching {what} from {endpoint} failed: {cause}"
            ))),
        }
    }

    fn repo_not_found(&self, code_text: &str) -> String {
        let local = if Path::new(&self.id).exists() {
            String::new()
        } else {
            format!(" (and there is no local directory `{}`)", self.id)
        };
        format!(
            "{}: repository not found on {} ({code_text}){local}; check the name, or for a private \
             or gated repository set HF_TOKEN (or run `huggingface-cli login`)",
            self.display_id(),
            self.endpoint
        )
    }

    fn no_safetensors(&self, detail: &str) -> Fail {
        Fail::Fatal(Error::Hub(format!(
            "{} has no safetensors weights ({detail}); t5-core reads only model.safetensors or \
             model.safetensors.index.json: convert the checkpoint with transformers \
             (`save_pretrained(dir, safe_serialization=True)`) and load that directory, or look for \
             a safetensors conversion among the repository's pull requests and use `{}@refs/pr/N`",
            self.display_id(),
            self.id
        )))
    }

    /// The repository listing gave the commit, the file names and their blobs.
    fn fetch_listed(&self, api: &Api, listing: &Listing) -> std::result::Result<PathBuf, Fail> {
        let commit = listing.commit.as_str();
        let files: BTreeSet<&str> = listing.files.keys().map(String::as_str).collect();
        if !is_safe_commit(commit) {
            return Err(self.http_error(
                Failure::Other(format!("the listing names an invalid commit `{commit}`")),
                "the file list",
            ));
        }
        let id = self.display_id();
        for required in [CONFIG_FILE, TOKENIZER_FILE] {
            if !files.contains(required) {
                let hint = if required == TOKENIZER_FILE && files.contains("spiece.model") {
                    " (it has only spiece.model: convert it with transformers, \
                     `AutoTokenizer.from_pretrained(repo).save_pretrained(dir)`, and load that directory)"
                } else {
                    ""
                };
                let hint = hint.replace("(repo)", &format!("(\"{}\")", self.id));
                return Err(Fail::Fatal(Error::Hub(format!(
                    "{id}: the repository on {} has no {required} at commit {commit}{hint}",
                    self.endpoint
                ))));
            }
        }
        let mut pinned = Pinned::new(self, api, commit);
        pinned.etags = listing
            .files
            .iter()
            .filter_map(|(name, etag)| Some((name.clone(), etag.clone()?)))
            .collect();
        pinned.get(CONFIG_FILE)?;
        pinned.get(TOKENIZER_FILE)?;
        if files.contains(WEIGHTS_FILE) {
            pinned.get(WEIGHTS_FILE)?;
        } else if files.contains(WEIGHTS_INDEX_FILE) {
            let index = pinned.get(WEIGHTS_INDEX_FILE)?;
            let shards = index_shards(&index).map_err(Fail::Fatal)?;
            if let Some(absent) = shards.iter().find(|s| !files.contains(s.as_str())) {
                return Err(Fail::Fatal(Error::Hub(format!(
                    "{id}: {WEIGHTS_INDEX_FILE} lists {absent}, which the repository on {} does not have",
                    self.endpoint
                ))));
            }
            for shard in &shards {
                pinned.get(shard)?;
            }
        } else {
            let others: Vec<&str> = files
                .iter()
                .copied()
                .filter(|f| {
                    [
                        ".bin", ".h5", ".msgpack", ".ckpt", ".pt", ".pth", ".gguf", ".onnx",
                    ]
                    .iter()
                    .any(|ext| f.ends_with(ext))
                })
                .collect();
            let detail = if others.is_empty() {
                format!("no {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE} at commit {commit}")
            } else {
                format!("only {}", others.join(", "))
            };
            return Err(self.no_safetensors(&detail));
        }
        for optional in OPTIONAL_FILES {
            if files.contains(optional) {
                pinned.get_optional(optional);
            }
        }
        pinned.finish()
    }

    /// No listing (a mirror without the API): learn the commit from `config.json`, then probe.
    fn fetch_probing(&self, api: &Api) -> std::result::Result<PathBuf, Fail> {
        let revision_ref_existed = self.refs_path(&self.revision).exists();
        let repo = api.repo(self.repo(&self.revision));
        let config = guarded(|| repo.download(CONFIG_FILE).map_err(classify))
            .map_err(|f| self.http_error(f, CONFIG_FILE))?;
        let commit = config
            .parent()
            .and_then(Path::file_name)
            .and_then(|c| c.to_str())
            .map(str::to_string)
            .filter(|c| is_safe_commit(c))
            .ok_or_else(|| {
                Fail::Fatal(Error::Hub(format!(
                    "{}: unexpected cache path {} for {CONFIG_FILE}",
                    self.display_id(),
                    config.display()
                )))
            })?;
        let mut pinned = Pinned::new(self, api, &commit);
        if commit == self.revision {
            // The unpinned download of config.json already wrote `refs/<commit>`.
            pinned.commit_ref_existed = revision_ref_existed;
        }
        pinned.get(TOKENIZER_FILE)?;
        if pinned.cached(WEIGHTS_FILE).is_some() {
        } else if let Some(index) = pinned.cached(WEIGHTS_INDEX_FILE) {
            for shard in &index_shards(&index).map_err(Fail::Fatal)? {
                pinned.get(shard)?;
            }
        } else {
            match pinned.try_get(WEIGHTS_FILE) {
                Ok(_) => {}
                Err(f) if f.is_not_found() => match pinned.try_get(WEIGHTS_INDEX_FILE) {
                    Ok(index) => {
                        for shard in &index_shards(&index).map_err(Fail::Fatal)? {
                            pinned.get(shard)?;
                        }
                    }
                    Err(f) if f.is_not_found() => {
                        return Err(self.no_safetensors(&format!(
                            "{WEIGHTS_FILE} and {WEIGHTS_INDEX_FILE}: HTTP 404 on {}",
                            self.endpoint
                        )))
                    }
                    Err(f) => return Err(self.http_error(f, WEIGHTS_INDEX_FILE)),
                },
                Err(f) => return Err(self.http_error(f, WEIGHTS_FILE)),
            }
        }
        for optional in OPTIONAL_FILES {
            pinned.get_optional(optional);
        }
        pinned.finish()
    }
}

/// Downloads pinned to one commit, into `snapshots/<commit>/`.
struct Pinned<'a> {
    fetch: &'a Fetch,
    repo: ApiRepo,
    commit: String,
    snapshot: PathBuf,
    /// Whether `refs/<commit>` existed before: hf-hub writes it for pinned downloads, Python
    /// never does, so a new one is removed at the end.
    commit_ref_existed: bool,
    /// File name → blob name, from the listing: a blob already in the cache (the same file in
    /// another commit) is linked instead of downloaded again.
    etags: BTreeMap<String, String>,
}

impl<'a> Pinned<'a> {
    fn new(fetch: &'a Fetch, api: &Api, commit: &str) -> Self {
        Self {
            fetch,
            repo: api.repo(fetch.repo(commit)),
            commit: commit.to_string(),
            snapshot: fetch.repo_dir().join("snapshots").join(commit),
            commit_ref_existed: fetch.refs_path(commit).exists(),
            etags: BTreeMap::new(),
        }
    }

    /// Links `snapshots/<commit>/<file>` to an existing `blobs/<etag>`, as Python does.
    fn link_blob(&self, file: &str, target: &Path) -> Option<PathBuf> {
        let blob = self
            .fetch
            .repo_dir()
            .join("blobs")
            .join(self.etags.get(file)?);
        if !blob.is_file() {
            return None;
        }
        let parent = target.parent()?;
        std::fs::create_dir_all(parent).ok()?;
        // From snapshots/<commit>/<file> back to the repository folder.
        let mut relative = PathBuf::from("..");
        for _ in file.split('/') {
            relative.push("..");
        }
        relative.push("blobs");
        relative.push(blob.file_name()?);
        #[cfg(unix)]
        let linked = std::os::unix::fs::symlink(&relative, target).is_ok();
        #[cfg(windows)]
        let linked = std::os::windows::fs::symlink_file(&relative, target).is_ok()
            || std::fs::copy(&blob, target).is_ok();
        #[cfg(not(any(unix, windows)))]
        let linked = std::fs::copy(&blob, target).is_ok();
        (linked && target.is_file()).then(|| {
            tracing::debug!("{file}: reusing cached blob {}", blob.display());
            target.to_path_buf()
        })
    }

    fn cached(&self, file: &str) -> Option<PathBuf> {
        let path = self.snapshot.join(file);
        path.is_file().then_some(path)
    }

    /// The file from the snapshot, downloading it when it is not there.
    fn try_get(&self, file: &str) -> std::result::Result<PathBuf, Failure> {
        if let Some(path) = self.cached(file) {
            return Ok(path);
        }
        let target = self.snapshot.join(file);
        // A dangling link (its blob was deleted) would make hf-hub's symlink fail.
        if target.symlink_metadata().is_ok() {
            std::fs::remove_file(&target)
                .map_err(|e| Failure::Other(format!("{}: {e}", target.display())))?;
        }
        if let Some(path) = self.link_blob(file, &target) {
            return Ok(path);
        }
        tracing::info!(
            "downloading {file} of {} from {}",
            self.fetch.display_id(),
            self.fetch.endpoint
        );
        let path = guarded(|| self.repo.download(file).map_err(classify))?;
        if path != target {
            return Err(Failure::Other(format!(
                "it was stored at {} instead of {} (the hub answered for another commit than {})",
                path.display(),
                target.display(),
                self.commit
            )));
        }
        Ok(path)
    }

    fn get(&self, file: &str) -> std::result::Result<PathBuf, Fail> {
        self.try_get(file)
            .map_err(|f| self.fetch.http_error(f, file))
    }

    fn get_optional(&self, file: &str) {
        match self.try_get(file) {
            Ok(_) => {}
            Err(f) if f.is_not_found() => {}
            Err(f) => {
                let msg = match self.fetch.http_error(f, file) {
                    Fail::Network(m) => m,
                    Fail::Fatal(e) => e.to_string(),
                };
                tracing::warn!("{msg} (optional file, skipped)");
            }
        }
    }

    /// Points `refs/<revision>` at the commit, as Python does, and returns the snapshot.
    fn finish(&self) -> std::result::Result<PathBuf, Fail> {
        let fetch = self.fetch;
        if fetch.revision != self.commit {
            Cache::new(fetch.cache_root.clone())
                .repo(fetch.repo(&fetch.revision))
                .create_ref(&self.commit)
                .map_err(|e| Fail::Fatal(Error::io(fetch.refs_path(&fetch.revision), e)))?;
        }
        if !self.commit_ref_existed {
            // Only the stray file hf-hub wrote; a missing one is fine.
            let _ = std::fs::remove_file(fetch.refs_path(&self.commit));
        }
        Ok(self.snapshot.clone())
    }
}
