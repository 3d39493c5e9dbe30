//! One fetch from the hub: the repository, revision, endpoint and cache it works with, the hub
//! client, the repository listing, and the errors a user sees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

use super::failure::{classify, Fail, Failure};
use super::repo_id::{is_safe_commit, parse_repo_id};
use super::{default_cache_dir, HubOptions, DEFAULT_ENDPOINT};
use crate::error::{Error, Result};

/// Download retries (with resume) after the transfer of a file broke off.
const DOWNLOAD_RETRIES: usize = 2;

/// The repository listing: the commit the revision points at, and each file with its blob name.
pub(super) struct Listing {
    pub(super) commit: String,
    pub(super) files: BTreeMap<String, Option<String>>,
}

/// One repository at one revision, fetched from one endpoint into one cache.
pub(super) struct Fetch {
    pub(super) id: String,
    pub(super) revision: String,
    pub(super) endpoint: String,
    pub(super) cache_root: PathBuf,
    pub(super) progress: bool,
    pub(super) repo_type: RepoType,
}

impl Fetch {
    /// Checks the repository id, the endpoint and the cache location before any request.
    pub(super) fn new(repo_id: &str, options: &HubOptions, repo_type: RepoType) -> Result<Self> {
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

    pub(super) fn repo(&self, revision: &str) -> Repo {
        Repo::with_revision(self.id.clone(), self.repo_type, revision.to_string())
    }

    /// `<cache>/models--org--name`.
    pub(super) fn repo_dir(&self) -> PathBuf {
        self.cache_root
            .join(self.repo(&self.revision).folder_name())
    }

    pub(super) fn refs_path(&self, revision: &str) -> PathBuf {
        self.repo_dir().join("refs").join(revision)
    }

    /// `org/name` or `org/name@rev` as the user wrote it.
    pub(super) fn display_id(&self) -> String {
        if self.revision == "main" {
            self.id.clone()
        } else {
            format!("{}@{}", self.id, self.revision)
        }
    }
    pub(super) fn build_api(&self) -> std::result::Result<Api, Fail> {
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

    pub(super) fn online(&self) -> std::result::Result<PathBuf, Fail> {
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
    pub(super) fn list(&self, api: &Api) -> std::result::Result<Listing, Failure> {
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

    pub(super) fn network(&self, cause: &str, what: &str) -> Fail {
        Fail::Network(format!(
            "{}: could not reach {} to fetch {what}: {cause}; set HF_ENDPOINT for a mirror or \
             HF_HUB_OFFLINE=1 to use the cache",
            self.display_id(),
            self.endpoint
        ))
    }

    pub(super) fn server_error(&self, code: u16, error_code: Option<String>, what: &str) -> Fail {
        Fail::Network(format!(
            "{}: {} answered HTTP {code}{} for {what}; try again later, set HF_ENDPOINT for a \
             mirror or HF_HUB_OFFLINE=1 to use the cache",
            self.display_id(),
            self.endpoint,
            error_code.map(|c| format!(" ({c})")).unwrap_or_default(),
        ))
    }

    /// Turns a failed request for `what` into the error the user sees.
    pub(super) fn http_error(&self, failure: Failure, what: &str) -> Fail {
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

    pub(super) fn repo_not_found(&self, code_text: &str) -> String {
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

    pub(super) fn no_weights(&self, detail: &str) -> Fail {
        Fail::Fatal(Error::Hub(format!(
            "{} has no weights t5-core reads ({detail}); it reads model.safetensors, \
             pytorch_model.bin, or the index of either's shards: convert the checkpoint with \
             transformers (`save_pretrained(dir, safe_serialization=True)`) and load that \
             directory, or look for a safetensors conversion among the repository's pull requests \
             and use `{}@refs/pr/N`",
            self.display_id(),
            self.id
        )))
    }
}
