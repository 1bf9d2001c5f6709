//! Every template in configs/ passes configtest and runs end to end.

use millrace_e2e::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn every_template_passes_configtest() {
    let dir = repo_path("configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            let out = Command::new(bin("millrace-agent"))
                .arg("configtest")
                .arg("-f")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} fails configtest:\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "only {checked} templates found in {}",
        dir.display()
    );
}

#[test]
fn sample_logs_template_routes_errors_and_the_rest() {
    // The template uses paths relative to the repository root, as the README runs it;
    // here it runs in a scratch copy of that layout.
    let work = tempfile::tempdir().unwrap();
    let samples = work.path().join("samples/logs");
    std::fs::create_dir_all(&samples).unwrap();
    let mut expected_errors = 0;
    let mut expected_total = 0;
    for f in ["app.log", "payments.log"] {
        let text = std::fs::read_to_string(repo_path("samples/logs").join(f)).unwrap();
        expected_total += text.lines().count();
        expected_errors += text
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some("ERROR"))
            .count();
        std::fs::write(samples.join(f), text).unwrap();
    }
    assert!(expected_errors > 0);
    let mut child = Command::new(bin("millrace-agent"))
        .args(["agent", "-n", "a1", "-f"])
        .arg(repo_path("configs/sample-logs.conf"))
        .current_dir(work.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let errors = work.path().join("out/errors");
    let other = work.path().join("out/other");
    wait_for(Duration::from_secs(30), "every sample line written", || {
        read_lines(&errors).len() + read_lines(&other).len() == expected_total
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let e = read_lines(&errors);
    assert_eq!(e.len(), expected_errors);
    // HEADER_AND_TEXT: the extracted level and the interceptors' headers lead each line.
    assert!(
        e.iter().all(|l| l.starts_with("{host=")
            && l.contains("level=ERROR")
            && l.contains("timestamp=")),
        "{}",
        e[0]
    );
    assert!(read_lines(&other).iter().all(|l| !l.contains(" ERROR ")));
}
