//! The module layering of docs/architecture.md, checked on the source text so that a forbidden
//! import fails `cargo test` with its file and line: readers and writers do not know each
//! other (what both need lives in `formats`), `ir` and `formats` use nothing above them, passes
//! neither read, write nor evaluate, and only `src/cli` and `src/main.rs` know the CLI.
//!
//! Every `crate::…` path and every `super::…` path that climbs out of its top-level module is
//! checked, in code and in comments (an intra-doc link is a dependency too). Code after
//! `#[cfg(test)]` (the item it marks) is skipped: tests may use anything. A crate split would
//! let the compiler enforce this, but `formats`, `ir` and the readers share one crate's private
//! items and build profile; one test is the lighter fence.

use crate::common::repo;
use std::path::Path;

/// `(top-level module, modules it must not use, why)`.
const RULES: &[(&str, &[&str], &str)] = &[
    (
        "readers",
        &["writers"],
        "readers and writers do not know each other (shared knowledge goes to formats)",
    ),
    (
        "writers",
        &["readers"],
        "readers and writers do not know each other (shared knowledge goes to formats)",
    ),
    (
        "ir",
        &[
            "readers", "writers", "passes", "eval", "accuracy", "pipeline", "cli", "formats",
        ],
        "the IR uses nothing above it",
    ),
    (
        "formats",
        &[
            "readers", "writers", "passes", "eval", "accuracy", "pipeline", "cli",
        ],
        "format knowledge uses only the IR",
    ),
    (
        "passes",
        &["readers", "writers", "eval", "accuracy", "pipeline", "cli"],
        "passes transform graphs; reading, writing and evaluating belong to the pipeline",
    ),
];

/// Known offenders, each to be removed with the change that fixes it: `(file, module)`.
const ALLOWED: &[(&str, &str)] = &[];

/// What `module` (a top-level module, `""` for the crate root) must not use, with why.
fn forbidden(module: &str, file: &str, target: &str) -> Option<&'static str> {
    if target == "cli" && module != "cli" && file != "src/main.rs" {
        return Some("library code knows no CLI");
    }
    RULES
        .iter()
        .find(|(m, deny, _)| *m == module && deny.contains(&target))
        .map(|(_, _, why)| *why)
}

/// Files that are whole test modules, declared `#[cfg(test)] #[path = "x_tests.rs"] mod tests;`
/// beside the code they test: skipped like any other code under `#[cfg(test)]`.
fn test_module_files(files: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for path in files {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, l) in lines.iter().enumerate() {
            if *l != "#[cfg(test)]" {
                continue;
            }
            let next = lines.iter().skip(i + 1).take(2);
            for n in next {
                let target = n
                    .strip_prefix("#[path = \"")
                    .and_then(|r| r.strip_suffix("\"]"));
                if let (Some(t), Some(dir)) = (target, path.parent()) {
                    out.push(dir.join(t));
                }
            }
        }
    }
    out
}

/// A use of another top-level module: `(line, top-level module used, path as written)`.
type Use = (usize, String, String);

