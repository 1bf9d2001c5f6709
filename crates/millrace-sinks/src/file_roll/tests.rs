use super::*;
use millrace_core::Props;

fn sink(dir: &std::path::Path, extra: &[(&str, &str)]) -> FileRollSink {
    let d = dir.to_str().unwrap();
    let mut pairs = vec![("sink.directory", d)];
    pairs.extend_from_slice(extra);
    let p = Props::from_pairs(&pairs);
    let cfg = FileRollConfig::from_props(&p).expect("valid config");
    FileRollSink::new("k1", cfg, Default::default())
}

fn files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn writes_lines_and_names_files_like_flume() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(
        dir.path(),
        &[
            ("sink.pathManager.prefix", "app-"),
            ("sink.pathManager.extension", "log"),
        ],
    );
    s.start().await.unwrap();
    s.deliver(&[Event::from_body("one"), Event::from_body("two")])
        .await
        .unwrap();
    s.deliver(&[Event::from_body("three")]).await.unwrap();
    s.stop().await.unwrap();
    let f = files(dir.path());
    assert_eq!(f.len(), 1);
    let name = f[0].file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("app-") && name.ends_with("-1.log"),
        "{name}"
    );
    assert_eq!(std::fs::read_to_string(&f[0]).unwrap(), "one\ntwo\nthree\n");
}

#[tokio::test(start_paused = true)]
async fn rolls_to_a_new_file_after_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), &[("sink.rollInterval", "1")]);
    s.start().await.unwrap();
    s.deliver(&[Event::from_body("a")]).await.unwrap();
    tokio::time::advance(std::time::Duration::from_millis(1100)).await;
    s.idle().await.unwrap();
    s.deliver(&[Event::from_body("b")]).await.unwrap();
    s.stop().await.unwrap();
    let f = files(dir.path());
    assert_eq!(f.len(), 2);
    assert_eq!(std::fs::read_to_string(&f[0]).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(&f[1]).unwrap(), "b\n");
}

#[tokio::test]
async fn missing_directory_is_reported() {
    let p = Props::from_pairs(&[]);
    assert!(FileRollConfig::from_props(&p).is_none());
    assert!(p.finish()[0].message.contains("sink.directory"));
}
