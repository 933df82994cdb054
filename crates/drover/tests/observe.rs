//! Seeing a run, end to end: the HTML report rendered by headless Chromium, the live Prometheus
//! endpoint read by the reference parser, `drover probe` against real and imitated engines, the
//! bench report, and secrets kept out of everything written.

mod common;
#[path = "common/observe_browser.rs"]
mod observe_browser;
#[path = "common/observe_mock.rs"]
mod observe_mock;
#[path = "common/observe_support.rs"]
mod observe_support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::server::{Behavior, fleet};
use common::{code, drover, run, run_for, stderr, write_lines};
use observe_browser::{charts, ink, near, points};
use observe_mock::{Mock, MockServer};
use observe_support::{Sims, Watched, http_get, parse_prometheus, sample, samples, sim};
use serde_json::Value;

/// Tasks asking for `max_tokens` between `lo` and `lo + 3·step`.
fn tasks(n: usize, lo: u32, step: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!(r#"{{"id":"t{i}","prompt":"Summarise report number {i} in a few words","max_tokens":{}}}"#, lo + (i as u32 % 4) * step))
        .collect()
}

fn schema_errors(summary: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("docs/summary.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(summary)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())),
    )
    .unwrap()
}

#[test]
fn report_charts_render_in_headless_chromium() {
    observe_browser::chromium(); // fails now, with the install hint, if the browser is missing
    // Two backends, one twice as slow, both failing a few requests: every chart has something.
    let mut fast = sim(1.0);
    fast.faults.fail_rate = 0.04;
    fast.seed = 1;
    let mut slow = fast.clone();
    slow.speed_factor = 0.5;
    slow.seed = 2;
    let sims = Sims::start(vec![fast, slow]);
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "tasks.jsonl", &tasks(1200, 32, 16));
    let (report, summary) = (
        dir.path().join("report.html"),
        dir.path().join("summary.json"),
    );
    let o = run_for(
        drover()
            .arg("run")
            .arg(&input)
            .args([
                "-b",
                &sims.list(),
                "--attempts",
                "1",
                "--max-per-backend",
                "32",
                "-q",
            ])
            .arg("--report")
            .arg(&report)
            .arg("--summary")
            .arg(&summary),
        Duration::from_secs(120),
    );
    assert_eq!(code(&o), 1, "some tasks fail by design:\n{}", stderr(&o));
    let s = read_json(&summary);
    assert_eq!(schema_errors(&s), Vec::<String>::new());
    assert!(
        s["tasks"]["failed"].as_u64().unwrap() > 0
            && s["tasks"]["succeeded"].as_u64().unwrap() > 900,
        "{s:#}"
    );
    assert!(
        s["wall_seconds"].as_f64().unwrap() > 2.5,
        "the run must span several one-second buckets: {s:#}"
    );

    // The DOM after load: every chart, with data, and the page's record of where each landed.
    let dom = observe_browser::dump_dom(&report, &dir.path().join("profile-dom"));
    let found = charts(&dom);
    let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "throughput",
            "concurrency",
            "tasks",
            "latency-time",
            "latency",
            "errors"
        ]
    );
    let chart = |id: &str| found.iter().find(|c| c.id == id).unwrap();
    let lines = chart("throughput").paths("line");
    assert_eq!(lines.len(), 3, "total and two backends");
    assert!(
        lines.iter().all(|d| points(d) >= 3),
        "each throughput line spans the run: {lines:?}"
    );
    assert_eq!(
        chart("concurrency").paths("line limit").len(),
        2,
        "adaptive limits of both backends"
    );
    assert!(chart("latency").bars().len() >= 3, "latency histogram bars");
    let error_bars = chart("errors").bars();
    // The injected 500s are server_error (red); an ejection may add connection_error bars.
    assert!(
        error_bars.iter().any(|b| b.contains("fill=\"#e15759\"")),
        "server_error bars: {error_bars:?}"
    );
    assert!(!dom.contains("class=\"empty\""), "no chart is empty");

    // The screenshot is of the page without its script: the charts must not need it. (Headless
    // Chromium cannot capture with scripts disabled, so the script is cut out instead; it only
    // annotates, so the layout, and the boxes read above, are the same.)
    let html = std::fs::read_to_string(&report).unwrap();
    assert_eq!(html.matches("<script").count(), 1);
    let (before, rest) = html.split_once("<script>").unwrap();
    let bare = dir.path().join("report-no-script.html");
    std::fs::write(
        &bare,
        format!("{before}{}", rest.split_once("</script>").unwrap().1),
    )
    .unwrap();
    let png = dir.path().join("report.png");
    let img = observe_browser::screenshot(&bare, &png, &dir.path().join("profile-shot"));
    if let Some(keep) = std::env::var_os("DROVER_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
    assert_eq!(
        (img.width, img.height),
        (observe_browser::WIDTH, observe_browser::HEIGHT)
    );
    for c in &found {
        let b = c
            .bbox()
            .unwrap_or_else(|| panic!("{} has no data-box", c.id));
        assert!(
            b.2 >= 400 && b.3 >= 150,
            "{}: a readable size on a laptop: {b:?}",
            c.id
        );
        assert!(
            b.0 + b.2 <= img.width && b.1 + b.3 <= img.height,
            "{} is inside the screenshot: {b:?}",
            c.id
        );
        let area = (b.2 * b.3) as usize;
        let inked = img.count(b, ink);
        // Axes, grid and labels alone ink about 1%; the colours below show the data.
        assert!(
            inked * 100 >= area,
            "{}: only {inked} of {area} pixels drawn",
            c.id
        );
    }
    let bbox = |id: &str| chart(id).bbox().unwrap();
    // Series colours, where the series are: the total (near black) and both backends.
    for colour in ["#222222", "#4e79a7", "#f28e2b"] {
        let n = img.count(bbox("throughput"), near(colour, 40));
        assert!(n >= 30, "throughput: {n} pixels of {colour}");
    }
    assert!(
        img.count(bbox("latency"), near("#a0cbe8", 12)) >= 200,
        "latency histogram bars are drawn"
    );
    assert!(
        img.count(bbox("errors"), near("#e15759", 30)) >= 20,
        "error bars are drawn"
    );
    assert!(
        img.count(bbox("concurrency"), near("#4e79a7", 40))
            + img.count(bbox("concurrency"), near("#f28e2b", 40))
            >= 30
    );
    // And the page is not grey everywhere: below the report the window is blank.
    let bottom = (0, img.height - 100, img.width, 100);
    assert_eq!(
        img.count(bottom, ink),
        0,
        "the bottom of the window is blank"
    );
}

