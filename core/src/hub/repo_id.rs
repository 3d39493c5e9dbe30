//! Hub repository ids (`org/name@revision`) and the names that come back from the hub, checked
//! before they become paths in the cache.

use crate::error::{Error, Result};

/// Splits `org/name@rev` and checks the id against the hub's naming rules.
pub(super) fn parse_repo_id(spec: &str) -> Result<(String, String)> {
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

pub(super) fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A commit id that is safe as a directory name.
pub(super) fn is_safe_commit(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A file name from a repository (an index's shard) that stays inside the snapshot.
pub(super) fn is_safe_file_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && !s.contains('\\')
        && !s.contains(':')
        && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}
