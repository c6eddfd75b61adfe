//! Every problem of a configuration at once, for `check` (and, for a config that does not
//! load, the first of them for the other commands, so that both word it the same way).
//!
//! figment and serde stop at the first error. To see past it, each file is parsed on its own
//! (a syntax error in one hides nothing in the others), and the merged settings are read
//! again and again: each time the key that failed is noted and taken out, until what is left
//! reads. Serde loses the key path inside a sink's table (sinks are internally tagged enums),
//! so an error there is pinned on the key whose removal makes it go away. A key taken out
//! falls back to its default, so a sink is built (its addresses and URLs checked) only when
//! nothing but unknown keys had to be taken out of it: a default in place of a bad value
//! would only add a problem that is not there.

use std::collections::BTreeSet;
use std::path::PathBuf;

use figment::error::Kind;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;

use super::{describe, explain, layout, merge, place_from, validate_all, Config, Sources};

/// At most this many settings problems are looked for: each costs a read of the whole config.
const MOST: usize = 100;

/// The configuration as far as it reads, and every problem found on the way.
pub struct Checked {
    /// One line per problem: the file or environment variable, the key and what is wrong.
    pub problems: Vec<String>,
    /// What could be read: every key that did not read left at its default, every sink or
    /// route that could not be read at all left out.
    pub config: Config,
    /// Sinks read exactly as written (at most unknown keys taken out): worth building.
    sound: BTreeSet<String>,
    /// The config files that were read, in order.
    files: Vec<PathBuf>,
    figment: Figment,
    /// The merged settings as given, with each value's origin.
    root: Value,
}

/// A problem found while reading the settings: the path of the key, and what is wrong.
struct Found {
    path: Vec<String>,
    what: String,
}

/// Reads the configuration as far as it goes and returns every problem (files that cannot be
/// read or parsed, keys that do not read, and what [`validate_all`] finds in the rest).
pub fn check(sources: &Sources) -> Checked {
    let (mut files, mut problems) = sources.readable_files();
    // A file that exists but does not read still means "not the embedded default".
    let embedded = files.is_empty() && problems.is_empty();
    files.retain(|f| {
        let one = Figment::from(Toml::file_exact(f));
        match one.find_value("") {
            Ok(_) => true,
            Err(e) => {
                problems.push(describe(&e, &one));
                false
            }
        }
    });
    let figment = merge(embedded, &files);
    let root = match figment.find_value("") {
        Ok(root) => root,
        Err(e) => {
            problems.push(describe(&e, &figment));
            Value::from(Dict::new())
        }
    };
    let mut checked =
        Checked { problems: Vec::new(), config: empty_config(), sound: BTreeSet::new(), files, figment, root };
    // A file that did not parse may be the one that defines a sink the environment overrides.
    let all_parsed = problems.is_empty();
    let (config, found, unsound) = read(&checked.figment, &checked.root, all_parsed);
    problems.extend(found.iter().map(|f| checked.line(f)));
    let defined = checked.sink_names();
    let defined: Vec<&str> = defined.iter().map(String::as_str).collect();
    problems.extend(validate_all(&config, &checked.figment, &defined));
    checked.sound = config.sinks.keys().filter(|n| !unsound.contains(*n)).cloned().collect();
    checked.config = config;
    checked.problems = problems;
    checked
}

impl Checked {
    /// Whether the sink `name` was read exactly as written, so that building it tells about
    /// its own values rather than about defaults put in place of bad ones.
    pub fn is_sound(&self, name: &str) -> bool {
        self.sound.contains(name)
    }

    /// Where the value at `path` came from: its file, the environment variables that set it,
    /// or (for a key nobody set) `None`.
    pub fn origin(&self, path: &[&str]) -> Option<String> {
        let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        lookup(&self.root, &path).map(|v| self.place(v, &path.join(".")))
    }

    /// Where `value` (at `key`) came from. A table may come from several places, and figment
    /// tags it with the last: the first config file that has any of its keys names it best
    /// (where `[sinks.ops]` is written, not the variable that overrides one of its keys).
    fn place(&self, value: &Value, key: &str) -> String {
        if let Value::Dict(..) = value {
            let mut tags = Vec::new();
            collect_tags(value, &mut tags);
            let first_file = tags
                .iter()
                .filter_map(|t| self.figment.get_metadata(*t)?.source.as_ref()?.file_path())
                .min_by_key(|p| self.files.iter().position(|f| f == p).unwrap_or(usize::MAX));
            if let Some(file) = first_file {
                return file.display().to_string();
            }
        }
        place_from(self.figment.get_metadata(value.tag()), key)
    }