#[test]
fn metrics_endpoint_is_live_during_a_run_and_parses_as_prometheus() {
    let sims = Sims::start(vec![sim(1.0), sim(1.0)]);
    let dir = tempfile::tempdir().unwrap();
    // ~0.6 s per task at most 8 in flight: the run lasts several seconds.
    let input = write_lines(dir.path(), "tasks.jsonl", &tasks(80, 64, 16));
    let summary = dir.path().join("summary.json");
    let mut w = Watched::spawn(
        drover()
            .arg("run")
            .arg(&input)
            .args([
                "-b",
                &sims.list(),
                "--max-per-backend",
                "4",
                "--metrics-addr",
                "127.0.0.1:0",
                "-q",
            ])
            .arg("--summary")
            .arg(&summary),
    );
    let line = w.wait_for("drover: metrics on http://", Duration::from_secs(30));
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap()
        .trim_end_matches("/metrics")
        .to_string();

    // A scraper that keeps its connection open must not hold the run up at the end.
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    write!(idle, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut head = [0u8; 64];
    let _ = idle.read(&mut head).unwrap();
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let families = loop {
        let (status, headers, body) = http_get(&addr, "/metrics");
        assert_eq!(status, 200);
        let ctype = headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
        let f = parse_prometheus(&body);
        let ok = sample(&f, "drover_tasks_total", &[("status", "ok")]).unwrap();
        let in_flight: f64 = samples(&f, "drover_backend_in_flight")
            .iter()
            .map(|s| s["value"].as_f64().unwrap())
            .sum();
        if ok >= 1.0 && in_flight >= 1.0 {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "never saw finished tasks while others were in flight:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let kind = |name: &str| {
        families
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .map(|f| f["type"].as_str().unwrap().to_string())
    };
    assert_eq!(kind("drover_tasks").as_deref(), Some("counter"));
    assert_eq!(
        kind("drover_request_duration_seconds").as_deref(),
        Some("histogram")
    );
    assert_eq!(kind("drover_backend_in_flight").as_deref(), Some("gauge"));
    let want: BTreeSet<String> = sims
        .ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let labels = |name: &str| -> BTreeSet<String> {
        samples(&families, name)
            .iter()
            .map(|s| s["labels"]["backend"].as_str().unwrap().to_string())
            .collect()
    };
    for name in [
        "drover_backend_in_flight",
        "drover_backend_limit",
        "drover_backend_ejections_total",
        "drover_backend_output_tokens_total",
    ] {
        assert_eq!(labels(name), want, "{name}");
    }
    for s in samples(&families, "drover_backend_limit") {
        let l = s["value"].as_f64().unwrap();
        assert!(
            (1.0..=4.0).contains(&l),
            "limit within --max-per-backend: {l}"
        );
    }
    assert!(
        samples(&families, "drover_backend_output_tokens_total")
            .iter()
            .any(|s| s["value"].as_f64().unwrap() > 0.0)
    );
    assert_eq!(sample(&families, "drover_tasks_expected", &[]), Some(80.0));
    assert!(
        sample(&families, "drover_retries_total", &[]).is_some()
            && sample(&families, "drover_hedges_total", &[]).is_some()
    );
    // Histograms: cumulative, and +Inf is the count.
    let mut histograms = 0;
    for b in &want {
        let buckets: Vec<f64> = samples(&families, "drover_request_duration_seconds_bucket")
            .iter()
            .filter(|s| s["labels"]["backend"] == *b)
            .map(|s| s["value"].as_f64().unwrap())
            .collect();
        if buckets.is_empty() {
            continue;
        }
        histograms += 1;
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        let count = sample(
            &families,
            "drover_request_duration_seconds_count",
            &[("backend", b)],
        )
        .unwrap();
        assert_eq!(
            sample(
                &families,
                "drover_request_duration_seconds_bucket",
                &[("backend", b), ("le", "+Inf")]
            ),
            Some(count)
        );
    }
    assert!(histograms >= 1);
    let scraped_ok = sample(&families, "drover_tasks_total", &[("status", "ok")]).unwrap();

    let (exit, err) = w.finish(Duration::from_secs(90));
    drop(idle);
    assert_eq!(exit, 0, "{err}");
    let s = read_json(&summary);
    assert_eq!(s["tasks"]["succeeded"], 80);
    assert!(scraped_ok < 80.0, "the scrape saw the run in progress");
}

#[test]
fn api_key_never_reaches_logs_reports_or_summaries() {
    const KEY: &str = "sk-drover-test-3f9a1c7e5b2d4068";
    let mut c = sim(0.05);
    c.api_key = Some(KEY.into());
    let sims = Sims::start(vec![c.clone(), c]);
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "tasks.jsonl", &tasks(20, 8, 4));

    // Without the key the fleet refuses: the key is what makes the run below work.
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &sims.list(), "-o"])
        .arg(dir.path().join("nokey.jsonl")));
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("API key"), "{}", stderr(&o));

    let (report, summary, output) = (
        dir.path().join("r.html"),
        dir.path().join("s.json"),
        dir.path().join("out.jsonl"),
    );
    let o = run(drover()
        .env("OPENAI_API_KEY", KEY)
        .args(["-vv", "--log-format", "json", "run"])
        .arg(&input)
        .args([
            "-b",
            &sims.list(),
            "--metrics-addr",
            "127.0.0.1:0",
            "--stream",
            "on",
        ])
        .arg("-o")
        .arg(&output)
        .arg("--report")
        .arg(&report)
        .arg("--summary")
        .arg(&summary));
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{err}");
    // -vv --log-format json logged at debug level, as JSON.
    let logs: Vec<Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        logs.iter().any(|l| l["level"] == "DEBUG"),
        "no debug log lines in:\n{err}"
    );
    let secret = &KEY[KEY.len() - 16..];
    for (what, text) in [
        ("stderr", err.clone()),
        ("report", std::fs::read_to_string(&report).unwrap()),
        ("summary", std::fs::read_to_string(&summary).unwrap()),
        ("output", std::fs::read_to_string(&output).unwrap()),
    ] {
        assert!(!text.contains(secret), "the API key leaked into the {what}");
    }
    assert!(
        err.contains("api key: from $OPENAI_API_KEY"),
        "the banner names the variable, not the key:\n{err}"
    );

    // probe sends the key too (the models are listed) and prints it nowhere.
    let o = run(drover().env("OPENAI_API_KEY", KEY).args([
        "-vv",
        "--log-format",
        "json",
        "probe",
        "--json",
        "-b",
        &sims.list(),
    ]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let probes: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(
        probes
            .iter()
            .all(|p| p["models"].as_array().is_some_and(|m| !m.is_empty())),
        "{out}"
    );
    assert!(
        !out.contains(secret) && !stderr(&o).contains(secret),
        "the API key leaked from probe"
    );
}

#[test]
fn probe_tells_engines_apart() {
    let sims = Sims::start(vec![sim(1.0)]);
    let (servers, _record) = fleet(1, Behavior::default());
    let ollama = MockServer::start(Mock::Ollama);
    let llama = MockServer::start(Mock::LlamaCpp);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let list = format!(
        "{},{},{},{},{closed}",
        sims.ports[0], servers[0].port, ollama.port, llama.port
    );
    let o = run(drover().args(["probe", "--json", "--timeout", "3s", "-b", &list]));
    assert_eq!(code(&o), 1, "one backend is unreachable:\n{}", stderr(&o));
    let probes: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let by = |port: u16| {
        probes
            .iter()
            .find(|p| p["backend"] == format!("127.0.0.1:{port}"))
            .unwrap_or_else(|| panic!("{port} missing: {probes:#?}"))
    };

    let v = by(sims.ports[0]);
    assert_eq!(
        (
            v["reachable"].as_bool(),
            v["engine"].as_str(),
            v["health"].as_str()
        ),
        (Some(true), Some("vLLM"), Some("ok")),
        "{v:#}"
    );
    assert_eq!(
        v["models"][0]["id"],
        drover_sim::SimConfig::preset(drover_sim::DEFAULT_PRESET)
            .unwrap()
            .model
    );
    assert_eq!(v["max_model_len"], 131072);
    assert_eq!(
        (v["load"]["source"].as_str(), v["load"]["running"].as_f64()),
        (Some("metrics"), Some(0.0)),
        "{v:#}"
    );
    assert!(v["connect_ms"].as_f64().is_some());

    let t = by(servers[0].port);
    assert_eq!(
        (
            t["engine"].as_str(),
            t["models"][0]["id"].as_str(),
            t["max_model_len"].as_u64()
        ),
        (Some("other"), Some("test-model"), Some(4096)),
        "{t:#}"
    );
    assert!(t["load"].is_null());

    let ol = by(ollama.port);
    assert_eq!(
        (
            ol["engine"].as_str(),
            ol["engine_version"].as_str(),
            ol["health"].as_str()
        ),
        (Some("Ollama"), Some("0.6.2"), Some("ok")),
        "{ol:#}"
    );
    assert_eq!(ol["models"].as_array().unwrap().len(), 2);

    let l = by(llama.port);
    assert_eq!(
        (
            l["engine"].as_str(),
            l["engine_version"].as_str(),
            l["max_model_len"].as_u64()
        ),
        (Some("llama.cpp"), Some("b5000-0123abc"), Some(8192)),
        "{l:#}"
    );
    assert_eq!(
        (l["load"]["source"].as_str(), l["load"]["running"].as_f64()),
        (Some("slots"), Some(1.0))
    );

    let c = by(closed);
    assert_eq!(c["reachable"], false);
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("refused"),
        "{c:#}"
    );

    // The table, all reachable: exit 0.
    let o = run(drover().args(["probe", "-b", &format!("{},{}", sims.ports[0], llama.port)]));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("vLLM")
            && table.contains("llama.cpp")
            && table.contains("2 of 2 backends reachable"),
        "{table}"
    );

    // Usage errors.
    let o = run(drover().arg("probe"));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("-b"), "{}", stderr(&o));
    let o = run(drover().args(["probe", "-b", "gpu3"]));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("host:port"), "{}", stderr(&o));
}

