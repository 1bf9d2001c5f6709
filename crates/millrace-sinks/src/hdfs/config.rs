use super::escape::{parse_time_zone, RoundUnit, Template, TimeSettings};
use super::format::{Codec, FileType, WriteFormat};
use crate::serializer::Serializer;
use millrace_core::Props;
use std::time::Duration;

/// Settings of the `hdfs` sink, under Flume 1.11's property names and defaults.
#[derive(Debug, Clone)]
pub struct HdfsSinkConfig {
    /// The namenode from `hdfs.path` (`hdfs://host:port`); None means the default
    /// file system of the Hadoop configuration in `HADOOP_CONF_DIR`.
    pub url: Option<String>,
    /// `hdfs.path` (required) without the scheme and authority, escapes unresolved.
    pub path: Template,
    pub path_text: String,
    /// `hdfs.filePrefix` (default `FlumeData`), escapes allowed.
    pub file_prefix: Template,
    /// `hdfs.fileSuffix` (default none; the codec's extension when a codec is set).
    pub file_suffix: String,
    /// `hdfs.inUsePrefix` (default none).
    pub in_use_prefix: String,
    /// `hdfs.inUseSuffix` (default `.tmp`), empty with `hdfs.emptyInUseSuffix = true`.
    pub in_use_suffix: String,
    /// `hdfs.rollInterval` seconds (default 30; 0 never rolls on time).
    pub roll_interval: Option<Duration>,
    /// `hdfs.rollSize` body bytes (default 1024; 0 never rolls on size).
    pub roll_size: u64,
    /// `hdfs.rollCount` events (default 10; 0 never rolls on count).
    pub roll_count: u64,
    /// `hdfs.idleTimeout` seconds (default 0, never): close a file left unwritten.
    pub idle_timeout: Option<Duration>,
    /// `hdfs.batchSize` (default 100): events per take, flushed together.
    pub batch_size: usize,
    /// `hdfs.codeC` (default none).
    pub codec: Option<Codec>,
    /// `hdfs.fileType` (default SequenceFile).
    pub file_type: FileType,
    /// `hdfs.writeFormat` (default Writable).
    pub write_format: WriteFormat,
    /// `hdfs.maxOpenFiles` (default 5000): the least recently used file is closed
    /// beyond this.
    pub max_open_files: usize,
    /// `hdfs.minBlockReplicas`: replication asked for new files (default: the cluster's).
    pub replication: Option<u32>,
    /// `hdfs.callTimeout` ms (default 30000): the limit on each HDFS operation.
    pub call_timeout: Duration,
    /// `hdfs.closeTries` (default 0 = until it works): attempts to close and rename a
    /// file whose close failed.
    pub close_tries: u32,
    /// `hdfs.retryInterval` seconds (default 180): between those attempts.
    pub retry_interval: Duration,
    /// `hdfs.round`, `hdfs.roundValue`, `hdfs.roundUnit`, `hdfs.timeZone`,
    /// `hdfs.useLocalTimeStamp`.
    pub time: TimeSettings,
    /// `serializer` (default TEXT) with its `serializer.*` options, for DataStream
    /// and CompressedStream.
    pub serializer: Serializer,
}