    /// One line for the sink `name` that does not build: the file (or variable) of the first
    /// of its keys the error names in backquotes, else of the sink's table, then the error
    /// (which names the sink and the key).
    pub fn sink_problem(&self, name: &str, error: &str) -> String {
        let named = error.split('`').skip(1).step_by(2).find(|k| self.origin(&["sinks", name, k]).is_some());
        let place = match named {
            Some(key) => self.origin(&["sinks", name, key]),
            None => self.origin(&["sinks", name]),
        };
        format!("{}: {error}", place.unwrap_or_else(|| "config".to_owned()))
    }

    /// The names under `[sinks]` as given, whether or not their settings read.
    fn sink_names(&self) -> Vec<String> {
        match lookup(&self.root, &["sinks".to_owned()]) {
            Some(Value::Dict(_, sinks)) => sinks.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The line for a problem: where, which key (a list's element named by its list), what.
    fn line(&self, found: &Found) -> String {
        // The deepest part of the path that exists says where the value came from.
        let mut known = found.path.len();
        while known > 0 && lookup(&self.root, &found.path[..known]).is_none() {
            known -= 1;
        }
        let place = match lookup(&self.root, &found.path[..known]) {
            Some(v) => self.place(v, &found.path[..known].join(".")),
            None => "config".to_owned(),
        };
        let mut shown = found.path.len();
        while shown > 0 && matches!(lookup(&self.root, &found.path[..shown - 1]), Some(Value::Array(..))) {
            shown -= 1;
        }
        let key = found.path[..shown].join(".");
        if key.is_empty() {
            format!("{place}: {}", found.what)
        } else {
            format!("{place}: key `{key}`: {}", found.what)
        }
    }
}

/// A config with every default: what is left when nothing reads.
fn empty_config() -> Config {
    Value::from(Dict::new()).deserialize().expect("every top-level key has a default")
}

/// Reads `root` as a [`Config`], taking out each key that fails; returns what was read, the
/// problems, and the sinks that lost more than unknown keys on the way.
fn read(figment: &Figment, root: &Value, all_parsed: bool) -> (Config, Vec<Found>, BTreeSet<String>) {
    let mut value = root.clone();
    let mut found = Vec::new();
    let mut unsound = BTreeSet::new();
    // Every key taken out, so that a required one is not then reported missing as well (a
    // route whose `sinks` did not read).
    let mut taken: Vec<Vec<String>> = Vec::new();
    for _ in 0..MOST {
        let err = match value.deserialize::<Config>() {
            Ok(config) => return (config, found, unsound),
            Err(e) => e,
        };
        let (mut path, what) = explain(&err);
        let mut what = Some(what);
        match &err.kind {
            Kind::MissingField(field) => {
                let mut missing = err.path.clone();
                missing.push(field.to_string());
                if taken.contains(&missing) {
                    what = None;
                } else if let Some(undefined) = env_only_sink(figment, root, &err.path, field, all_parsed) {
                    (path, what) = (undefined.path, Some(undefined.what));
                }
            }
            // Below a sink's table (its templates), serde's path stops at the table.
            Kind::UnknownField(..) if lookup(&value, &path).is_none() => {
                path = err.path.clone();
                path.extend(blame(&value, &err));
            }
            Kind::UnknownField(..) => {}
            _ if path == err.path => path.extend(blame(&value, &err)),
            _ => {}
        }
        if let Some(what) = what {
            found.push(Found { path: path.clone(), what });
        }
        // Read past it: the table missing a field goes, else the key (a list with a bad element
        // goes whole).
        let out = if matches!(err.kind, Kind::MissingField(_)) { err.path.clone() } else { path };
        if let [first, name, ..] = out.as_slice() {
            if first == "sinks" && !matches!(err.kind, Kind::UnknownField(..)) {
                unsound.insert(name.clone());
            }
        }
        if !remove(&mut value, &out) {
            break;
        }
        taken.push(out);
    }
    // Past MOST problems, or one that could not be taken out: what is left of the settings,
    // if it reads now, else nothing.
    (value.deserialize().unwrap_or_else(|_| empty_config()), found, unsound)
}

/// The keys below `err`'s path (a table) that the error is about: serde reads a sink's table
/// as a whole (its `type` picks the struct), so its errors carry the table's path only. The
/// key is the one whose removal makes the error go away; a value named by an unknown-variant
/// error is found by its text (removing `type` would only make the error a missing `type`).
fn blame(value: &Value, err: &figment::Error) -> Vec<String> {
    let mut path = err.path.clone();
    let mut suffix = Vec::new();
    while let Some(Value::Dict(_, table)) = lookup(value, &path) {
        let by_text = match &err.kind {
            Kind::UnknownVariant(found, _) => {
                let holding: Vec<&String> =
                    table.iter().filter(|(_, v)| v.as_str() == Some(found.as_str())).map(|(k, _)| k).collect();
                (holding.len() == 1).then(|| holding[0].clone())
            }
            _ => None,
        };
        let culprit = by_text.or_else(|| {
            table
                .keys()
                .find(|key| {
                    let mut without = value.clone();
                    let mut at = path.clone();
                    at.push((*key).clone());
                    remove(&mut without, &at);
                    match without.deserialize::<Config>() {
                        Ok(_) => true,
                        Err(e) if matches!(e.kind, Kind::MissingField(_)) => false,
                        Err(e) => !(e.path == err.path && e.kind == err.kind),
                    }
                })
                .cloned()
        });
        match culprit {
            Some(key) => {
                path.push(key.clone());
                suffix.push(key);
            }
            None => break,
        }
    }
    suffix
}

/// For a sink table without its `type` that no config file defines (only environment
/// variables set keys below it), the problem as it is: an override of a sink that is not
/// there, and the defined sink it may have meant.
fn env_only_sink(figment: &Figment, root: &Value, table: &[String], field: &str, all_parsed: bool) -> Option<Found> {
    let [sinks, name] = table else { return None };
    if sinks != "sinks" || field != "type" {
        return None;
    }
    let sink = lookup(root, table)?;
    let mut tags = Vec::new();
    collect_tags(sink, &mut tags);
    let from_a_file = tags
        .iter()
        .any(|t| figment.get_metadata(*t).is_some_and(|md| !(md.source.is_none() && md.name.contains("environment"))));
    if from_a_file {
        return None;
    }
    let mut path = table.to_vec();
    if let Value::Dict(_, keys) = sink {
        if let [(only, _)] = keys.iter().collect::<Vec<_>>().as_slice() {
            path.push((*only).clone());
        }
    }
    let others: Vec<String> = match lookup(root, &["sinks".to_owned()]) {
        Some(Value::Dict(_, all)) => all.keys().filter(|n| *n != name).cloned().collect(),
        _ => Vec::new(),
    };
    let known = if others.is_empty() { "none".to_owned() } else { others.join(", ") };
    let near = crate::suggest::closest(name, others.iter().map(String::as_str));
    let near = near.map(|n| format!("; did you mean `{n}`?")).unwrap_or_default();
    let type_var = format!("{}SINKS__{}__TYPE", layout::ENV_PREFIX, name.to_ascii_uppercase());
    let files = if all_parsed { "no config file" } else { "no config file that loads" };
    Some(Found {
        path,
        what: format!(
            "{files} defines a sink `{name}` for it to override{near} (defined sinks: {known}); a sink from the environment alone needs its type too ({type_var})"
        ),
    })
}

/// The tags of a value and of everything below it.
fn collect_tags(value: &Value, tags: &mut Vec<figment::value::Tag>) {
    tags.push(value.tag());
    match value {
        Value::Dict(_, d) => d.values().for_each(|v| collect_tags(v, tags)),
        Value::Array(_, a) => a.iter().for_each(|v| collect_tags(v, tags)),
        _ => {}
    }
}

/// The value at `path` (table keys and list indexes, not joined: a jail pattern may hold a
/// dot).
fn lookup<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, seg| match v {
        Value::Dict(_, d) => d.get(seg),
        Value::Array(_, a) => a.get(seg.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Takes the value at `path` out of `value`; an element of a list takes the whole list.
/// `false` when there is nothing there to take.
fn remove(value: &mut Value, path: &[String]) -> bool {
    let cut =
        (1..path.len()).find(|&i| matches!(lookup(value, &path[..i]), Some(Value::Array(..)))).unwrap_or(path.len());
    let Some((last, parent)) = path[..cut].split_last() else { return false };
    let mut at = value;
    for seg in parent {
        at = match at {
            Value::Dict(_, d) => match d.get_mut(seg) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match at {
        Value::Dict(_, d) => d.remove(last).is_some(),
        _ => false,
    }
}