#[test]
fn no_forbidden_imports() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let test_only = test_module_files(&files);
    let mut found = Vec::new();
    let mut allowed_used = vec![false; ALLOWED.len()];
    for path in files.iter().filter(|p| !test_only.contains(*p)) {
        let rel = path
            .strip_prefix(repo())
            .expect("under the repository")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(path).expect("readable source");
        let module = module_path(&rel);
        let top = module.first().cloned().unwrap_or_default();
        for (line, target, written) in uses(&text, &module) {
            let Some(why) = forbidden(&top, &rel, &target) else {
                continue;
            };
            match ALLOWED
                .iter()
                .position(|a| *a == (rel.as_str(), target.as_str()))
            {
                Some(i) => allowed_used[i] = true,
                None => found.push(format!("{rel}:{line}: `{written}`: {why}")),
            }
        }
    }
    assert!(found.is_empty(), "forbidden imports:\n{}", found.join("\n"));
    let stale: Vec<String> = ALLOWED
        .iter()
        .zip(&allowed_used)
        .filter(|(_, used)| !**used)
        .map(|((f, m), _)| format!("{f} -> {m}"))
        .collect();
    assert!(
        stale.is_empty(),
        "allow-list entries that no longer match (remove them): {}",
        stale.join(", ")
    );
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("source folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module a file is: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `lib.rs` the root.
fn module_path(rel: &str) -> Vec<String> {
    let inner = rel.strip_prefix("src/").unwrap_or(rel);
    let inner = inner.strip_suffix(".rs").unwrap_or(inner);
    let mut parts: Vec<String> = inner.split('/').map(String::from).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Every use of another top-level module in `text`, a file that is module `module`.
fn uses(text: &str, module: &[String]) -> Vec<Use> {
    let (code, comments) = split_comments(text);
    let tokens = tokens(&code);
    let mut out = Vec::new();
    paths(&tokens, module, &mut out);
    // Comments in the code that is checked: `crate::x` only (a comment's `super::` names
    // nothing the compiler sees).
    let skipped: Vec<usize> = test_lines(&tokens);
    for (i, line) in comments.lines().enumerate() {
        let n = i + 1;
        if skipped.contains(&n) {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let name: String = line[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && module.first() != Some(&name) {
                out.push((n, name.clone(), format!("crate::{name}")));
            }
        }
    }
    out
}

/// `text` as code only and as comments only, each the same shape (other characters blanked,
/// line breaks kept); string and character literals are blanked in both.
fn split_comments(text: &str) -> (String, String) {
    let c: Vec<char> = text.chars().collect();
    let (mut code, mut comments) = (String::new(), String::new());
    fn push(ch: char, comment: bool, code: &mut String, comments: &mut String) {
        let blank = if ch == '\n' { '\n' } else { ' ' };
        code.push(if comment { blank } else { ch });
        comments.push(if comment { ch } else { blank });
    }
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                push(c[i], true, &mut code, &mut comments);
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    push('*', true, &mut code, &mut comments);
                    i += 1;
                    if depth == 0 {
                        push('/', true, &mut code, &mut comments);
                        i += 1;
                        break;
                    }
                }
                push(c[i], true, &mut code, &mut comments);
                i += 1;
            }
        } else if let Some(end) = literal_end(&c, i) {
            while i < end {
                let ch = if c[i] == '\n' { '\n' } else { ' ' };
                push(ch, false, &mut code, &mut comments);
                i += 1;
            }
        } else {
            push(c[i], false, &mut code, &mut comments);
            i += 1;
        }
    }
    (code, comments)
}

/// Where a string or character literal starting at `i` ends (exclusive), if one starts there.
fn literal_end(c: &[char], i: usize) -> Option<usize> {
    let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
    // Raw strings: r"…", r#"…"#, br"…".
    let mut j = i;
    if c[j] == 'b' && c.get(j + 1) == Some(&'r') && !ident_before {
        j += 1;
    }
    if c[j] == 'r' && (j > i || !ident_before) {
        let mut k = j + 1;
        while c.get(k) == Some(&'#') {
            k += 1;
        }
        if c.get(k) == Some(&'"') {
            let hashes = k - j - 1;
            let mut e = k + 1;
            while e < c.len() {
                if c[e] == '"' && (1..=hashes).all(|h| c.get(e + h) == Some(&'#')) {
                    return Some(e + 1 + hashes);
                }
                e += 1;
            }
            return Some(c.len());
        }
    }
    let start = if c[i] == 'b' && !ident_before && matches!(c.get(i + 1), Some('"' | '\'')) {
        i + 1
    } else {
        i
    };
    match c[start] {
        '"' => {
            let mut e = start + 1;
            while e < c.len() && c[e] != '"' {
                e += if c[e] == '\\' { 2 } else { 1 };
            }
            Some((e + 1).min(c.len()))
        }
        // A character literal ('x', '\n', '\u{..}'), not a lifetime ('a).
        '\'' if c.get(start + 1) == Some(&'\\') => {
            let mut e = start + 2;
            while e < c.len() && c[e] != '\'' {
                e += 1;
            }
            Some((e + 1).min(c.len()))
        }
        '\'' if c.get(start + 2) == Some(&'\'') => Some(start + 3),
        _ => None,
    }
}

