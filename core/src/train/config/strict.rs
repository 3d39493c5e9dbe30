//! The run config's JSON reader. A key that appears twice in one object keeps its last value, as
//! the seed's reader (Python's `json`) does, but with a warning naming its path and lines instead
//! of silently; every key's place is recorded, so later errors can point at the occurrence whose
//! value is used; a value of the wrong type is reported with its key and place.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};

use super::run::RunConfig;
use crate::tasks::CustomTaskConfig;

/// A parsed config file: the tree (duplicates resolved), where each key is, and the warnings.
pub(super) struct Parsed {
    pub value: Value,
    pub places: Places,
    pub warnings: Vec<String>,
}

/// Where each key of the file is: its path (`a`, `custom_tasks[0].name`) → the line and column
/// of every occurrence, in file order.
#[derive(Debug, Default)]
pub(super) struct Places(BTreeMap<String, Vec<(usize, usize)>>);

impl Places {
    /// ` at line L column C` of the key at `path` (its last occurrence: the one whose value is
    /// used), or nothing when the file has no such key.
    pub fn at(&self, path: &str) -> String {
        match self.0.get(path).and_then(|all| all.last()) {
            Some((line, column)) => format!(" at line {line} column {column}"),
            None => String::new(),
        }
    }

    fn lines(&self, path: &str) -> Vec<usize> {
        self.0
            .get(path)
            .map_or_else(Vec::new, |all| all.iter().map(|(line, _)| *line).collect())
    }
}

/// Parses JSON into a tree. A duplicated key keeps its last value and leaves a warning.
pub(super) fn parse_strict(text: &str) -> serde_json::Result<Parsed> {
    let state = State {
        text,
        key_offsets: key_offsets(text),
        next_key: Cell::new(0),
        places: RefCell::new(BTreeMap::new()),
        duplicates: RefCell::new(Vec::new()),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue {
        path: String::new(),
        state: &state,
    }
    .deserialize(&mut de)?;
    de.end()?;
    let places = Places(state.places.into_inner());
    let warnings = state
        .duplicates
        .into_inner()
        .into_iter()
        .map(|(path, last)| duplicate_warning(&path, &places.lines(&path), &last))
        .collect();
    Ok(Parsed {
        value,
        places,
        warnings,
    })
}

fn duplicate_warning(path: &str, lines: &[usize], last: &Value) -> String {
    let lines: Vec<String> = lines.iter().map(|l| format!("line {l}")).collect();
    let lines = match lines.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => lines.join(""),
    };
    let mut value = last.to_string();
    if value.chars().count() > 40 {
        value = value.chars().take(37).collect::<String>() + "...";
    }
    format!(
        "duplicate key `{path}` ({lines}): the last value ({value}) is used, as the seed's JSON \
         reader does"
    )
}

/// The byte offset of every object key in `text`, in file order: the order in which serde hands
/// the keys to [`StrictValue`], so the n-th key it sees is at the n-th offset. A key is a string
/// followed by `:`; strings are skipped whole, so a `"x":` inside a value does not count.
fn key_offsets(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut offsets = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < bytes.len() && bytes[i] != b'"' {
            // An escape takes the next byte with it (`\"` does not end the string).
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
        let rest = text.get(i..).unwrap_or("");
        if rest.trim_start().starts_with(':') {
            offsets.push(start);
        }
    }
    offsets
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |nl| nl + 1) + 1;
    (line, column)
}

/// What every [`StrictValue`] of one parse shares.
struct State<'t> {
    text: &'t str,
    key_offsets: Vec<usize>,
    /// How many keys serde has handed over so far.
    next_key: Cell<usize>,
    places: RefCell<BTreeMap<String, Vec<(usize, usize)>>>,
    /// Each duplicated key's path and last value, in the order they were found.
    duplicates: RefCell<Vec<(String, Value)>>,
}

impl State<'_> {
    /// Records the place of the key just read, at `path`.
    fn record_key(&self, path: &str) {
        let n = self.next_key.get();
        self.next_key.set(n + 1);
        // The offsets always cover every key serde reads; a miss only loses the place.
        if let Some(&offset) = self.key_offsets.get(n) {
            let place = line_column(self.text, offset);
            self.places
                .borrow_mut()
                .entry(path.to_string())
                .or_default()
                .push(place);
        }
    }
}

/// A `serde_json::Value` deserializer that records where each key is and resolves duplicated
/// keys to their last value.
struct StrictValue<'s, 't> {
    path: String,
    state: &'s State<'t>,
}

impl<'s, 't> StrictValue<'s, 't> {
    fn child(&self, path: String) -> Self {
        Self {
            path,
            state: self.state,
        }
    }

    fn child_key(&self, key: &str) -> Self {
        if self.path.is_empty() {
            self.child(key.to_string())
        } else {
            self.child(format!("{}.{key}", self.path))
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_, '_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = self.child(format!("{}[{}]", self.path, items.len()));
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut object = Map::new();
        let mut duplicated = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child_key(&key);
            self.state.record_key(&child.path);
            let value = map.next_value_seed(child)?;
            // The last value wins, as in Python's `json` (the seed's reader).
            if object.insert(key.clone(), value).is_some() && !duplicated.contains(&key) {
                duplicated.push(key);
            }
        }
        let mut duplicates = self.state.duplicates.borrow_mut();
        for key in duplicated {
            duplicates.push((self.child_key(&key).path, object[&key].clone()));
        }
        Ok(Value::Object(object))
    }
}

/// serde's type error `err` of the whole tree, as the key at fault (found by deserializing one
/// key at a time) and its place. serde places the error of a flattened key (the adapter and
/// hypernetwork options) at the end of the object, and a tree has no places at all, so the
/// place is the key's own.
pub(super) fn type_error_message(
    object: &Map<String, Value>,
    places: &Places,
    err: &serde_json::Error,
) -> String {
    for (key, value) in object {
        let at = places.at(key);
        if let (true, Value::Array(tasks)) = (key == "custom_tasks", value) {
            for (i, task) in tasks.iter().enumerate() {
                if let Err(e) = serde_json::from_value::<CustomTaskConfig>(task.clone()) {
                    return format!("`custom_tasks[{i}]`: {e}{at}");
                }
            }
        }
        let single = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
        if let Err(e) = serde_json::from_value::<RunConfig>(single) {
            return format!("`{key}`: {e}{at}");
        }
    }
    err.to_string()
}
