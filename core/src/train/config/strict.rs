//! A strict JSON reader for run configs: a key that appears twice in one object is an error
//! naming its path (the seed's parser silently kept the last value), and a value of the wrong
//! type is reported with its key and place.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::{Map, Value};

use super::run::RunConfig;
use crate::tasks::CustomTaskConfig;

/// Parses JSON into a tree, refusing a key that appears twice in one object.
pub(super) fn parse_strict(text: &str) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = StrictValue {
        path: String::new(),
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// A `serde_json::Value` deserializer that errors on duplicate keys, naming their path.
struct StrictValue {
    path: String,
}

impl StrictValue {
    fn child_key(&self, key: &str) -> Self {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Self { path }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
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
            let seed = StrictValue {
                path: format!("{}[{}]", self.path, items.len()),
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child_key(&key);
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key `{}`: a key may appear only once (the seed's parser silently \
                     kept the last value)",
                    child.path
                )));
            }
            let value = map.next_value_seed(child)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// ` at line L column C` of the first `"key":` in `text`, or nothing when not found.
pub(super) fn location(text: &str, key: &str) -> String {
    let quoted = format!("\"{key}\"");
    let found = text
        .match_indices(&quoted)
        .find(|(at, _)| text[at + quoted.len()..].trim_start().starts_with(':'));
    match found {
        Some((at, _)) => {
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |nl| nl + 1) + 1;
            format!(" at line {line} column {column}")
        }
        None => String::new(),
    }
}

/// serde's type error `err` of the whole file, as the key at fault (found by deserializing one
/// key at a time) and its place in `text`. serde places the error of a flattened key (the
/// adapter options) at the end of the object, so the place is the key's own.
pub(super) fn type_error_message(
    object: &Map<String, Value>,
    text: &str,
    err: &serde_json::Error,
) -> String {
    for (key, value) in object {
        let at = location(text, key);
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