impl HdfsSinkConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let raw_path = p.required(
            "hdfs.path",
            "set the HDFS directory to write into, e.g. hdfs://namenode:8020/flume/events/%Y-%m-%d",
        );
        let (url, path_text) = match raw_path.as_deref().map(split_url) {
            Some(Ok((u, path))) => (u, path),
            Some(Err(e)) => {
                p.error_at("hdfs.path", format!("`{}`: {e}", p.full_key("hdfs.path")));
                (None, String::new())
            }
            None => (None, String::new()),
        };
        let mut problems = Vec::new();
        let path = Template::parse(&path_text, &mut problems);
        for m in problems.drain(..) {
            p.error_at("hdfs.path", format!("`{}`: {m}", p.full_key("hdfs.path")));
        }
        let prefix_text = p.string("hdfs.filePrefix", "FlumeData");
        let file_prefix = Template::parse(&prefix_text, &mut problems);
        for m in problems.drain(..) {
            p.error_at(
                "hdfs.filePrefix",
                format!("`{}`: {m}", p.full_key("hdfs.filePrefix")),
            );
        }
        if prefix_text.contains('/') {
            p.error_at(
                "hdfs.filePrefix",
                format!(
                    "`{}` must not contain `/`; put directories in hdfs.path",
                    p.full_key("hdfs.filePrefix")
                ),
            );
        }
        let file_suffix = p.string("hdfs.fileSuffix", "");
        let in_use_prefix = p.string("hdfs.inUsePrefix", "");
        let mut in_use_suffix = p.string("hdfs.inUseSuffix", ".tmp");
        if p.bool("hdfs.emptyInUseSuffix", false) {
            in_use_suffix.clear();
        }
        let roll_interval = p.u64_in("hdfs.rollInterval", 30, 0, u32::MAX as u64);
        let roll_size = p.u64_in("hdfs.rollSize", 1024, 0, i64::MAX as u64);
        let roll_count = p.u64_in("hdfs.rollCount", 10, 0, i64::MAX as u64);
        let idle = p.u64_in("hdfs.idleTimeout", 0, 0, u32::MAX as u64);
        let batch_size = p.u64_in("hdfs.batchSize", 100, 1, 1_000_000) as usize;
        // Flume reads `None` (any case) as no codec, as it does an empty value.
        let no_codec = |c: &str| c.trim().is_empty() || c.trim().eq_ignore_ascii_case("none");
        let codec = match p.optional("hdfs.codeC", "none") {
            Some(name) if !no_codec(&name) => match Codec::parse(&name) {
                Ok(c) => Some(c),
                Err(e) => {
                    p.error_at("hdfs.codeC", format!("`{}`: {e}", p.full_key("hdfs.codeC")));
                    None
                }
            },
            _ => None,
        };
        let file_type = match p.choice(
            "hdfs.fileType",
            "SequenceFile",
            &["SequenceFile", "DataStream", "CompressedStream"],
        ) {
            "DataStream" => FileType::DataStream,
            "CompressedStream" => FileType::CompressedStream,
            _ => FileType::SequenceFile,
        };
        let codec_set = p.get("hdfs.codeC").is_some_and(|c| !no_codec(&c));
        // Hadoop's local-filesystem switch: this sink writes only to a namenode.
        let _ = p.get("hdfs.useRawLocalFileSystem");
        if file_type == FileType::DataStream && codec_set {
            p.error_at(
                "hdfs.codeC",
                format!(
                    "hdfs.fileType DataStream writes uncompressed files; remove `{}` or set hdfs.fileType = CompressedStream",
                    p.full_key("hdfs.codeC")
                ),
            );
        }
        if file_type == FileType::CompressedStream && !codec_set {
            p.error_at(
                "hdfs.fileType",
                format!(
                    "hdfs.fileType CompressedStream needs a codec; set `{}` = gzip",
                    p.full_key("hdfs.codeC")
                ),
            );
        }
        let write_format = match p.choice("hdfs.writeFormat", "Writable", &["Writable", "Text"]) {
            "Text" => WriteFormat::Text,
            _ => WriteFormat::Writable,
        };
        let max_open_files = p.u64_in("hdfs.maxOpenFiles", 5000, 1, 1_000_000) as usize;
        let replication = p
            .optional("hdfs.minBlockReplicas", "the cluster's dfs.replication")
            .map(|_| p.u64_in("hdfs.minBlockReplicas", 1, 1, 512) as u32);
        let call_timeout = p.u64_in("hdfs.callTimeout", 30_000, 1, u32::MAX as u64);
        let close_tries = p.u64_in("hdfs.closeTries", 0, 0, u32::MAX as u64) as u32;
        let retry_interval = p.u64_in("hdfs.retryInterval", 180, 0, u32::MAX as u64);
        let round = p.bool("hdfs.round", false);
        let unit = match p.choice("hdfs.roundUnit", "second", &["second", "minute", "hour"]) {
            "minute" => RoundUnit::Minute,
            "hour" => RoundUnit::Hour,
            _ => RoundUnit::Second,
        };
        let max_round = if unit == RoundUnit::Hour { 24 } else { 60 };
        let round_value = p.u64_in("hdfs.roundValue", 1, 1, max_round) as i8;
        let tz = match p.optional("hdfs.timeZone", "the system's") {
            Some(name) => match parse_time_zone(&name) {
                Ok(tz) => tz,
                Err(e) => {
                    p.error_at(
                        "hdfs.timeZone",
                        format!("`{}`: {e}", p.full_key("hdfs.timeZone")),
                    );
                    jiff::tz::TimeZone::UTC
                }
            },
            None => jiff::tz::TimeZone::system(),
        };
        let use_local = p.bool("hdfs.useLocalTimeStamp", false);
        // Flume's thread pools: millrace writes from the sink's own task, so these
        // sizes have nothing to size.
        let _ = p.u64_in("hdfs.threadsPoolSize", 10, 1, 10_000);
        let _ = p.u64_in("hdfs.rollTimerPoolSize", 1, 1, 10_000);
        for k in [
            "hdfs.kerberosPrincipal",
            "hdfs.kerberosKeytab",
            "hdfs.proxyUser",
        ] {
            if p.optional(k, "none").is_some_and(|v| !v.trim().is_empty()) {
                p.error_at(
                    k,
                    format!(
                        "`{}`: Kerberos is not supported by millrace's HDFS sink; it connects with simple authentication as the user running the agent (HADOOP_USER_NAME overrides it)",
                        p.full_key(k)
                    ),
                );
            }
        }
        let serializer = Serializer::from_props(p, "serializer");
        if p.has_errors() {
            return None;
        }
        Some(HdfsSinkConfig {
            url,
            path,
            path_text,
            file_prefix,
            file_suffix,
            in_use_prefix,
            in_use_suffix,
            roll_interval: (roll_interval > 0).then(|| Duration::from_secs(roll_interval)),
            roll_size,
            roll_count,
            idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
            batch_size,
            codec,
            file_type,
            write_format,
            max_open_files,
            replication,
            call_timeout: Duration::from_millis(call_timeout),
            close_tries,
            retry_interval: Duration::from_secs(retry_interval),
            time: TimeSettings {
                round: round.then_some((round_value, unit)),
                tz,
                use_local,
            },
            serializer: serializer?,
        })
    }
}

