//! The configuration reference: every key and what it means, read from the config types' own
//! `///` docs (they derive `schemars::JsonSchema`, which keeps them) so that the docs cannot
//! drift from the code. README.md's key tables (between `<!-- keys:ID -->` and
//! `<!-- /keys -->`) and the man page f2b-notify.toml(5) are both written from here by
//! `f2b-notify generate`, and a test holds README.md to it.
//!
//! A key's doc comment is its text: the first paragraph is the README's one-line meaning, the
//! paragraphs after it are for the man page only. The top-level table is the router's own
//! (`Config`, `RouteConfig`, `DeliveryConfig`); each sink type's table comes from its crate's
//! `Config`, through its one line in the sink registry.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::{Config, DeliveryConfig, RouteConfig};

/// One key of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The key as written in a file, with its place (`delivery.spool`, `[sinks.NAME]`).
    pub key: String,
    /// Its doc comment's paragraphs, each on one line.
    pub doc: Vec<String>,
    /// The keys of a table it holds (`templates.ban`, …), alphabetical.
    pub sub: Vec<Row>,
}

impl Row {
    /// The first paragraph: the README's "meaning".
    pub fn meaning(&self) -> &str {
        self.doc.first().map_or("", String::as_str)
    }
}

/// One table: the top-level keys (`config`) or one sink type's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `config`, or the sink type (`slack-webhook`): the README's marker names it.
    pub id: String,
    /// The type's own doc comment, as paragraphs.
    pub intro: Vec<String>,
    /// Its keys, in the order the struct declares them.
    pub rows: Vec<Row>,
}

impl Section {
    /// A sink type's table: one row per key of its `Config`, which must derive `JsonSchema`
    /// (and `Deserialize`, as every config does).
    pub fn of<T: JsonSchema + DeserializeOwned>(id: &str) -> Section {
        let schema = Schema::of::<T>();
        Section { id: id.to_owned(), intro: paragraphs(schema.root()), rows: schema.rows::<T>("") }
    }
}

/// Every table: the top-level keys, then each sink type this build includes, in the
/// registry's order.
pub fn sections() -> Vec<Section> {
    let mut all = vec![top_level()];
    all.extend(crate::registry::reference_sections().into_iter().filter_map(|(_, s)| s));
    all
}

/// The top-level table: `host`, `[sinks.NAME]`, `[jails.PATTERN]` and the route's keys,
/// `[delivery]` and its keys.
fn top_level() -> Section {
    let schema = Schema::of::<Config>();
    let mut rows = Vec::new();
    for name in field_order::<Config>() {
        let doc = paragraphs(schema.property(name));
        match name {
            "sinks" => rows.push(Row { key: "[sinks.NAME]".into(), doc, sub: Vec::new() }),
            "jails" => {
                rows.push(Row { key: "[jails.PATTERN]".into(), doc, sub: Vec::new() });
                rows.extend(Schema::of::<RouteConfig>().rows::<RouteConfig>("jails.*."));
            }
            "delivery" => {
                rows.push(Row { key: "[delivery]".into(), doc, sub: Vec::new() });
                rows.extend(Schema::of::<DeliveryConfig>().rows::<DeliveryConfig>("delivery."));
            }
            "enrich" => {
                rows.push(Row { key: "[enrich]".into(), doc, sub: Vec::new() });
                rows.extend(Schema::of::<f2b_notify_enrich::Config>().rows::<f2b_notify_enrich::Config>("enrich."));
            }
            _ => rows.extend(schema.rows_named(&[name], "")),
        }
    }
    Section { id: "config".into(), intro: paragraphs(schema.root()), rows }
}

/// A type's JSON Schema, as schemars writes it (docs as `description`).
struct Schema(Value);

impl Schema {
    fn of<T: JsonSchema>() -> Self {
        Self(schemars::SchemaGenerator::default().into_root_schema_for::<T>().to_value())
    }

    fn root(&self) -> &Value {
        &self.0
    }

    /// The schema of the root's property `name` (panics when there is none: the field list
    /// comes from the same type).
    fn property(&self, name: &str) -> &Value {
        self.0
            .get("properties")
            .and_then(|p| p.get(name))
            .unwrap_or_else(|| panic!("the schema has no property `{name}`"))
    }

