//! The Markdown of the reference: one part per daemon ([`markdown`]) and
//! the page around them ([`page`]).

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde_norway::Value as Yaml;

use super::{sections, DefaultValue, Result};
use crate::config::DaemonConfig;

/// One daemon's part of the reference: where it reads its file, what
/// `--minconfig` prints, and a table per section.
pub fn markdown<T: DaemonConfig + JsonSchema>(daemon: &str, default_path: &str) -> Result<String> {
    let mut out = format!(
        "## {daemon}\n\n`{daemon}` reads the file given with `--config FILE`; without the \
         flag it reads `{default_path}` if that file exists, and uses the built-in \
         defaults otherwise. `{daemon} --minconfig` prints these keys: {}.\n",
        T::minimal_keys()
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for section in sections::<T>()? {
        if section.keys.is_empty() {
            continue;
        }
        let heading = if section.path.is_empty() {
            "Top level".to_owned()
        } else {
            format!("`{}`", section.path)
        };
        // Writing to a String cannot fail.
        let _ = write!(out, "\n### {heading}\n\n");
        if !section.description.is_empty() {
            let _ = write!(out, "{}\n\n", section.description);
        }
        out.push_str("| Key | Type | Default | Origin | Description |\n");
        out.push_str("| --- | --- | --- | --- | --- |\n");
        for key in &section.keys {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                key.path,
                cell(&key.kind),
                cell(&render_default(&key.default)),
                key.origin.label(),
                cell(&key.description)
            );
        }
    }
    Ok(out)
}

/// The whole page: a title, how the daemons read their files, and the
/// daemons' parts (from [`markdown`]).
pub fn page(parts: &[String]) -> String {
    let mut out = String::from(INTRO);
    for part in parts {
        out.push('\n');
        out.push_str(part);
    }
    out
}

const INTRO: &str = "\
# Configuration reference

<!-- Generated from the config types by daemonkit::reference; do not edit.
     Regenerate: APIARY_BLESS=1 cargo test -p tests --test integration config_reference -->

Each daemon reads one YAML file in KubeEdge's format, with KubeEdge's key
names and defaults and a few keys of Apiary's own. This page is generated
from the Rust types that parse the files, so it lists every key they accept.

- **Which file.** `--config FILE`; without it the daemon's default path if
  that file exists, otherwise the built-in defaults (the daemon logs that
  it uses them).
- **Leaving keys out.** Every key may be left out, and so may whole
  sections: a missing key takes its default, and an empty file is the
  default configuration. Only the fields of list items marked **required**
  must be given.
- **Printing a configuration.** `--defaultconfig` prints the full default
  configuration (the values of the Default column) and `--minconfig` a
  short one with the keys a deployment usually sets, at their defaults;
  both exit without starting the daemon.
- **Mistakes stop the daemon.** A key the daemon does not know, a value of
  the wrong type or broken YAML stops it with exit status 64 before it
  opens any port, with a message naming the dotted key and the line and
  column (`modules.cloudHub.nodeLimit: invalid type: string \"abc\",
  expected u32 at line 3 column 16`); for an unknown key it lists the keys
  that section accepts. Values are then checked (ranges, addresses, rules
  between keys); every broken rule is reported with its key, and the daemon
  exits 64.
- **KubeEdge sections Apiary does not have** (Origin *KubeEdge, ignored*)
  are accepted with any content, have no effect, and are named in one
  warning at start-up.

Columns: **Key** is the dotted path as the YAML nests it
(`modules.cloudHub.websocket.port` is `port` inside `websocket` inside
`cloudHub` inside `modules`); `[]` stands for each item of a list.
**Default** is what `--defaultconfig` prints; *unset* means absent by
default. **Origin** says whether the key is KubeEdge's (where Apiary's
default or behaviour differs, the description says so) or Apiary's
addition.
";

pub(super) fn render_default(default: &DefaultValue) -> String {
    match default {
        DefaultValue::Unset => "*unset*".to_owned(),
        DefaultValue::Required => "**required**".to_owned(),
        DefaultValue::Value(value) => match value {
            Yaml::Null => "*unset*".to_owned(),
            Yaml::String(s) if s.is_empty() => "`\"\"`".to_owned(),
            Yaml::String(s) => code(s),
            Yaml::Bool(b) => code(&b.to_string()),
            Yaml::Number(n) => code(&n.to_string()),
            Yaml::Sequence(items) if items.is_empty() => "`[]`".to_owned(),
            Yaml::Mapping(map) if map.is_empty() => "`{}`".to_owned(),
            other => code(&serde_json::to_string(other).unwrap_or_else(|e| e.to_string())),
        },
    }
}

/// `text` as a code span, its fence one backtick longer than the longest
/// run of backticks inside it.
pub(super) fn code(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    if longest == 0 {
        format!("`{text}`")
    } else {
        let fence = "`".repeat(longest + 1);
        format!("{fence} {text} {fence}")
    }
}

/// `text` made safe for a table cell.
pub(super) fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
