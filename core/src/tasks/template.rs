//! Input templates: text with `{field}` placeholders filled from a record.
//!
//! The seed builds inputs as `" ".join(["sentence1:", s1, "sentence2:", s2])`; the template
//! `"sentence1: {sentence1} sentence2: {sentence2}"` produces the same string, character for
//! character (an empty value leaves two spaces in both), and lets custom tasks be written in a
//! config file.

use std::fmt;

use crate::data::Record;
use crate::error::{Error, Result};

/// A parsed template. `{name}` is replaced by the record's `name` field; `{{` and `}}` stand
/// for literal braces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(String),
}

impl Template {
    /// Parses `source`. Errors on an unclosed `{`, a lone `}`, or an empty or malformed field
    /// name (names are letters, digits, `_`, `-` and `.`).
    pub fn parse(source: &str) -> Result<Template> {
        let bad = |msg: String| Error::Invalid(format!("template {source:?}: {msg}"));
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, n)| n) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, n)| n) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, n) in chars.by_ref() {
                        if n == '}' {
                            closed = true;
                            break;
                        }
                        name.push(n);
                    }
                    if !closed {
                        return Err(bad(format!(
                            "`{{` at byte {at} is never closed: a placeholder without a `}}`"
                        )));
                    }
                    if name.is_empty() {
                        return Err(bad(format!(
                            "empty placeholder `{{}}` at byte {at}: a placeholder must be a \
                             field name"
                        )));
                    }
                    if let Some(c) = name.chars().find(|&c| !is_name_char(c)) {
                        return Err(bad(format!(
                            "placeholder `{{{name}}}` at byte {at} contains {c:?}; field names \
                             use letters, digits, `_`, `-` and `.` (write `{{{{` for a literal brace)"
                        )));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field(name));
                }
                '}' => {
                    return Err(bad(format!(
                        "`}}` at byte {at} closes nothing (write `}}}}` for a literal brace)"
                    )))
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The placeholder names, in order of appearance (repeats included).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills the placeholders with the record's values, inserted as they are (not trimmed).
    pub fn render(&self, record: &Record) -> Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(name) => out.push_str(field(record, name)?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// The record's `name` field, or an error that lists the fields it does have.
pub(crate) fn field<'r>(record: &'r Record, name: &str) -> Result<&'r str> {
    record.get(name).map(String::as_str).ok_or_else(|| {
        let have: Vec<&str> = record.keys().map(String::as_str).collect();
        Error::Invalid(format!(
            "record has no field `{name}` (it has: {})",
            if have.is_empty() {
                "nothing".to_string()
            } else {
                have.join(", ")
            }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pairs: &[(&str, &str)]) -> Record {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_like_the_seed_join() {
        let t = Template::parse("sentence1: {sentence1} sentence2: {sentence2}").unwrap();
        assert_eq!(t.fields().collect::<Vec<_>>(), ["sentence1", "sentence2"]);
        let r = record(&[("sentence1", "A b."), ("sentence2", "C d."), ("label", "1")]);
        assert_eq!(t.render(&r).unwrap(), "sentence1: A b. sentence2: C d.");
        // An empty value gives the double space of " ".join(["sentence1:", "", ...]).
        let r = record(&[("sentence1", ""), ("sentence2", "x")]);
        assert_eq!(t.render(&r).unwrap(), "sentence1:  sentence2: x");
    }

    #[test]
    fn braces_escape_and_names_with_dashes() {
        let t = Template::parse("{{literal}} {label-coarse}}}").unwrap();
        let r = record(&[("label-coarse", "5")]);
        assert_eq!(t.render(&r).unwrap(), "{literal} 5}");
    }

    #[test]
    fn parse_errors_say_what_and_where() {
        let err = |s: &str| Template::parse(s).unwrap_err().to_string();
        assert!(err("premise: {premise").contains("`{` at byte 9 is never closed"));
        assert!(err("a {} b").contains("empty placeholder `{}` at byte 2"));
        assert!(err("a } b").contains("`}` at byte 2 closes nothing"));
        assert!(err("{two words}").contains("contains ' '"));
    }

    #[test]
    fn missing_field_lists_what_the_record_has() {
        let t = Template::parse("q: {question}").unwrap();
        let err = t
            .render(&record(&[("passage", "p"), ("label", "0")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "record has no field `question` (it has: label, passage)"
        );
    }
}