    /// What a property refers to, through `$ref` and an `Option`'s `anyOf`/`oneOf`.
    fn target<'a>(&'a self, mut value: &'a Value) -> &'a Value {
        for _ in 0..8 {
            if let Some(name) = value.get("$ref").and_then(Value::as_str) {
                let name = name.rsplit('/').next().unwrap_or(name);
                match self.0.get("$defs").and_then(|d| d.get(name)) {
                    Some(def) => value = def,
                    None => return value,
                }
            } else if let Some(alt) = ["anyOf", "oneOf"]
                .iter()
                .filter_map(|k| value.get(*k).and_then(Value::as_array))
                .flatten()
                .find(|v| v.get("$ref").is_some())
            {
                value = alt;
            } else {
                return value;
            }
        }
        value
    }

    /// One row per field of `T` (whose schema this is), keys prefixed with `prefix`.
    fn rows<T: DeserializeOwned>(&self, prefix: &str) -> Vec<Row> {
        let order = field_order::<T>();
        let properties = self.0.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let unlisted: Vec<&String> = properties.keys().filter(|k| !order.contains(&k.as_str())).collect();
        assert!(unlisted.is_empty(), "properties {unlisted:?} are not fields of {}", std::any::type_name::<T>());
        self.rows_named(&order, prefix)
    }

    fn rows_named(&self, names: &[&str], prefix: &str) -> Vec<Row> {
        names
            .iter()
            .map(|name| {
                let property = self.property(name);
                let target = self.target(property);
                let mut doc = paragraphs(property);
                if doc.is_empty() {
                    doc = paragraphs(target);
                }
                match target.get("properties").and_then(Value::as_object) {
                    // A table of its own (`templates`): `KEY.*`, its keys listed below it.
                    Some(inner) => Row {
                        key: format!("{prefix}{name}.*"),
                        doc,
                        sub: self.sub_rows(inner, &format!("{prefix}{name}.")),
                    },
                    None => Row { key: format!("{prefix}{name}"), doc, sub: Vec::new() },
                }
            })
            .collect()
    }

    fn sub_rows(&self, properties: &Map<String, Value>, prefix: &str) -> Vec<Row> {
        properties
            .iter()
            .map(|(name, v)| {
                let mut doc = paragraphs(v);
                if doc.is_empty() {
                    doc = paragraphs(self.target(v));
                }
                Row { key: format!("{prefix}{name}"), doc, sub: Vec::new() }
            })
            .collect()
    }
}

/// A schema's `description` as paragraphs, each on one line.
fn paragraphs(schema: &Value) -> Vec<String> {
    let text = schema.get("description").and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            if !current.is_empty() {
                out.push(current.join(" "));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

/// The fields of the struct `T` in the order it declares them, as serde's derive lists them
/// (the schema's properties are sorted by name).
pub fn field_order<T: DeserializeOwned>() -> Vec<&'static str> {
    match T::deserialize(FieldCatcher) {
        Err(Fields(Some(fields))) => fields.to_vec(),
        _ => panic!("{} is not a struct that serde derives", std::any::type_name::<T>()),
    }
}

/// A deserializer that only asks a struct for its field names.
struct FieldCatcher;

/// What [`FieldCatcher`] found: the names, or nothing (not a struct).
#[derive(Debug)]
struct Fields(Option<&'static [&'static str]>);

impl std::fmt::Display for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a struct")
    }
}

impl std::error::Error for Fields {}

impl serde::de::Error for Fields {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Fields(None)
    }
}

