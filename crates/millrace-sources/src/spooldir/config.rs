use millrace_core::Props;
use regex::Regex;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorPolicy {
    Fail,
    Replace,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeOrder {
    Oldest,
    Youngest,
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Utf8,
    Latin1,
}

/// How a file read to its end is marked, so that it is not read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackingPolicy {
    /// Renamed to its name + `fileSuffix`.
    Rename,
    /// Left in place; an empty file named after it + `fileSuffix` is created in
    /// `trackerDir`, under the file's path relative to `spoolDir`.
    TrackerDir,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deserializer {
    /// One event per line; longer lines are cut into pieces of this many characters
    /// (never inside a character), as Flume's LineDeserializer does.
    Line { max_line_length: usize },
    /// The file in events of at most this many bytes.
    Blob { max_blob_length: usize },
}

/// Settings of the `spooldir` source, under Flume's property names.
#[derive(Debug, Clone)]
pub struct SpoolDirConfig {
    /// `spoolDir` (required): the directory to read files from.
    pub spool_dir: PathBuf,
    /// `fileSuffix` (default `.COMPLETED`): appended to a file's name once read, or
    /// to its marker's name in `trackerDir`.
    pub file_suffix: String,
    /// `deletePolicy` (`never` | `immediate`, default never): delete read files
    /// instead of marking them; wins over `trackingPolicy`, as in Flume.
    pub delete_immediately: bool,
    /// `trackingPolicy` (`rename` | `tracker_dir`, default rename): how a read file
    /// is marked.
    pub tracking: TrackingPolicy,
    /// `fileHeader` (default false) and `fileHeaderKey` (default `file`): put the
    /// file's absolute path in a header.
    pub file_header: Option<String>,
    /// `basenameHeader` (default false) and `basenameHeaderKey` (default `basename`).
    pub basename_header: Option<String>,
    /// `includePattern` (default `^.*$`): file names to read.
    pub include: Regex,
    /// `ignorePattern` (default `^$`): file names to skip, and with `recursive` the
    /// names of subdirectories not to enter; wins over includePattern. Both patterns
    /// match whole names.
    pub ignore: Regex,
    /// `trackerDir` (default `.flumespool`, relative to spoolDir): where the reading
    /// position is kept.
    pub tracker_dir: PathBuf,
    /// `consumeOrder` (default oldest): by modification time, or random.
    pub consume_order: ConsumeOrder,
    /// `pollDelay` (ms, default 500): wait between looks at an empty directory.
    pub poll_delay: Duration,
    /// `recursiveDirectorySearch` (default false): read files in subdirectories too.
    pub recursive: bool,
    /// `batchSize` (default 100): events per put.
    pub batch_size: usize,
    /// `inputCharset` (default UTF-8; ISO-8859-1 also supported).
    pub input_charset: Charset,
    /// `decodeErrorPolicy` (FAIL | REPLACE | IGNORE, default FAIL): what to do with
    /// bytes that are not valid in the input charset.
    pub decode_error_policy: DecodeErrorPolicy,
    /// `deserializer` (LINE | BLOB) with `deserializer.maxLineLength` (2048) or
    /// `deserializer.maxBlobLength` (100000000).
    pub deserializer: Deserializer,
}

impl SpoolDirConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let spool_dir = p.required("spoolDir", "set the directory to read files from");
        let file_suffix = p.string("fileSuffix", ".COMPLETED");
        let delete_immediately =
            p.choice("deletePolicy", "never", &["never", "immediate"]) == "immediate";
        // The keys are read whether or not their header is on, as Flume reads them, so
        // that a key left in the file is not reported as unknown.
        let file_header = p.bool("fileHeader", false);
        let file_header = file_header.then_some(p.string("fileHeaderKey", "file"));
        let basename_header = p.bool("basenameHeader", false);
        let basename_header = basename_header.then_some(p.string("basenameHeaderKey", "basename"));
        let tracking = match p.choice("trackingPolicy", "rename", &["rename", "tracker_dir"]) {
            "tracker_dir" => TrackingPolicy::TrackerDir,
            _ => TrackingPolicy::Rename,
        };
        // Flume matches a whole name (`Matcher.matches`): `.*\.log` takes `a.log` and not
        // `a.log.1`.
        let whole = |key: &str, default: &str| {
            p.optional(key, default)
                .and_then(|_| p.regex(key))
                .and_then(|r| Regex::new(&format!("^(?:{})$", r.as_str())).ok())
        };
        let include = whole("includePattern", "^.*$");
        let ignore = whole("ignorePattern", "^$");
        let tracker = p.string("trackerDir", ".flumespool");
        let consume_order =
            match p.choice("consumeOrder", "oldest", &["oldest", "youngest", "random"]) {
                "youngest" => ConsumeOrder::Youngest,
                "random" => ConsumeOrder::Random,
                _ => ConsumeOrder::Oldest,
            };
        let poll_delay = p.millis("pollDelay", 500);
        let recursive = p.bool("recursiveDirectorySearch", false);
        // The channel processor's retry backs off up to 5 s; accepted for Flume files.
        let _ = p.get("maxBackoff");
        let batch_size = p.u64_in("batchSize", 100, 1, 1_000_000) as usize;
        let charset = p.string("inputCharset", "UTF-8");
        let input_charset = match charset.to_ascii_uppercase().replace('_', "-").as_str() {
            "UTF-8" | "UTF8" => Charset::Utf8,
            "ISO-8859-1" | "LATIN1" | "ISO8859-1" => Charset::Latin1,
            other => {
                p.error_at(
                    "inputCharset",
                    format!(
                        "`{}` = {other} is not supported; use UTF-8 or ISO-8859-1",
                        p.full_key("inputCharset")
                    ),
                );
                Charset::Utf8
            }
        };
        let decode_error_policy =
            match p.choice("decodeErrorPolicy", "FAIL", &["FAIL", "REPLACE", "IGNORE"]) {
                "REPLACE" => DecodeErrorPolicy::Replace,
                "IGNORE" => DecodeErrorPolicy::Ignore,
                _ => DecodeErrorPolicy::Fail,
            };
        let d = p.sub("deserializer.");
        let deserializer = match p.choice(
            "deserializer",
            "LINE",
            &[
                "LINE",
                "BLOB",
                "org.apache.flume.sink.solr.morphline.BlobDeserializer$Builder",
            ],
        ) {
            "LINE" => {
                let mut max = d.u64_in("maxLineLength", 2048, 1, 1 << 30);
                // Flume's older name still wins for the line deserializer.
                if p.has("bufferMaxLineLength") {
                    max = p.u64_in("bufferMaxLineLength", max, 1, 1 << 30);
                }
                Deserializer::Line {
                    max_line_length: max as usize,
                }
            }
            _ => Deserializer::Blob {
                max_blob_length: d.u64_in("maxBlobLength", 100_000_000, 1, 1 << 31) as usize,
            },
        };
        let out_charset = d.string("outputCharset", "UTF-8");
        if !out_charset.eq_ignore_ascii_case("UTF-8") {
            d.error_at(
                "outputCharset",
                format!(
                    "`{}` = {out_charset}: events are written as UTF-8; remove it",
                    d.full_key("outputCharset")
                ),
            );
        }
        if p.has_errors() {
            return None;
        }
        let spool_dir = PathBuf::from(spool_dir?);
        let tracker_dir = {
            let t = PathBuf::from(&tracker);
            if t.is_absolute() {
                t
            } else {
                spool_dir.join(t)
            }
        };
        Some(SpoolDirConfig {
            spool_dir,
            file_suffix,
            delete_immediately,
            tracking,
            file_header,
            basename_header,
            include: include.unwrap_or_else(|| Regex::new("^.*$").expect("valid")),
            ignore: ignore.unwrap_or_else(|| Regex::new("^$").expect("valid")),
            tracker_dir,
            consume_order,
            poll_delay,
            recursive,
            batch_size,
            input_charset,
            decode_error_policy,
            deserializer,
        })
    }
}
