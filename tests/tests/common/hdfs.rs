//! Reading what the HDFS sink wrote, with hdfs-native for listings (cheap to poll)
//! and Hadoop's own FsShell (through the testkit) for contents.

use std::time::Duration;

/// Every file under `dir` (recursively), as absolute paths, sorted; empty when `dir`
/// does not exist yet.
pub fn list_files(url: &str, dir: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = hdfs_native::ClientBuilder::new()
            .with_url(url)
            .build()
            .unwrap();
        let listing = tokio::time::timeout(Duration::from_secs(20), client.list_status(dir, true))
            .await
            .expect("listing answers in time");
        let mut files: Vec<String> = match listing {
            Ok(v) => v.into_iter().filter(|s| !s.isdir).map(|s| s.path).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    })
}

/// Files under `dir` still carrying the in-use suffix.
pub fn in_use(url: &str, dir: &str) -> Vec<String> {
    list_files(url, dir)
        .into_iter()
        .filter(|f| f.ends_with(".tmp"))
        .collect()
}

/// The file name after its last `/`.
pub fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Sorts FlumeData.N files by N, the order the sink opened them in.
pub fn by_counter(mut files: Vec<String>) -> Vec<String> {
    files.sort_by_key(|f| {
        base(f)
            .split('.')
            .filter_map(|p| p.parse::<u64>().ok())
            .next()
            .unwrap_or(0)
    });
    files
}
