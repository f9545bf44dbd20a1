//! `tidal run --web-addr`: the REST API and the dashboard of a running job, in a real headless
//! browser (Debian's Chromium): the page loads, shows the job graph with rates and watermarks,
//! and updates; actions are refused unless allowed; a savepoint triggered through the REST API
//! restores to the right answer; cancel ends the job.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    example, free_addresses, launch_once, read_word_counts, wait_with_limit, write_words,
};

/// The browser: `TIDAL_CHROMIUM`, or Debian's `chromium`.
fn chromium() -> PathBuf {
    let path: PathBuf = std::env::var_os("TIDAL_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        path.is_file(),
        "no browser at {}: install Debian's chromium (`apt-get install -y chromium`, as the README's test command does) or set TIDAL_CHROMIUM",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` with `what` (`--dump-dom` or `--screenshot=FILE`), giving the
/// page's scripts `budget_ms` of time; returns what it printed.
fn browse(url: &str, what: &str, budget_ms: u32, profile: &Path) -> String {
    let out = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1300,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(what)
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium {what} {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A plain HTTP/1.0 request to `addr`: (status code, body); `None` while nothing listens.
fn http(addr: &str, method: &str, path: &str) -> Option<(u16, String)> {
    http_with(addr, method, path, "")
}

/// [`http`] with extra header lines (each ending in CRLF).
fn http_with(addr: &str, method: &str, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    let request =
        format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}Content-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split(' ').nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

fn json(addr: &str, path: &str) -> Option<serde_json::Value> {
    match http(addr, "GET", path)? {
        (200, body) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

/// Waits until `ok` holds for `GET path`, up to 60 s.
fn wait_for(
    addr: &str,
    path: &str,
    what: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = json(addr, path)
            && ok(&v)
        {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Word count under `tidal run --processes 2 --web-addr ADDR` with `extra` launcher flags.
fn start(input: &Path, output: &Path, savepoints: &Path, extra: &[&str]) -> (Child, String) {
    start_with(input, output, savepoints, extra, &[])
}

/// [`start`], with `job` flags for the program.
fn start_with(
    input: &Path,
    output: &Path,
    savepoints: &Path,
    extra: &[&str],
    job: &[&str],
) -> (Child, String) {
    let addr = free_addresses(1).remove(0);
    let mut launcher = launch_once(2);
    // launch_once ends its flags with `--`: the web flags go before it.
    let mut args: Vec<String> = launcher
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let dashdash = args.iter().position(|a| a == "--").unwrap();
    let mut web = vec!["--web-addr".to_string(), addr.clone()];
    web.extend(extra.iter().map(|s| s.to_string()));
    args.splice(dashdash..dashdash, web);
    launcher = std::process::Command::new(launcher.get_program());
    let child = launcher
        .args(args)
        .arg(example("wordcount"))
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ])
        .args([
            "--rate",
            "20000",
            "--savepoint-dir",
            savepoints.to_str().unwrap(),
        ])
        .args(job)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (child, addr)
}

/// The dashboard of a running 2-process job in headless Chromium: every operator of the job
/// graph is drawn with a rate and a watermark, the operator table counts records, the page
/// updates (the source's records out differ between two loads a moment apart), the counting
/// operator's row shows its state's keys and size, and a screenshot
/// is taken. Actions are refused without `--web-actions`; SIGTERM to the launcher ends the job.
#[test]
fn the_dashboard_shows_the_running_job_and_updates() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    write_words(&input, 200_000, 3);
    let (mut launcher, addr) = start(&input, &dir.path().join("out"), &dir.path().join("sp"), &[]);
    wait_for(
        &addr,
        "/api/overview",
        "the job running with its 2 workers",
        |o| o["state"] == "RUNNING" && o["workers"] == 2,
    );
    let graph = json(&addr, "/api/graph").unwrap();
    let names: Vec<String> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.len() >= 5 && names.contains(&"split words".to_string()),
        "{names:?}"
    );

    let url = format!("http://{addr}/");
    let profile = dir.path().join("profile");
    let source_out = |dom: &str| -> u64 {
        // The operator table's first row is the source: name, kind, in, out, ...
        let row = dom
            .split("<td>input files</td>")
            .nth(1)
            .expect("the source's row");
        let cells: Vec<&str> = row
            .split("<td>")
            .skip(1)
            .take(3)
            .map(|c| c.split("</td>").next().unwrap())
            .collect();
        cells[2].replace(',', "").parse().unwrap()
    };
    let first = browse(&url, "--dump-dom", 2_500, &profile);
    for name in &names {
        assert!(
            first.contains(&format!("data-name=\"{name}\"")),
            "{name} not drawn:\n{first}"
        );
    }
    assert!(
        first.contains("rec/s") && first.contains("wm "),
        "no rates or watermarks drawn"
    );
    assert!(first.contains("RUNNING"), "the job's state");
    let before = source_out(&first);
    assert!(before > 0, "the source has read records");
    let mut after = before;
    let deadline = Instant::now() + Duration::from_secs(60);
    while after == before {
        assert!(
            Instant::now() < deadline,
            "the page did not change within 60 s"
        );
        after = source_out(&browse(&url, "--dump-dom", 1_500, &profile));
    }
    assert!(after > before, "records out grew: {before} then {after}");
    // The counting operator's row ends with its state's keys and size, once it holds some (the
    // size measured at most once a second, so it may show 0 B a moment longer).
    let count_state = |dom: &str| -> (u64, String) {
        let row = dom
            .split("<td>count per word</td>")
            .nth(1)
            .and_then(|row| row.split("</tr>").next())
            .expect("the counting operator's row");
        let cells: Vec<&str> = row
            .split("<td>")
            .skip(1)
            .map(|c| c.split("</td>").next().unwrap())
            .collect();
        let keys = cells[cells.len() - 2].replace(',', "").parse().unwrap();
        (keys, cells[cells.len() - 1].to_string())
    };
    let (mut keys, mut size) = count_state(&first);
    while keys == 0 || size == "0 B" {
        assert!(Instant::now() < deadline, "no state keys shown within 60 s");
        (keys, size) = count_state(&browse(&url, "--dump-dom", 1_500, &profile));
    }
    assert!(
        [" B", " KiB", " MiB"].iter().any(|u| size.ends_with(u)),
        "the state's size: {size}"
    );
    let shot = dir.path().join("dashboard.png");
    browse(
        &url,
        &format!("--screenshot={}", shot.display()),
        2_500,
        &profile,
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a screenshot of the page"
    );

    let (code, body) = http(&addr, "POST", "/api/savepoints").unwrap();
    assert_eq!(code, 403, "actions are off without --web-actions: {body}");
    assert!(body.contains("--web-actions"), "{body}");
    common::terminate(&mut launcher);
}

/// With `--web-actions`: a savepoint triggered through the REST API shows in `/api/checkpoints`
/// with its path; cancel ends the job (the launcher exits); the job restored from that savepoint
/// writes the word counts of the whole input.
#[test]
fn a_savepoint_triggered_through_the_rest_api_restores() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    let oracle = write_words(&input, 100_000, 5);
    let savepoints = dir.path().join("sp");
    let (mut launcher, addr) = start(
        &input,
        &dir.path().join("out-1"),
        &savepoints,
        &["--web-actions"],
    );
    wait_for(&addr, "/api/overview", "the job running", |o| {
        o["state"] == "RUNNING" && o["workers"] == 2
    });
    let (code, body) = http(&addr, "POST", "/api/savepoints").unwrap();
    assert_eq!(code, 202, "{body}");
    let checkpoints = wait_for(&addr, "/api/checkpoints", "a savepoint", |c| {
        c["history"]
            .as_array()
            .is_some_and(|h| h.iter().any(|r| r["savepoint"] == true))
    });
    let savepoint = checkpoints["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["savepoint"] == true)
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = http(&addr, "POST", "/api/cancel").unwrap();
    assert_eq!(code, 202, "{body}");
    wait_with_limit(&mut launcher, Duration::from_secs(60));

    let out = dir.path().join("out-2");
    let status = launch_once(2)
        .arg(example("wordcount"))
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args(["--restore", &savepoint])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the restored job");
    assert!(
        read_word_counts(&out) == oracle,
        "the restored job's counts differ from the model's"
    );
}

/// A job with a cluster secret: its REST actions need the token `tidal token` derives from the
/// secret — refused (401) without it or with another, accepted with it.
#[test]
fn rest_actions_need_the_token_of_the_cluster_secret() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    write_words(&input, 100_000, 9);
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let secret_arg = ["--cluster-secret-file", secret.to_str().unwrap()];
    let (mut launcher, addr) = start_with(
        &input,
        &dir.path().join("out"),
        &dir.path().join("sp"),
        &["--web-actions"],
        &secret_arg,
    );
    wait_for(&addr, "/api/overview", "the job running", |o| {
        o["state"] == "RUNNING" && o["workers"] == 2
    });
    let token = std::process::Command::new(common::launcher())
        .arg("token")
        .args(secret_arg)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    assert_eq!(token.len(), 64, "{token}");
    assert!(!token.contains("s3cret"));
    let (code, body) = http(&addr, "POST", "/api/cancel").unwrap();
    assert_eq!(code, 401, "without a token: {body}");
    assert!(body.contains("tidal token"), "{body}");
    let (code, _) = http_with(
        &addr,
        "POST",
        "/api/cancel",
        "Authorization: Bearer 0123\r\n",
    )
    .unwrap();
    assert_eq!(code, 401, "with another token");
    let (code, body) = http_with(
        &addr,
        "POST",
        "/api/cancel",
        &format!("Authorization: Bearer {token}\r\n"),
    )
    .unwrap();
    assert_eq!(code, 202, "with the token: {body}");
    wait_with_limit(&mut launcher, Duration::from_secs(60));
}

/// A job started without the launcher serves the same dashboard from process 0 on its
/// `--metrics-addr`: every operator drawn, with its records (no restarts or actions there).
#[test]
fn process_0_serves_the_dashboard_without_the_launcher() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("words.txt");
    write_words(&input, 100_000, 12);
    let addr = free_addresses(1).remove(0);
    let mut job = std::process::Command::new(example("wordcount"))
        .args(["--input", input.to_str().unwrap()])
        .args(["--output", dir.path().join("out").to_str().unwrap()])
        // Paced to run for 50 s: the page is read while it runs (however slowly the browser
        // starts on a loaded machine), and the job is stopped at the end of the test.
        .args(["--rate", "2000", "-w", "2", "--metrics-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let overview = wait_for(&addr, "/api/overview", "both workers' metrics", |o| {
        o["workers"] == 2
    });
    assert_eq!(overview["actions"], false);
    let dom = browse(
        &format!("http://{addr}/"),
        "--dump-dom",
        2_500,
        &dir.path().join("profile"),
    );
    for name in ["input files", "split words", "count per word"] {
        assert!(
            dom.contains(&format!("data-name=\"{name}\"")),
            "{name} not drawn:\n{dom}"
        );
    }
    assert!(dom.contains("RUNNING"), "the job's state");
    let (code, _) = http(&addr, "POST", "/api/cancel").unwrap();
    assert!(
        code == 404 || code == 405,
        "process 0 has no actions: {code}"
    );
    common::terminate(&mut job);
}
