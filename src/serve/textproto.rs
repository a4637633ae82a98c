//! The protobuf text format, as far as TF Serving's model config files use it: `name: value`
//! scalars (quoted strings, numbers, identifiers), `name { … }` (or `name: { … }`) messages,
//! `#` comments. Kept as a tree of fields; the config reader picks what it knows.

#[derive(Clone, Debug)]
pub enum Field {
    Scalar(String, String),
    Message(String, Vec<Field>),
}

/// The most nested messages a config may hold: deeper input is refused, not recursed into.
const MAX_DEPTH: usize = 32;

pub fn parse(text: &str) -> Result<Vec<Field>, String> {
    let tokens = tokens(text)?;
    let mut pos = 0;
    let fields = fields(&tokens, &mut pos, 0)?;
    if pos != tokens.len() {
        return Err(format!("unexpected '{}'", tokens[pos]));
    }
    Ok(fields)
}

fn fields(t: &[String], pos: &mut usize, depth: usize) -> Result<Vec<Field>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("messages nested deeper than {MAX_DEPTH}"));
    }
    let mut out = Vec::new();
    while let Some(name) = t.get(*pos) {
        if name == "}" {
            break;
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("expected a field name, found '{name}'"));
        }
        *pos += 1;
        if t.get(*pos).map(String::as_str) == Some(":") {
            *pos += 1;
        }
        match t.get(*pos).map(String::as_str) {
            Some("{") => {
                *pos += 1;
                let inner = fields(t, pos, depth + 1)?;
                if t.get(*pos).map(String::as_str) != Some("}") {
                    return Err(format!("'{name} {{' is not closed"));
                }
                *pos += 1;
                out.push(Field::Message(name.clone(), inner));
            }
            Some(v) if v != "}" && v != ":" => {
                let v = v.strip_prefix('\u{0}').unwrap_or(v).to_string();
                *pos += 1;
                out.push(Field::Scalar(name.clone(), v));
            }
            _ => return Err(format!("'{name}' has no value")),
        }
        if t.get(*pos).map(String::as_str) == Some(",")
            || t.get(*pos).map(String::as_str) == Some(";")
        {
            *pos += 1;
        }
    }
    Ok(out)
}

/// Splits into names, values, and `{ } :` marks; a quoted string becomes its contents
/// (prefixed by NUL so an empty or brace-like string stays a value).
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut it = text.chars().peekable();
    while let Some(&c) = it.peek() {
        if c.is_whitespace() {
            it.next();
        } else if c == '#' {
            while it.next().is_some_and(|c| c != '\n') {}
        } else if "{}:,;".contains(c) {
            out.push(c.to_string());
            it.next();
        } else if c == '"' || c == '\'' {
            it.next();
            let mut s = String::from('\u{0}');
            loop {
                match it.next() {
                    None => return Err("unterminated string".into()),
                    Some('\\') => s.extend(it.next()),
                    Some(q) if q == c => break,
                    Some(ch) => s.push(ch),
                }
            }
            out.push(s);
        } else {
            let mut s = String::new();
            while let Some(&ch) = it.peek() {
                if ch.is_whitespace() || "{}:,;#\"'".contains(ch) {
                    break;
                }
                s.push(ch);
                it.next();
            }
            out.push(s);
        }
    }
    Ok(out)
}

pub fn messages<'a>(fields: &'a [Field], name: &str) -> Vec<&'a [Field]> {
    fields
        .iter()
        .filter_map(|f| match f {
            Field::Message(n, inner) if n == name => Some(inner.as_slice()),
            _ => None,
        })
        .collect()
}

pub fn scalars<'a>(fields: &'a [Field], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter_map(|f| match f {
            Field::Scalar(n, v) if n == name => Some(v.as_str()),
            _ => None,
        })
        .collect()
}

pub fn scalar<'a>(fields: &'a [Field], name: &str) -> Option<&'a str> {
    scalars(fields, name).into_iter().next()
}