/// A token of code: an identifier or one punctuation character (`::` is two `:`), with its line.
type Token = (usize, String);

fn tokens(code: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for (i, line) in code.lines().enumerate() {
        let mut word = String::new();
        for ch in line.chars().chain([' ']) {
            if ch.is_alphanumeric() || ch == '_' {
                word.push(ch);
                continue;
            }
            if !word.is_empty() {
                out.push((i + 1, std::mem::take(&mut word)));
            }
            if !ch.is_whitespace() {
                out.push((i + 1, ch.to_string()));
            }
        }
    }
    out
}

/// Whether tokens `i..` are `#[cfg(test)]`.
fn is_cfg_test(t: &[Token], i: usize) -> bool {
    let want = ["#", "[", "cfg", "(", "test", ")", "]"];
    t.len() >= i + want.len() && want.iter().enumerate().all(|(k, w)| t[i + k].1 == *w)
}

/// The end (exclusive) of the item starting at token `i`: its first `;` outside brackets, or
/// the `}` closing its first `{`.
fn item_end(t: &[Token], i: usize) -> usize {
    let mut depth = 0i32;
    let mut j = i;
    while j < t.len() {
        match t[j].1.as_str() {
            "{" | "(" | "[" => depth += 1,
            "}" | ")" | "]" => {
                depth -= 1;
                if depth == 0 && t[j].1 == "}" {
                    return j + 1;
                }
            }
            ";" if depth == 0 => return j + 1,
            _ => {}
        }
        j += 1;
    }
    t.len()
}

/// The lines of items marked `#[cfg(test)]`.
fn test_lines(t: &[Token]) -> Vec<usize> {
    let mut lines = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if is_cfg_test(t, i) {
            let end = item_end(t, i + 7);
            lines.extend(t[i].0..=t[end.saturating_sub(1).max(i)].0);
            i = end;
        } else {
            i += 1;
        }
    }
    lines
}