impl<'de> serde::Deserializer<'de> for FieldCatcher {
    type Error = Fields;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
        Err(Fields(None))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Fields> {
        Err(Fields(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The README's marker before a section's table.
pub fn marker(id: &str) -> String {
    format!("<!-- keys:{id} -->")
}

/// The README's marker after a table.
pub const END_MARKER: &str = "<!-- /keys -->";

/// A section as the README shows it: a `| key | meaning |` table with the first paragraph of
/// each key's doc.
pub fn markdown_table(section: &Section) -> String {
    let mut out = String::from("| key | meaning |\n| --- | --- |\n");
    for row in &section.rows {
        let cell = row.meaning().replace('|', "\\|");
        out.push_str(&format!("| `{}` | {cell} |\n", row.key));
    }
    out
}

/// Every section's table between its markers, as `generate config-md` prints them.
pub fn markdown() -> String {
    sections()
        .iter()
        .map(|s| format!("{}\n{}{END_MARKER}\n", marker(&s.id), markdown_table(s)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` (README.md) with the table between each section's markers replaced by the
/// generated one. Errors name a section whose markers are missing or out of order, and a
/// marker naming no section and no sink type (a build without a sink type leaves its table
/// as it is).
pub fn update_readme(text: &str, sections: &[Section]) -> Result<String, String> {
    // A marker is a line of its own (the README also quotes them in its prose).
    let mut out = text.to_owned();
    for section in sections {
        let start = marker(&section.id);
        let Some(begin) = find_line(&out, &start, 0) else {
            return Err(format!("README has no `{start}` … `{END_MARKER}` for the keys of `{}`", section.id));
        };
        let body = begin + start.len();
        let Some(end) = find_line(&out, END_MARKER, body) else {
            return Err(format!("README's `{start}` has no `{END_MARKER}` after it"));
        };
        out.replace_range(body..end, &format!("\n{}", markdown_table(section)));
    }
    for line in out.lines() {
        let Some(id) = line.strip_prefix("<!-- keys:").and_then(|l| l.strip_suffix(" -->")) else { continue };
        if !sections.iter().any(|s| s.id == id) && !crate::registry::TYPES.iter().any(|(ty, _)| *ty == id) {
            return Err(format!("README's `<!-- keys:{id} -->` names no section of this build's configuration"));
        }
    }
    Ok(out)
}

/// Where the line `line` starts in `text`, at or after `from`.
fn find_line(text: &str, line: &str, from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(found) = text[at..].find(line) {
        let pos = at + found;
        let starts = pos == 0 || text.as_bytes()[pos - 1] == b'\n';
        let ends = text[pos + line.len()..].starts_with('\n') || pos + line.len() == text.len();
        if starts && ends {
            return Some(pos);
        }
        at = pos + line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README.md's key tables are the generated ones: edit the `///` docs, then run
    /// `cargo run -- generate readme README.md`.
    #[test]
    fn readme_tables_are_generated_from_the_config_docs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        // A build without some sink types checks the tables it has.
        let updated = update_readme(&readme, &sections()).unwrap_or_else(|e| panic!("{e}"));
        if updated != readme {
            let diff: Vec<String> = updated
                .lines()
                .zip(readme.lines())
                .filter(|(a, b)| a != b)
                .take(5)
                .map(|(want, have)| format!("README:    {have}\ngenerated: {want}"))
                .collect();
            panic!(
                "README.md's key tables differ from the config docs; run `cargo run -- generate readme README.md`:\n{}",
                diff.join("\n")
            );
        }
    }

    /// Every key has a doc comment, and every built sink type has its table.
    #[test]
    fn every_key_is_documented() {
        let sections = sections();
        for (ty, built) in crate::registry::TYPES {
            assert_eq!(sections.iter().any(|s| s.id == *ty), *built, "{ty}");
        }
        for section in &sections {
            assert!(!section.intro.is_empty(), "{} has no doc comment", section.id);
            for row in section.rows.iter().chain(section.rows.iter().flat_map(|r| &r.sub)) {
                assert!(!row.meaning().is_empty(), "{}: `{}` has no doc comment", section.id, row.key);
            }
        }
    }

    #[test]
    fn fields_come_in_declaration_order() {
        assert_eq!(field_order::<Config>(), ["host", "sinks", "jails", "delivery", "enrich"]);
        let rows = top_level().rows;
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(&keys[..4], ["host", "[sinks.NAME]", "[jails.PATTERN]", "jails.*.sinks"]);
        assert!(keys.contains(&"delivery.alert_after"), "{keys:?}");
    }

    #[test]
    fn update_readme_replaces_only_between_markers() {
        let section = Section {
            id: "x".into(),
            intro: vec!["X.".into()],
            rows: vec![Row { key: "a".into(), doc: vec!["one | two".into(), "more".into()], sub: vec![] }],
        };
        let text = "before `<!-- keys:x -->`\n<!-- keys:x -->\nold\n<!-- /keys -->\nafter\n";
        let out = update_readme(text, std::slice::from_ref(&section)).unwrap();
        assert_eq!(
            out,
            "before `<!-- keys:x -->`\n<!-- keys:x -->\n| key | meaning |\n| --- | --- |\n| `a` | one \\| two |\n<!-- /keys -->\nafter\n"
        );
        assert!(update_readme("nothing", std::slice::from_ref(&section)).unwrap_err().contains("keys:x"));
        assert!(update_readme(&format!("{text}<!-- keys:y -->\n"), &[section]).unwrap_err().contains("keys:y"));
    }
}
