//! `java.util.Properties` syntax, as Flume reads its files, with the line of every key.
//!
//! Comments start with `#` or `!`; a key ends at the first unescaped `=`, `:` or
//! blank; a line ending in an odd number of backslashes continues on the next line
//! (whose leading blanks are dropped); `\t \n \r \f \uXXXX` and `\X` escapes work.
//! Keys and values are trimmed, as Flume trims them.

/// One `key = value` pair and the line its logical line starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A problem the parser found (a bad `\u` escape); the entry is still kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIssue {
    pub line: usize,
    pub message: String,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Parses a whole file. Never panics, whatever the input.
pub fn parse(text: &str) -> (Vec<Entry>, Vec<ParseIssue>) {
    let mut entries = Vec::new();
    let mut issues = Vec::new();
    let lines: Vec<&str> = text.split('\n').collect();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let first = lines[i].strip_suffix('\r').unwrap_or(lines[i]);
        i += 1;
        let trimmed = first.trim_start_matches(is_blank);
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        let mut logical = String::from(trimmed);
        while ends_with_odd_backslashes(&logical) && i < lines.len() {
            logical.pop();
            let next = lines[i].strip_suffix('\r').unwrap_or(lines[i]);
            i += 1;
            logical.push_str(next.trim_start_matches(is_blank));
        }
        if ends_with_odd_backslashes(&logical) {
            // A continuation at end of file: Java drops the lone backslash.
            logical.pop();
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key, start, &mut issues);
        let value = unescape(value, start, &mut issues);
        entries.push(Entry {
            key: key.trim().to_string(),
            value: value.trim().to_string(),
            line: start,
        });
    }
    (entries, issues)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped separator; returns raw (still escaped) halves.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (idx, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => return (&line[..idx], &line[idx + 1..]),
            c if is_blank(c) => {
                let key = &line[..idx];
                let rest = line[idx..].trim_start_matches(is_blank);
                let rest = rest
                    .strip_prefix('=')
                    .or_else(|| rest.strip_prefix(':'))
                    .unwrap_or(rest);
                return (key, rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(s: &str, line: usize, issues: &mut Vec<ParseIssue>) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.clone().take(4).collect();
                match (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                {
                    Some(ch) => {
                        out.push(ch);
                        for _ in 0..4 {
                            chars.next();
                        }
                    }
                    None => issues.push(ParseIssue {
                        line,
                        message: format!(
                            "malformed \\u escape `\\u{hex}`; write \\u followed by four hex digits"
                        ),
                    }),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String, usize)> {
        parse(text)
            .0
            .into_iter()
            .map(|e| (e.key, e.value, e.line))
            .collect()
    }

    fn e(k: &str, v: &str, l: usize) -> (String, String, usize) {
        (k.into(), v.into(), l)
    }

    #[test]
    fn separators_and_comments() {
        let t = "# comment\n! also\n\na = 1\nb:2\nc 3\nd\t=\t4\n  e = five  \nf\n";
        assert_eq!(
            kv(t),
            vec![
                e("a", "1", 4),
                e("b", "2", 5),
                e("c", "3", 6),
                e("d", "4", 7),
                e("e", "five", 8),
                e("f", "", 9)
            ]
        );
    }

    #[test]
    fn continuation_lines_keep_the_first_line_number() {
        let t = "x = 1\nlist = a \\\n    b \\\n    c\ny = 2\n";
        assert_eq!(
            kv(t),
            vec![e("x", "1", 1), e("list", "a b c", 2), e("y", "2", 5)]
        );
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        assert_eq!(
            kv("a = x\\\\\nb = 1\n"),
            vec![e("a", "x\\", 1), e("b", "1", 2)]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(kv("a\\=b = c\\td\\u0041\\q\n"), vec![e("a=b", "c\tdAq", 1)]);
        assert_eq!(kv("re = ^\\\\d+$\n"), vec![e("re", "^\\d+$", 1)]);
    }

    #[test]
    fn bad_unicode_escape_is_reported_not_fatal() {
        let (entries, issues) = parse("a = \\u12\n");
        assert_eq!(entries.len(), 1);
        assert_eq!(issues[0].line, 1);
    }

    #[test]
    fn crlf_files() {
        assert_eq!(
            kv("a = 1\r\nb = 2\r\n"),
            vec![e("a", "1", 1), e("b", "2", 2)]
        );
    }

    #[test]
    fn comment_lines_never_continue() {
        assert_eq!(kv("# note \\\na = 1\n"), vec![e("a", "1", 2)]);
    }
}
