use crate::serializer::Serializer;
use millrace_core::Props;
use std::path::PathBuf;
use std::time::Duration;

/// Settings of the `file_roll` sink, under Flume's property names.
#[derive(Debug, Clone)]
pub struct FileRollConfig {
    /// `sink.directory` (required): where files are written; created if missing.
    pub directory: PathBuf,
    /// `sink.rollInterval` (seconds, default 30): start a new file this often; 0 keeps
    /// one file.
    pub roll_interval: Option<Duration>,
    /// `sink.pathManager.prefix` (default empty): file name prefix.
    pub prefix: String,
    /// `sink.pathManager.extension` (default empty): file name extension.
    pub extension: String,
    /// `sink.serializer` (default TEXT) and its `sink.serializer.*` options.
    pub serializer: Serializer,
    /// `sink.batchSize` (default 100): events per take.
    pub batch_size: usize,
}

impl FileRollConfig {
    pub fn from_props(p: &Props) -> Option<Self> {
        let directory = p.required("sink.directory", "set the directory to write files into");
        let roll = p.u64_in("sink.rollInterval", 30, 0, u32::MAX as u64);
        let prefix = p.string("sink.pathManager.prefix", "");
        let extension = p.string("sink.pathManager.extension", "");
        let manager = p.choice("sink.pathManager", "DEFAULT", &["DEFAULT", "ROLLTIME"]);
        if manager == "ROLLTIME" {
            p.error_at(
                "sink.pathManager",
                format!(
                    "`{}` = ROLLTIME is not supported yet; remove it to use the default names (PREFIX<millis>-<n>)",
                    p.full_key("sink.pathManager")
                ),
            );
        }
        let serializer = Serializer::from_props(p, "sink.serializer");
        let batch_size = p.u64_in("sink.batchSize", 100, 1, 1_000_000) as usize;
        if p.has_errors() {
            return None;
        }
        Some(FileRollConfig {
            directory: PathBuf::from(directory?),
            roll_interval: (roll > 0).then(|| Duration::from_secs(roll)),
            prefix,
            extension,
            serializer: serializer?,
            batch_size,
        })
    }
}