/// Splits `hdfs://host:port/path` into the namenode URL and the path; a path without
/// a scheme uses the configured default file system.
fn split_url(raw: &str) -> Result<(Option<String>, String), String> {
    let raw = raw.trim();
    if raw.starts_with('/') {
        return Ok((None, raw.to_string()));
    }
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err(
            "expected an absolute path (/flume/events) or a URL (hdfs://namenode:8020/flume/events)"
                .to_string(),
        );
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "hdfs" | "viewfs") {
        return Err(format!(
            "scheme `{scheme}` is not supported; the HDFS sink writes hdfs:// (or viewfs://) paths"
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Ok((None, path.to_string()));
    }
    Ok((Some(format!("{scheme}://{authority}")), path.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_and_path() {
        assert_eq!(
            split_url("hdfs://nn:8020/flume/%Y").unwrap(),
            (Some("hdfs://nn:8020".to_string()), "/flume/%Y".to_string())
        );
        assert_eq!(split_url("/flume").unwrap(), (None, "/flume".to_string()));
        assert_eq!(
            split_url("hdfs:///flume").unwrap(),
            (None, "/flume".to_string())
        );
        assert!(split_url("s3a://bucket/x").unwrap_err().contains("s3a"));
        assert!(split_url("flume/events").is_err());
    }

    #[test]
    fn flume_defaults() {
        let p = Props::from_pairs(&[("hdfs.path", "hdfs://127.0.0.1:9000/logs")]);
        let c = HdfsSinkConfig::from_props(&p).unwrap();
        assert!(p.finish().is_empty(), "{:?}", p.finish());
        assert_eq!(c.file_type, FileType::SequenceFile);
        assert_eq!(c.write_format, WriteFormat::Writable);
        assert_eq!(c.roll_interval, Some(Duration::from_secs(30)));
        assert_eq!((c.roll_size, c.roll_count, c.batch_size), (1024, 10, 100));
        assert_eq!(c.in_use_suffix, ".tmp");
        assert_eq!(c.call_timeout, Duration::from_secs(30));
        assert_eq!(c.max_open_files, 5000);
        assert!(c.codec.is_none() && c.idle_timeout.is_none());
    }

    #[test]
    fn each_problem_is_reported_at_its_key() {
        let p = Props::from_pairs(&[
            ("hdfs.path", "hdfs://nn/logs/%Q"),
            ("hdfs.fileType", "DataStream"),
            ("hdfs.codeC", "snappy"),
            ("hdfs.roundUnit", "day"),
            ("hdfs.timeZone", "Nowhere/Land"),
            ("hdfs.kerberosPrincipal", "flume/_HOST@EXAMPLE.COM"),
        ]);
        assert!(HdfsSinkConfig::from_props(&p).is_none());
        let text: Vec<String> = p.finish().iter().map(|d| d.to_string()).collect();
        let all = text.join("\n");
        for needle in [
            "%Q",
            "snappy",
            "DataStream",
            "roundUnit",
            "Nowhere",
            "Kerberos",
        ] {
            assert!(all.contains(needle), "no message about {needle}: {all}");
        }
    }

    #[test]
    fn compressed_stream_needs_a_codec() {
        let p = Props::from_pairs(&[
            ("hdfs.path", "/logs"),
            ("hdfs.fileType", "CompressedStream"),
        ]);
        assert!(HdfsSinkConfig::from_props(&p).is_none());
        let p = Props::from_pairs(&[
            ("hdfs.path", "/logs"),
            ("hdfs.fileType", "CompressedStream"),
            ("hdfs.codeC", "gzip"),
            ("hdfs.emptyInUseSuffix", "true"),
        ]);
        let c = HdfsSinkConfig::from_props(&p).unwrap();
        assert_eq!(c.codec, Some(Codec::Gzip));
        assert_eq!(c.in_use_suffix, "");
    }
}