#[test]
fn bench_writes_a_comparison_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("bench.html");
    let o = run_for(
        drover()
            .args([
                "bench",
                "--sim",
                "2",
                "--preset",
                "instant",
                "--tasks",
                "300",
                "--modes",
                "serial,adaptive",
                "--report",
            ])
            .arg(&report),
        Duration::from_secs(120),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let html = std::fs::read_to_string(&report).unwrap();
    let found = charts(&html);
    let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["throughput", "concurrency", "latency", "errors"]);
    assert_eq!(
        found[0].paths("line").len(),
        2,
        "one throughput line per run"
    );
    // The printed table's rows, cell for cell.
    let printed = String::from_utf8_lossy(&o.stdout);
    for mode in ["serial", "adaptive"] {
        let row = printed
            .lines()
            .find(|l| l.starts_with(&format!("| {mode} ")))
            .unwrap_or_else(|| panic!("{printed}"));
        for cell in row.split('|').map(str::trim).filter(|c| !c.is_empty()) {
            assert!(
                html.contains(&format!(">{cell}</td>")),
                "{cell} of {mode} missing from the report"
            );
        }
    }
}

#[test]
fn bad_observation_flags_fail_before_anything_is_sent() {
    let (servers, record) = fleet(1, Behavior::default());
    let dir = tempfile::tempdir().unwrap();
    let input = write_lines(dir.path(), "tasks.jsonl", &tasks(3, 8, 1));
    let port = servers[0].port.to_string();
    let o = run(drover()
        .arg("run")
        .arg(&input)
        .args(["-b", &port, "-q", "--report"])
        .arg(dir.path().join("missing/r.html")));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let o = run(drover().arg("run").arg(&input).args([
        "-b",
        &port,
        "-q",
        "--overwrite",
        "--metrics-addr",
        &taken.local_addr().unwrap().to_string(),
    ]));
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("cannot listen"), "{}", stderr(&o));
    assert_eq!(record.requests(), 0, "nothing was sent");
}

/// A mode stopped at the budget before its first answers ended is rated on the tokens that
/// streamed in, not zero (a slow engine with a full batch: one wave outlasts the budget).
#[test]
fn bench_rates_a_budget_stopped_mode_on_streamed_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = run_for(
        drover()
            .args([
                "bench",
                "--sim",
                "1",
                "--preset",
                "hf-cb-1b-h100",
                "--time-scale",
                "0.1",
                "--tasks",
                "8",
                "--max-tokens",
                "4000",
                "--modes",
                "concurrent",
                "--workers",
                "8",
                "--budget",
                "3s",
                "--json",
            ])
            .arg(&json),
        Duration::from_secs(60),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let run = &v["runs"][0];
    assert_eq!(run["partial"], true, "{run}");
    assert_eq!(run["tasks_done"], 0, "{run}");
    let rate = run["output_tokens_per_s"].as_f64().unwrap();
    // 8 sequences, a step of at most 10 ms (99 ms at B = 8, time scale 0.1): ≤ 800 tok/s.
    assert!(rate > 0.0 && rate <= 810.0, "{run}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("every token received"));
}
