//! Dynamic membership: backends joining and leaving through --backends-file, and dns://.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::fleet::{SimFleet, slow_preset};
use common::{code, drover, read_output, run_for, stderr, write_lines};

fn tasks(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!(r#"{{"id":"m{i}","prompt":"member test {i}","max_tokens":32}}"#))
        .collect()
}

#[test]
fn backends_file_changes_add_and_drain_backends() {
    let a = SimFleet::start(1, slow_preset(2.0));
    let b = SimFleet::start(1, slow_preset(2.0));
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("backends.txt");
    std::fs::write(&list, format!("# the fleet\n{}\n", a.backends())).unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &tasks(3000));
    let out = dir.path().join("out.jsonl");
    let mut child = drover()
        .arg("run")
        .arg(&input)
        .args([
            "-o",
            out.to_str().unwrap(),
            "--backends-file",
            list.to_str().unwrap(),
            "--summary",
            dir.path().join("s.json").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&list, format!("{}\n{}\n", a.backends(), b.backends())).unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    std::fs::write(&list, format!("{}\n", b.backends())).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "job did not finish"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let b_label = b.backends().trim_start_matches("http://").to_string();
    let a_label = a.backends().trim_start_matches("http://").to_string();
    assert!(err.contains(&format!("backend {b_label} joined")), "{err}");
    assert!(err.contains(&format!("backend {a_label} left")), "{err}");
    let lines = read_output(&out);
    assert_eq!(lines.len(), 3000);
    let mut ids: Vec<&str> = lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3000, "exactly once");
    let served_by = |label: &str| {
        lines
            .iter()
            .filter(|l| l["drover"]["backend"] == label)
            .count()
    };
    assert!(
        served_by(&a_label) > 0 && served_by(&b_label) > 0,
        "both served: {} / {}",
        served_by(&a_label),
        served_by(&b_label)
    );
}

#[test]
fn dns_names_resolve_to_backends() {
    let fleet = SimFleet::start(1, drover_sim::SimConfig::preset("instant").unwrap());
    let port = fleet.backends().rsplit(':').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "t.jsonl", &tasks(50));
    let o = run_for(
        drover()
            .arg("run")
            .arg(&input)
            .args(["-b", &format!("dns://localhost:{port}"), "-q"]),
        Duration::from_secs(60),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(read_output(&dir.path().join("t.results.jsonl")).len(), 50);
}