/// The `crate::` and escaping `super::` paths in the code, items marked `#[cfg(test)]` skipped.
/// `module` is the file's module; inline `mod x { … }` blocks extend it.
fn paths(t: &[Token], module: &[String], out: &mut Vec<Use>) {
    let mut here: Vec<String> = module.to_vec();
    // Inline modules open now: the brace depth each closes at.
    let mut open: Vec<i32> = Vec::new();
    let mut depth = 0i32;
    let mut i = 0;
    while i < t.len() {
        if is_cfg_test(t, i) {
            i = item_end(t, i + 7);
            continue;
        }
        let w = t[i].1.as_str();
        match w {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if open.last() == Some(&depth) {
                    open.pop();
                    here.pop();
                }
            }
            "mod" if t.get(i + 2).is_some_and(|x| x.1 == "{") => {
                here.push(t[i + 1].1.clone());
                open.push(depth);
                depth += 1;
                i += 3;
                continue;
            }
            "crate" | "super" | "self" if sep(t, i + 1) => {
                let prev_sep = i >= 2 && sep(t, i - 2);
                if !prev_sep {
                    i = path(t, i, &here, out);
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Whether tokens `i, i + 1` are `::`.
fn sep(t: &[Token], i: usize) -> bool {
    t.get(i).is_some_and(|x| x.1 == ":") && t.get(i + 1).is_some_and(|x| x.1 == ":")
}

/// Reads the path starting at token `i` (`crate`, `super` or `self`), records what it uses
/// outside `here`'s top-level module, and returns the token after it.
fn path(t: &[Token], mut i: usize, here: &[String], out: &mut Vec<Use>) -> usize {
    let line = t[i].0;
    let mut at: Vec<String> = match t[i].1.as_str() {
        "crate" => vec![],
        "super" => here[..here.len().saturating_sub(1)].to_vec(),
        _ => here.to_vec(),
    };
    let mut written = t[i].1.clone();
    i += 1;
    while sep(t, i) && t.get(i + 2).is_some_and(|x| x.1 == "super") {
        at.pop();
        written.push_str("::super");
        i += 3;
    }
    let from = here.first().cloned().unwrap_or_default();
    let mut record = |first: &str, written: String| {
        let top = at.first().map_or(first, String::as_str);
        if top != from && !top.is_empty() && top != "self" && top != "*" {
            out.push((line, top.to_string(), written));
        }
    };
    if !sep(t, i) {
        return i;
    }
    match t.get(i + 2).map(|x| x.1.as_str()) {
        Some("{") => {
            // A group: each item's first segment.
            let end = item_end(t, i + 2);
            let mut k = i + 3;
            let mut level = 0;
            let mut first = true;
            while k < end {
                match t[k].1.as_str() {
                    "{" => level += 1,
                    "}" => level -= 1,
                    "," if level == 0 => first = true,
                    word if first && level == 0 => {
                        first = false;
                        let name = if word == "self" { "" } else { word };
                        record(name, format!("{written}::{{{word}…}}"));
                    }
                    _ => {}
                }
                k += 1;
            }
            end
        }
        Some(word) => {
            record(word, format!("{written}::{word}"));
            i + 3
        }
        None => i,
    }
}

#[test]
fn layering_check_finds_what_it_must() {
    // The forbidden uses found in `text` as file `file`, as `line:module`.
    let found = |text: &str, file: &str| -> Vec<String> {
        let module = module_path(file);
        let top = module.first().cloned().unwrap_or_default();
        uses(text, &module)
            .into_iter()
            .filter(|(_, t, _)| forbidden(&top, file, t).is_some())
            .map(|(l, t, _)| format!("{l}:{t}"))
            .collect()
    };
    assert_eq!(
        found(
            "use crate::readers::x;\nuse crate::ir::Graph;",
            "src/writers/a.rs"
        ),
        ["1:readers"]
    );
    assert_eq!(
        found(
            "use crate::{ir::{A, B}, readers::onnx};",
            "src/writers/a.rs"
        ),
        ["1:readers"]
    );
    // super chains: inside writers (fine) and climbing to the root (caught).
    assert!(found("use super::super::emit::X;", "src/writers/onnx/nodes/nn.rs").is_empty());
    assert_eq!(
        found(
            "use super::super::super::readers::X;",
            "src/writers/onnx/a.rs"
        ),
        ["1:readers"]
    );
    assert_eq!(
        found("use super::{self, readers, ir};", "src/writers/mod.rs"),
        ["1:readers"]
    );
    // An inline module's `super` is the file's module: this stays inside writers.
    assert!(found(
        "mod inner { use super::super::readers; }",
        "src/writers/a.rs"
    )
    .is_empty());
    // Strings are no paths; comments are checked; items marked for tests are skipped.
    assert!(found(
        "let s = \"crate::readers\"; let c = '{';",
        "src/writers/a.rs"
    )
    .is_empty());
    assert_eq!(
        found(
            "/// see [`crate::readers::x`]\nfn f() {}",
            "src/writers/a.rs"
        ),
        ["1:readers"]
    );
    let with_tests = "fn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::readers;\n}\n\
                      fn g() { crate::eval::run(); }";
    assert_eq!(found(with_tests, "src/passes/a.rs"), ["6:eval"]);
    assert_eq!(found("use crate::cli::Args;", "src/eval/mod.rs"), ["1:cli"]);
    assert!(found("use crate::cli::Args;", "src/cli/convert.rs").is_empty());
    assert!(found("fn f() { crate::formats::onnx::x(); }", "src/ir/a.rs") == ["1:formats"]);
}
