//! Configuration diagnostics: one per problem, each pointing at `FILE:LINE`.

use std::fmt;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// A problem found in a configuration, printed as
/// `FILE:LINE: error: what is wrong; how to fix it`, or `FILE: error: ...` when it is
/// about the file as a whole and has no line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: Arc<str>,
    /// 1-based line; 0 when the problem is about the file as a whole.
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn error(file: &Arc<str>, line: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.clone(),
            line,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(file: &Arc<str>, line: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.clone(),
            line,
            severity: Severity::Warning,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        // Line 0 means "no line"; printing `FILE:0:` would point editors at nothing.
        match self.line {
            0 => write!(f, "{}: {}: {}", self.file, sev, self.message),
            line => write!(f, "{}:{}: {}: {}", self.file, line, sev, self.message),
        }
    }
}

/// Sorts diagnostics by file and line (errors before warnings on the same line) so that
/// output reads top to bottom like the file.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.file.as_ref(), a.line, a.severity).cmp(&(b.file.as_ref(), b.line, b.severity))
    });
}

/// The closest candidate by edit distance, for "did you mean" hints.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lw = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (levenshtein(&lw, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(3) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let c = ["capacity", "transactionCapacity", "keep-alive"];
        assert_eq!(did_you_mean("capacty", c), Some("capacity"));
        assert_eq!(
            did_you_mean("transactioncapacity", c),
            Some("transactionCapacity")
        );
        assert_eq!(did_you_mean("zzzzzzzz", c), None);
    }

    #[test]
    fn displays_file_line_severity() {
        let f: Arc<str> = "conf/a.conf".into();
        let d = Diagnostic::error(&f, 7, "bad; fix it");
        assert_eq!(d.to_string(), "conf/a.conf:7: error: bad; fix it");
    }

    #[test]
    fn a_problem_without_a_line_shows_no_line_number() {
        let f: Arc<str> = "conf/a.conf".into();
        let d = Diagnostic::error(&f, 0, "no agent; pass -n");
        assert_eq!(d.to_string(), "conf/a.conf: error: no agent; pass -n");
        let w = Diagnostic::warning(&f, 0, "odd");
        assert_eq!(w.to_string(), "conf/a.conf: warning: odd");
    }
}
