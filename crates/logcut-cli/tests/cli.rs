//! End-to-end tests of the `logcut` binary.

#![allow(missing_docs)]

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

// The record parser of logcut's integration tests, shared.
#[path = "../../logcut/tests/integration/records.rs"]
mod records;

use records::{Format, Parser};

const BIN: &str = env!("CARGO_BIN_EXE_logcut");

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("logcut-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn logcut(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Every path under `dir` (empty if it does not exist).
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            out.extend(tree(&p));
            out.push(p);
        }
    }
    out.sort();
    out
}

fn write_input(dir: &Path, extra: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(["write", "--dir", dir.to_str().unwrap()])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    // A command that refuses its options exits without reading: the rest
    // of the input meets a closed pipe, which is no failure of the test.
    let feeder = std::thread::spawn(move || match stdin.write_all(&data) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        res => res.unwrap(),
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

#[test]
fn two_million_lines_each_exactly_once_and_cat_reproduces_the_input() {
    let dir = TempDir::new("pipe");
    let mut input = Vec::new();
    for i in 0..2_000_000u32 {
        writeln!(input, "line {i:08} some text").unwrap();
    }
    let out = write_input(&dir.0, &["--max-size", "64KiB"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = logcut(&["verify", dir.0.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    assert!(String::from_utf8_lossy(&v.stdout).contains("2000000 records"));
    let c = logcut(&["cat", dir.0.to_str().unwrap()]);
    assert!(c.status.success());
    assert!(c.stdout == input, "cat does not reproduce the input");
    // Every segment ends at a line boundary: no line split across files.
    for e in std::fs::read_dir(&dir.0).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "log") {
            assert!(
                std::fs::read(&p).unwrap().ends_with(b"\n"),
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn odd_bytes_pass_through_and_the_last_line_needs_no_newline() {
    let dir = TempDir::new("bytes");
    let input: &[u8] = b"plain\n\xff\xfe not utf-8\nnul\x00inside\ncrlf\r\n\nno newline at the end";
    let out = write_input(&dir.0, &["--max-size", "16"], input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = logcut(&["cat", dir.0.to_str().unwrap()]);
    assert_eq!(c.stdout, input);
    assert!(
        logcut(&["verify", dir.0.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn long_lines_are_split_not_truncated() {
    let dir = TempDir::new("long");
    let mut input = vec![b'x'; 10_000];
    input.push(b'\n');
    let out = write_input(
        &dir.0,
        &["--max-line", "4KiB", "--max-size", "4KiB"],
        &input,
    );
    assert!(out.status.success());
    assert_eq!(logcut(&["cat", dir.0.to_str().unwrap()]).stdout, input);
}

#[test]
fn empty_input_is_fine() {
    let dir = TempDir::new("empty");
    let out = write_input(&dir.0, &[], b"");
    assert!(out.status.success());
    let v = logcut(&["verify", dir.0.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

#[test]
fn sigterm_keeps_reading_until_the_input_ends() {
    let dir = TempDir::new("term");
    let mut child = Command::new(BIN)
        .args(["write", "--dir", dir.0.to_str().unwrap(), "--grace", "30s"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut expected = Vec::new();
    for i in 0..50_000 {
        let line = format!("before {i}\n");
        stdin.write_all(line.as_bytes()).unwrap();
        expected.extend_from_slice(line.as_bytes());
    }
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    // The producer is still writing: nothing it writes may be dropped.
    for i in 0..50_000 {
        let line = format!("after {i}\n");
        stdin.write_all(line.as_bytes()).unwrap();
        expected.extend_from_slice(line.as_bytes());
    }
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(logcut(&["cat", dir.0.to_str().unwrap()]).stdout, expected);
    assert!(
        logcut(&["verify", dir.0.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn usage_errors_exit_2_and_runtime_errors_exit_1() {
    let dir = TempDir::new("errors");
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let x = dir.0.join("x");
    let x = x.to_str().unwrap();
    let o = logcut(&["write", "--dir", x, "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let o = logcut(&["write", "--dir", x, "--max-size", "ten"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    // The flag's name, not the library's.
    assert!(
        err.contains("not a size") && !err.contains("`size`"),
        "{err}"
    );
    let o = logcut(&["write", "--dir", x, "--min-free", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--min-free"));
    let o = logcut(&["write", "--dir", x, "--tz", "Nowhere/City"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("invalid --tz: \"Nowhere/City\" is not a known time zone")
            && !err.contains("time_zone")
            && err.lines().count() == 1,
        "{err}"
    );
    // A refused option creates nothing (no directory, no trigger file).
    assert_eq!(tree(&dir.0), std::slice::from_ref(&file));
    // The directory is named once, with what is wrong with it.
    let o = logcut(&["verify", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.trim_end(),
        format!(
            "logcut: cannot verify {}: Not a directory (os error 20)",
            file.display()
        )
    );
    let o = logcut(&["write", "--dir", file.join("sub").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("give a directory") && err.lines().count() == 1,
        "{err}"
    );
    let o = logcut(&["write", "--dir", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not a directory") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn verify_exits_1_and_names_a_truncated_segment() {
    let dir = TempDir::new("verify");
    let input: Vec<u8> = (0..1000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    assert!(
        write_input(&dir.0, &["--max-size", "1KiB"], &input)
            .status
            .success()
    );
    let mut sealed: Vec<PathBuf> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    sealed.sort();
    assert!(sealed.len() >= 3, "{sealed:?}");
    // One truncated, one removed, one with a byte changed (same length).
    let victim = sealed[0].clone();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap();
    f.set_len(10).unwrap();
    std::fs::remove_file(&sealed[1]).unwrap();
    let mut bytes = std::fs::read(&sealed[2]).unwrap();
    bytes[3] ^= 0x20;
    std::fs::write(&sealed[2], &bytes).unwrap();
    let v = logcut(&["verify", dir.0.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(1));
    let text = String::from_utf8_lossy(&v.stdout);
    let name = |p: &PathBuf| p.file_name().unwrap().to_str().unwrap().to_string();
    let line_of = |n: String| {
        text.lines()
            .find(|l| l.contains(&n))
            .unwrap_or("")
            .to_string()
    };
    assert!(line_of(name(&victim)).contains("truncated"), "{text}");
    assert!(line_of(name(&sealed[1])).contains("not on disk"), "{text}");
    assert!(line_of(name(&sealed[2])).contains("modified"), "{text}");
    let j = logcut(&["verify", "--json", dir.0.to_str().unwrap()]);
    assert_eq!(j.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&j.stdout).contains("\"kind\":\"SizeMismatch\""));
}

#[test]
fn keygen_then_verify_key_file_proves_the_history_and_catches_a_forged_delete() {
    let dir = TempDir::new("keygen");
    let d = dir.0.to_str().unwrap();
    let k = logcut(&["keygen", d, "--epoch", "1m"]);
    assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    let vk = String::from_utf8(k.stdout).unwrap();
    assert!(vk.starts_with("logcut-verify-key-1:"), "{vk}");
    // The verification key is printed once, never kept in the directory.
    let key_file = dir.0.join("app.seal-key");
    assert!(
        !std::fs::read_to_string(&key_file)
            .unwrap()
            .contains(vk.trim().rsplit(':').next().unwrap())
    );
    let again = logcut(&["keygen", d]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let input: Vec<u8> = (0..5000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    assert!(
        write_input(&dir.0, &["--max-size", "4KiB"], &input)
            .status
            .success()
    );
    let vk_path = std::env::temp_dir().join(format!("logcut-vk-{}", std::process::id()));
    std::fs::write(&vk_path, &vk).unwrap();
    let vkp = vk_path.to_str().unwrap();
    let v = logcut(&["verify", d, "--key-file", vkp]);
    let out = String::from_utf8_lossy(&v.stdout).to_string();
    assert_eq!(v.status.code(), Some(0), "{out}");
    assert!(out.contains("app: sealed history verified up to "), "{out}");
    assert!(out.contains("every entry is sealed"), "{out}");
    // The same as one JSON document: the report, and the seal's check.
    let seal_json = || {
        let v = logcut(&["verify", d, "--key-file", vkp, "--json"]);
        let doc: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
        (v.status.code(), doc)
    };
    let (code, doc) = seal_json();
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(
        (&doc["ok"], &doc["problems"]),
        (&true.into(), &serde_json::json!([]))
    );
    let seal = &doc["seal"];
    let mut keys: Vec<&String> = seal.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "before",
            "log",
            "notes",
            "ok",
            "problems",
            "sealed",
            "sealed_until",
            "unchecked",
            "unsealed"
        ],
        "{seal}"
    );
    assert_eq!((&seal["log"], &seal["ok"]), (&"app".into(), &true.into()));
    assert!(seal["sealed"].as_u64().unwrap() > 0, "{seal}");
    assert_eq!(
        (&seal["unsealed"], &seal["unchecked"]),
        (&0.into(), &0.into()),
        "{seal}"
    );
    assert!(
        seal["sealed_until"]["at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok()
    );
    assert!(seal["sealed_until"]["epoch"].is_u64(), "{seal}");
    // The forgery `verify` alone cannot see: a `delete` line with its CRC
    // recomputed, which hides a segment's records.
    let manifest = dir.0.join("app.manifest");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let first = text.lines().find(|l| l.starts_with("seal seq=1 ")).unwrap();
    let file = first
        .split(' ')
        .find_map(|w| w.strip_prefix("file="))
        .unwrap();
    let body = format!("delete seq=1 file={file} reason=count");
    let forged = format!("{text}{body} ~{:08x}\n", crc32fast::hash(body.as_bytes()));
    std::fs::write(&manifest, forged).unwrap();
    assert_eq!(
        logcut(&["verify", d]).status.code(),
        Some(0),
        "verify alone passes it"
    );
    let v = logcut(&["verify", d, "--key-file", vkp]);
    let out = String::from_utf8_lossy(&v.stdout).to_string();
    assert_eq!(v.status.code(), Some(1), "{out}");
    assert!(out.contains("without a MAC after sealing began"), "{out}");
    // In JSON: the report finds nothing, the seal's check the forged line.
    let (code, doc) = seal_json();
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(
        (&doc["ok"], &doc["problems"]),
        (&false.into(), &serde_json::json!([]))
    );
    let problems = doc["seal"]["problems"].as_array().unwrap();
    let forged_line = text.lines().count() + 1;
    assert_eq!(problems[0]["line"], forged_line, "{doc}");
    assert!(
        problems[0]["detail"]
            .as_str()
            .unwrap()
            .contains("without a MAC after sealing began"),
        "{doc}"
    );
    assert_eq!(doc["seal"]["ok"], false);
    // A wrong key is refused plainly, and a malformed one is an error.
    std::fs::write(
        &vk_path,
        format!("logcut-verify-key-1:{}\n", "ab".repeat(32)),
    )
    .unwrap();
    let v = logcut(&["verify", d, "--key-file", vkp]);
    assert_eq!(v.status.code(), Some(1));
    std::fs::write(&vk_path, "nonsense").unwrap();
    let v = logcut(&["verify", d, "--key-file", vkp]);
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stderr).contains("not a logcut verification key"));
    std::fs::remove_file(&vk_path).unwrap();
}

#[test]
fn cat_into_a_closed_pipe_exits_quietly() {
    let dir = TempDir::new("pipeclose");
    let input: Vec<u8> = (0..200_000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    assert!(write_input(&dir.0, &[], &input).status.success());
    let mut child = Command::new(BIN)
        .args(["cat", dir.0.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
}

#[test]
fn demo_runs_and_verifies() {
    let dir = TempDir::new("demo");
    let out = logcut(&[
        "demo",
        "--dir",
        dir.0.to_str().unwrap(),
        "--seconds",
        "1",
        "--rate",
        "20000",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ok: every record exactly once"), "{text}");
    assert!(text.contains("lost:             0"), "{text}");
}

#[test]
fn run_captures_both_streams_and_exits_with_the_programs_status() {
    let dir = TempDir::new("run");
    let out = Command::new(BIN)
        .args([
            "run",
            "--dir",
            dir.0.to_str().unwrap(),
            "--stderr-name",
            "err",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "echo out1; echo err1 >&2; printf 'out2 no newline'; exit 3",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cat = |name: &str| logcut(&["cat", dir.0.to_str().unwrap(), "--name", name]).stdout;
    assert_eq!(cat("app"), b"out1\nout2 no newline");
    assert_eq!(cat("err"), b"err1\n");
    assert!(
        logcut(&["verify", dir.0.to_str().unwrap()])
            .status
            .success()
    );
}

#[test]
fn run_forwards_sigterm_to_the_program() {
    let dir = TempDir::new("runterm");
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--dir",
            dir.0.to_str().unwrap(),
            "--mode",
            "direct",
            "--",
        ])
        .args([
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; read x",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    // Direct mode: "ready" is in the active file as soon as it is logged.
    let active = dir.0.join("app.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read(&active).is_ok_and(|d| d.starts_with(b"ready\n")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the program never started"
        );
        std::thread::yield_now();
    }
    // Keep the program's input open: `wait` would close it, and `read`
    // would end the program before the signal does.
    let stdin = child.stdin.take();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(7));
    assert_eq!(
        logcut(&["cat", dir.0.to_str().unwrap()]).stdout,
        b"ready\ngot-term\n"
    );
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn metrics_are_served_in_prometheus_text_format_when_asked() {
    let dir = TempDir::new("metrics");
    // A free loopback port (the tiny race with another process taking it
    // meanwhile would only fail this test, loudly).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .args([
            "write",
            "--dir",
            dir.0.to_str().unwrap(),
            "--mode",
            "direct",
        ])
        .args(["--metrics", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..100 {
        writeln!(stdin, "line {i}").unwrap();
    }
    stdin.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body = loop {
        if let Some(b) = http_get(port, "/metrics") {
            if b.contains("logcut_records_total{log=\"app\"} 100\n") {
                break b;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metrics with 100 records"
        );
        std::thread::yield_now();
    };
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains("# TYPE logcut_rotations_total counter"),
        "{body}"
    );
    assert!(
        body.contains("logcut_records_lost_total{log=\"app\"} 0"),
        "{body}"
    );
    assert!(
        body.contains(
            "# TYPE logcut_cuts_deferred_total counter\nlogcut_cuts_deferred_total{log=\"app\"} "
        ),
        "{body}"
    );
    // Shipping's figures are there (zero: this log does not ship).
    assert!(
        body.contains("logcut_ship_backlog_segments{log=\"app\"} 0\n"),
        "{body}"
    );
    assert!(
        http_get(port, "/other")
            .unwrap()
            .starts_with("HTTP/1.1 404")
    );
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// A free loopback port (the tiny race with another process taking it
/// meanwhile would only fail a test, loudly).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `logcut write --metrics 127.0.0.1:PORT` on `dir`, with its input.
fn write_with_metrics(
    dir: &Path,
    port: u16,
    extra: &[&str],
) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = Command::new(BIN)
        .args(["write", "--dir", dir.to_str().unwrap()])
        .args(["--metrics", &format!("127.0.0.1:{port}")])
        .args(extra)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// Scrapes until the body contains `want` (30 s at most).
fn scrape_until(port: u16, want: &str) -> String {
    scrape_until_with(port, want, |b| b.contains(want))
}

/// Scrapes until `done(body)` (30 s at most; then fails naming `what`).
fn scrape_until_with(port: u16, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(b) = http_get(port, "/metrics") {
            if done(&b) {
                return b;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no metrics with {what}"
        );
        std::thread::yield_now();
    }
}

/// The value of the sample `name` (with its labels) in a scrape.
fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        .parse()
        .unwrap()
}

#[test]
fn buffered_mode_times_its_writes_in_the_latency_summary() {
    let dir = TempDir::new("metrics-latency");
    let port = free_port();
    // Buffered is the default.
    let (mut child, mut stdin) = write_with_metrics(&dir.0, port, &[]);
    for i in 0..3_200 {
        writeln!(stdin, "line {i}").unwrap();
    }
    stdin.flush().unwrap();
    // A batch is timed once it is in the buffer, just after its records
    // are counted: wait for the samples.
    let count = "logcut_write_latency_seconds_count{log=\"app\"}";
    let body = scrape_until_with(port, "100 latency samples", |b| {
        b.contains(count) && sample(b, count) >= 100.0
    });
    assert!(
        body.contains("logcut_records_total{log=\"app\"} 3200\n"),
        "{body}"
    );
    assert!(
        body.contains("# TYPE logcut_write_latency_seconds summary\n"),
        "{body}"
    );
    // One record in 32 is timed; `write` hands its input over from one
    // thread, so 3,200 lines are 100 samples.
    assert_eq!(sample(&body, count), 100.0, "{body}");
    assert!(
        sample(&body, "logcut_write_latency_seconds_sum{log=\"app\"}") > 0.0,
        "{body}"
    );
    for q in ["0.5", "0.99", "0.999"] {
        let name = format!("logcut_write_latency_seconds{{log=\"app\",quantile=\"{q}\"}}");
        assert!(sample(&body, &name) > 0.0, "{body}");
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// Reads `conn` to its end (10 s at most).
fn read_to_end(conn: &mut std::net::TcpStream) -> Vec<u8> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    match conn.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
    got
}

/// Whether the server still holds `conn` open (nothing to read, no end).
fn still_open(conn: &std::net::TcpStream) -> bool {
    conn.set_nonblocking(true).unwrap();
    let open = matches!(
        (&*conn).read(&mut [0u8; 64]),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    );
    conn.set_nonblocking(false).unwrap();
    open
}

#[test]
fn slow_and_idle_clients_do_not_hold_up_a_scrape() {
    use std::net::TcpStream;
    let dir = TempDir::new("metrics-slow");
    let port = free_port();
    let (mut child, stdin) = write_with_metrics(&dir.0, port, &[]);
    // A bound on failure only (the whole test, less the 2 s it waits for
    // the server to time out a request): nothing else waits unless the
    // server does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let left = || {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "the server is too slow");
        left
    };
    let connect = || TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), left()).unwrap();
    scrape_until(port, "logcut_records_total{log=\"app\"} 0\n");
    let scrape = || {
        let mut s = connect();
        s.set_read_timeout(Some(left())).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
        assert!(
            body.contains("logcut_records_total{log=\"app\"} 0\n"),
            "{body}"
        );
    };

    // Half a request, held; 200 connections that send nothing.
    let opened = std::time::Instant::now();
    let mut half = connect();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHo").unwrap();
    let idle: Vec<TcpStream> = (0..200).map(|_| connect()).collect();
    scrape();
    // Served while the others wait: they are still open.
    assert!(still_open(&half));
    assert!(idle.iter().all(still_open));

    // Each has 2 s in all to send its request, then is told and closed.
    let got = read_to_end(&mut half);
    assert!(
        got.starts_with(b"HTTP/1.1 408 "),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let waited = opened.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(1_900),
        "{waited:?}"
    );
    for mut c in idle {
        read_to_end(&mut c);
    }

    // At most 256 connections: past that, the oldest still sending its
    // request is closed at once, and a scrape gets through.
    let crowd: Vec<TcpStream> = (0..300).map(|_| connect()).collect();
    scrape();
    let mut first = crowd.into_iter();
    let mut oldest = first.next().unwrap();
    assert_eq!(read_to_end(&mut oldest), b"", "closed without an answer");
    assert!(still_open(&first.next_back().unwrap()));
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn metrics_on_a_non_loopback_address_warn_once() {
    let dir = TempDir::new("metrics-warn");
    let d = dir.0.to_str().unwrap();
    let out = write_input(&dir.0, &["--metrics", "0.0.0.0:0"], b"one\n");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("logcut: warning: --metrics 0.0.0.0:")
            && err.contains("not a loopback address"),
        "{err}"
    );
    let out = write_input(&dir.0, &["--metrics", "127.0.0.1:0"], b"two\n");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(logcut(&["cat", d]).stdout, b"one\ntwo\n");
}

// === cat --since / --until ===

/// A log of four segments, each the active one for one hour from `t0`:
/// "seg1\n" from t0 to t0+1h, ... "seg4\n" from t0+3h to t0+4h.
fn four_hourly_segments(dir: &Path, t0: jiff::Timestamp) {
    let clock = logcut::ManualClock::new(t0);
    let a = logcut::Appender::builder()
        .dir(dir)
        .clock(clock.clone())
        .build()
        .unwrap();
    for i in 1..=4 {
        a.write_record(format!("seg{i}\n").as_bytes()).unwrap();
        clock.advance(std::time::Duration::from_secs(3600));
        if i < 4 {
            a.rotate().unwrap();
        }
    }
    a.shutdown().unwrap();
}

#[test]
fn cat_since_until_select_the_segments_that_overlap_the_range() {
    let dir = TempDir::new("since");
    four_hourly_segments(&dir.0, "2026-11-24T10:00:00Z".parse().unwrap());
    let d = dir.0.to_str().unwrap();
    let cat = |extra: &[&str]| {
        let mut args = vec!["cat", d];
        args.extend_from_slice(extra);
        let o = logcut(&args);
        assert!(
            o.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(cat(&[]), "seg1\nseg2\nseg3\nseg4\n");
    assert_eq!(
        cat(&[
            "--since",
            "2026-11-24T11:30:00Z",
            "--until",
            "2026-11-24T12:30:00Z"
        ]),
        "seg2\nseg3\n"
    );
    // Both ends are included: seg1 ends at 11:00, seg2 starts then.
    assert_eq!(cat(&["--until", "2026-11-24T11:00:00Z"]), "seg1\nseg2\n");
    assert_eq!(cat(&["--since", "2026-11-24T13:00:01Z"]), "seg4\n");
    // Any offset is accepted: 13:30+01:00 is 12:30Z.
    assert_eq!(
        cat(&["--since", "2026-11-24T13:30:00+01:00"]),
        "seg3\nseg4\n"
    );
    assert_eq!(cat(&["--since", "2026-11-24T14:00:01Z"]), "");
    assert_eq!(cat(&["--until", "2026-11-24T09:59:59Z"]), "");
}

#[test]
fn cat_since_takes_a_duration_meaning_that_long_ago() {
    let dir = TempDir::new("sinceago");
    let now = jiff::Timestamp::now();
    // Segments from 10 h ago to 6 h ago.
    four_hourly_segments(&dir.0, now - jiff::SignedDuration::from_hours(10));
    let cat = |since: &str| {
        let o = logcut(&["cat", dir.0.to_str().unwrap(), "--since", since]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(cat("7h30m"), "seg3\nseg4\n");
    assert_eq!(cat("1d"), "seg1\nseg2\nseg3\nseg4\n");
    assert_eq!(cat("5h"), "");
}

#[test]
fn bad_times_and_empty_ranges_are_usage_errors() {
    let dir = TempDir::new("badtime");
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = dir.0.to_str().unwrap();
    for args in [
        &["cat", d, "--since", "yesterday"][..],
        &["cat", d, "--until", "2026-11-24 10:00"],
        &["cat", d, "--since", "1h", "--until", "2h"],
        &["cat", d, "--follow", "--until", "1h"],
    ] {
        let o = logcut(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.is_empty(), "{args:?}");
    }
    let o = logcut(&["cat", d, "--since", "tomorrow"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not a time"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

// === cat --follow ===

/// A `logcut cat --follow` process whose output arrives on a channel.
struct Follower {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    got: Vec<u8>,
    /// What it says on standard error, once it exits.
    err: Option<std::thread::JoinHandle<String>>,
}

impl Follower {
    fn start(dir: &Path) -> Follower {
        Follower::spawn(dir, &[])
    }

    /// `logcut cat --follow DIR` with `extra` arguments.
    fn spawn(dir: &Path, extra: &[&str]) -> Follower {
        let mut child = Command::new(BIN)
            .args(["cat", "--follow", dir.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Follower {
            child,
            rx,
            got: Vec::new(),
            err: Some(err),
        }
    }

    /// Waits for it to exit by itself (`--until-closed`), failing after a
    /// minute; returns everything it printed and what it said on standard
    /// error.
    fn finish(mut self) -> (Vec<u8>, String) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.got.extend_from_slice(&chunk),
                // Its output closed: it exited.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "the follower did not exit; it printed {} bytes; last: {:?}",
                        self.got.len(),
                        String::from_utf8_lossy(&self.got[self.got.len().saturating_sub(200)..])
                    );
                }
            }
        }
        let status = self.child.wait().unwrap();
        let err = self.err.take().unwrap().join().unwrap();
        assert!(status.success(), "{status:?}: {err}");
        (std::mem::take(&mut self.got), err)
    }

    /// Waits until at least `len` bytes arrived (or fails after a while).
    fn wait_for(&mut self, len: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.got.len() < len {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.got.extend_from_slice(&chunk),
                Err(e) => panic!(
                    "the follower printed {} of {len} bytes ({e}); last: {:?}",
                    self.got.len(),
                    String::from_utf8_lossy(&self.got[self.got.len().saturating_sub(200)..])
                ),
            }
        }
    }

    /// Stops it with SIGTERM; returns everything it printed.
    fn stop(mut self) -> Vec<u8> {
        assert_eq!(
            // SAFETY: sending a signal to our own child process.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        // Whatever it printed before exiting is in the channel by now.
        while let Ok(chunk) = self.rx.recv() {
            self.got.extend_from_slice(&chunk);
        }
        self.got
    }
}

fn sealed_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            let n = n.to_string_lossy();
            n.starts_with("app.") && n.ends_with(".log") && n != "app.log"
        })
        .count()
}

#[test]
fn follow_prints_every_record_once_across_rotations_while_writing() {
    let dir = TempDir::new("follow");
    for mode in ["direct", "buffered"] {
        let _ = std::fs::remove_dir_all(&dir.0);
        let mut writer = Command::new(BIN)
            .args(["write", "--dir", dir.0.to_str().unwrap()])
            .args(["--max-size", "1KiB", "--mode", mode])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = writer.stdin.take().unwrap();
        let mut expected = Vec::new();
        let mut id = 0u32;
        let mut batch = |stdin: &mut std::process::ChildStdin, expected: &mut Vec<u8>, n| {
            let b = records(&mut id, n);
            stdin.write_all(&b).unwrap();
            stdin.flush().unwrap();
            expected.extend_from_slice(&b);
        };
        // A backlog of several segments before the follower starts.
        batch(&mut stdin, &mut expected, 100);
        let mut f = Follower::start(&dir.0);
        f.wait_for(expected.len());
        // Then batches that each cross a rotation or more, while it follows.
        for _ in 0..20 {
            batch(&mut stdin, &mut expected, 37);
            f.wait_for(expected.len());
        }
        // The writer ends: its last segment is sealed under the follower.
        drop(stdin);
        assert!(writer.wait().unwrap().success());
        assert!(sealed_count(&dir.0) >= 10, "{mode}: too few rotations");
        // A new run of the writer continues the same log.
        let b = records(&mut id, 200);
        let out = write_input(&dir.0, &["--max-size", "1KiB", "--mode", mode], &b);
        assert!(out.status.success());
        expected.extend_from_slice(&b);
        f.wait_for(expected.len());
        let got = f.stop();
        assert!(
            got == expected,
            "{mode}: the follower printed {} bytes, {} expected; first difference at {:?}",
            got.len(),
            expected.len(),
            got.iter().zip(&expected).position(|(a, b)| a != b)
        );
        assert_eq!(logcut(&["cat", dir.0.to_str().unwrap()]).stdout, expected);
    }
}

/// `n` numbered lines of varied length, from `*id` on.
fn records(id: &mut u32, n: u32) -> Vec<u8> {
    tagged("record", id, n)
}

/// `n` lines of writer `tag` from `*id` on: `tagged_line(tag, id)` each.
fn tagged(tag: &str, id: &mut u32, n: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for _ in 0..n {
        b.extend(tagged_line(tag, u64::from(*id)));
        *id += 1;
    }
    b
}

/// Line `id` of writer `tag`: `<tag> <id> x...`, of varied length.
fn tagged_line(tag: &str, id: u64) -> Vec<u8> {
    format!("{tag} {id:06} {}\n", "x".repeat((id % 40) as usize)).into_bytes()
}

/// The lines `records` and `tagged` make, for the parser.
const TAGGED: Format<'static> = Format::Lines(&|tag, id| Some(tagged_line(tag, id)));

#[test]
fn follow_into_a_closed_pipe_exits_quietly() {
    let dir = TempDir::new("followpipe");
    assert!(write_input(&dir.0, &[], b"one\ntwo\n").status.success());
    let mut child = Command::new(BIN)
        .args(["cat", "--follow", dir.0.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert_eq!(&first, b"one\ntwo\n");
    // Nothing more will come: the follower must notice the reader left
    // while it waits, not only when it next writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
}

/// Issue 10: with compression on, each sealed segment is replaced by a new
/// (compressed) file and its original removed, and at shutdown the last
/// segment is renamed, sealed and compressed, all under the follower. Before
/// each batch the follower has printed everything, so it reads the active
/// file; each batch then cuts it, and compresses and removes it, usually
/// before the follower looks again.
#[test]
fn follow_prints_every_record_once_while_segments_are_compressed() {
    for mode in [logcut::Mode::Direct, logcut::Mode::Buffered] {
        let dir = TempDir::new(&format!("follow-zstd-{mode:?}"));
        // Started before the log exists: it waits for the log, then for its
        // writer to close it.
        let mut f = Follower::spawn(&dir.0, &["--until-closed"]);
        let a = logcut::Appender::builder()
            .dir(&dir.0)
            .max_size(16 << 10)
            .mode(mode)
            .compress(logcut::Compression::zstd())
            // Time to finish the compressions at the end, under load.
            .shutdown_timeout(std::time::Duration::from_secs(120))
            .build()
            .unwrap();
        let mut id = 0;
        let mut expected = Vec::new();
        for _ in 0..30 {
            let b = records(&mut id, 1500);
            for line in b.split_inclusive(|c| *c == b'\n') {
                a.write_record(line).unwrap();
            }
            a.flush_records().unwrap();
            expected.extend_from_slice(&b);
            f.wait_for(expected.len());
        }
        a.shutdown().unwrap();
        let (got, err) = f.finish();
        // Every line whole, each id once, in order.
        let r = Parser::new(TAGGED).parse(&got);
        assert_eq!(
            r.counts(),
            [("record".to_string(), u64::from(id))].into(),
            "{mode:?}"
        );
        assert!(got == expected, "{mode:?}: the bytes differ");
        assert!(!err.contains("not printed"), "{mode:?}: {err}");
        // Started after the shutdown, which left the last segment at
        // app.log too: the same bytes, that segment once.
        let (late, err) = Follower::spawn(&dir.0, &["--until-closed"]).finish();
        assert!(late == expected, "{mode:?}: a late follower differs: {err}");
        let compressed = std::fs::read_dir(&dir.0)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "zst")
            })
            .count();
        assert!(
            compressed >= 50,
            "{mode:?}: only {compressed} compressed segments"
        );
        assert_eq!(logcut(&["cat", dir.0.to_str().unwrap()]).stdout, expected);
    }
}

/// Two `logcut write --shared` processes (one Direct, one Buffered) on one
/// log, cutting it by size, with segments sealed by either, in any order:
/// the follower prints exactly what `cat` prints afterwards, every line of
/// each writer once, in order.
#[test]
fn follow_a_shared_log_of_two_writers() {
    let dir = TempDir::new("follow-shared");
    let d = dir.0.to_str().unwrap();
    let mut f = Follower::spawn(&dir.0, &["--until-closed"]);
    let mut writers: Vec<_> = ["direct", "buffered"]
        .into_iter()
        .map(|mode| {
            Command::new(BIN)
                .args(["write", "--dir", d, "--shared", "--max-size", "4KiB"])
                .args(["--mode", mode])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut stdins: Vec<_> = writers
        .iter_mut()
        .map(|w| w.stdin.take().unwrap())
        .collect();
    let mut ids = [0u64; 2];
    let mut total = 0;
    for round in 0..40 {
        for (w, stdin) in stdins.iter_mut().enumerate() {
            let mut b = Vec::new();
            for _ in 0..(50 + 7 * ((round + w) % 5)) {
                writeln!(
                    b,
                    "w{w} {:06} {}",
                    ids[w],
                    "y".repeat((ids[w] % 30) as usize)
                )
                .unwrap();
                ids[w] += 1;
            }
            stdin.write_all(&b).unwrap();
            stdin.flush().unwrap();
            total += b.len();
        }
        f.wait_for(total);
    }
    drop(stdins);
    for mut w in writers {
        assert!(w.wait().unwrap().success());
    }
    let (got, err) = f.finish();
    // Every line whole, each writer's ids once, in order.
    let line = |tag: &str, id: u64| {
        let w = ["w0", "w1"].contains(&tag);
        w.then(|| format!("{tag} {id:06} {}\n", "y".repeat((id % 30) as usize)).into_bytes())
    };
    let r = Parser::new(Format::Lines(&line)).parse(&got);
    assert_eq!(
        r.counts(),
        [("w0".to_string(), ids[0]), ("w1".to_string(), ids[1])].into()
    );
    assert!(!err.contains("not printed"), "{err}");
    assert!(sealed_count(&dir.0) >= 20, "too few rotations");
    assert!(
        got == logcut(&["cat", d]).stdout,
        "the follower and cat differ"
    );
    let v = logcut(&["verify", d]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

/// In a shared log a segment is sealed by the process that cut it, once
/// every writer has left it; if that process gives up waiting at its
/// shutdown (or is killed), the segment is never recorded while the
/// others go on, and later segments are. Here `a` cuts segment 1 and shuts
/// down while `c` still writes 1; `b` cuts and seals 2. The follower,
/// started then, prints 1 first, then 2 once `c` has left 1 (nobody ever
/// seals it: the next appender that starts alone records it).
#[test]
fn follow_a_shared_log_whose_segments_are_sealed_out_of_order() {
    let dir = TempDir::new("follow-shared-order");
    let build = |timeout_ms| {
        logcut::Appender::builder()
            .dir(&dir.0)
            .manual_only()
            .shared(true)
            .watch_interval(Some(std::time::Duration::from_secs(3600)))
            .shutdown_timeout(std::time::Duration::from_millis(timeout_ms))
            .build()
            .unwrap()
    };
    let (a, b, c) = (build(100), build(5000), build(5000));
    let mut ids = [0u64; 3];
    let mut write = |w: usize, ap: &logcut::Appender, n| {
        let mut len = 0;
        for _ in 0..n {
            let tag = ["a", "b", "c"][w];
            let line = format!("{tag} {:06} {}\n", ids[w], "z".repeat(w + 3));
            ap.write_record(line.as_bytes()).unwrap();
            ids[w] += 1;
            len += line.len();
        }
        len
    };
    let first = write(0, &a, 10) + write(1, &b, 10) + write(2, &c, 10);
    a.rotate().unwrap();
    b.reopen().unwrap();
    write(0, &a, 10);
    write(1, &b, 10);
    // `c` has not looked: it still writes 1, so `a` gives up sealing it.
    assert!(a.shutdown().is_err(), "a sealed 1 while c wrote it");
    b.rotate().unwrap();
    b.tick().unwrap();
    let m = logcut_format::manifest::Manifest::read(&dir.0.join("app.manifest")).unwrap();
    let sealed: Vec<u64> = m.seals().map(|s| s.seq).collect();
    assert_eq!(sealed, [2], "the state this test needs");
    let mut f = Follower::spawn(&dir.0, &["--until-closed"]);
    // It printed segment 1 as far as it goes.
    f.wait_for(first);
    // `c` leaves 1 for 3.
    c.reopen().unwrap();
    write(2, &c, 10);
    write(1, &b, 5);
    b.shutdown().unwrap();
    c.shutdown().unwrap();
    let (got, err) = f.finish();
    // Every line whole, each writer's ids once, in order.
    let tags = ["a", "b", "c"];
    let line = |tag: &str, id: u64| {
        let w = tags.iter().position(|t| *t == tag)?;
        Some(format!("{tag} {id:06} {}\n", "z".repeat(w + 3)).into_bytes())
    };
    let r = Parser::new(Format::Lines(&line)).parse(&got);
    assert_eq!(
        r.counts(),
        tags.iter()
            .zip(ids)
            .map(|(t, n)| (t.to_string(), n))
            .collect()
    );
    assert!(!err.contains("not printed"), "{err}");
    // The next appender alone records segment 1; then `cat` has the log's
    // order too.
    let fix = logcut::Appender::builder().dir(&dir.0).build().unwrap();
    fix.shutdown().unwrap();
    let cat = logcut(&["cat", dir.0.to_str().unwrap()]).stdout;
    assert!(
        got == cat,
        "the follower printed\n{}\ncat printed\n{}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&cat)
    );
}

/// Retention deletes segments faster than the follower reads them: its
/// output is a pipe nobody reads while the writer writes and `--keep 1`
/// deletes all but the newest sealed segment. The segment it has open is
/// printed whole (deletion while reading loses nothing); each one deleted
/// before it could be opened is named on standard error with its record
/// count, and those counts and what was printed add up to what was written.
#[test]
fn follow_reports_the_segments_retention_deleted_before_it_read_them() {
    use std::io::BufRead;
    let dir = TempDir::new("follow-keep");
    let mut child = Command::new(BIN)
        .args(["cat", "--follow", "--until-closed", dir.0.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let a = logcut::Appender::builder()
        .dir(&dir.0)
        .max_size(256 << 10)
        .compress(logcut::Compression::zstd())
        .keep(1)
        .build()
        .unwrap();
    let mut id = 0;
    let mut write = |n| {
        for line in records(&mut id, n).split_inclusive(|c| *c == b'\n') {
            a.write_record(line).unwrap();
        }
    };
    // Less than a segment (nothing is cut, so nothing deleted, before the
    // follower starts), more than the pipe holds: once the first line
    // arrived, the follower is blocked writing the rest.
    write(5_000);
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert!(first.starts_with("record 000000 "), "{first:?}");
    // About 14 segments, all but the last one sealed deleted.
    write(100_000);
    a.shutdown().unwrap();
    drop(a);
    let total = u64::from(id);
    let mut got = first.into_bytes();
    out.read_to_end(&mut got).unwrap();
    assert!(child.wait().unwrap().success());
    let err = err.join().unwrap();

    // Every line whole, in order, none twice; whole segments missing.
    let r = Parser::new(TAGGED).gaps().parse(&got);
    assert!(r.tags().iter().all(|t| *t == "record"), "{:?}", r.tags());
    let printed = r.ids("record").to_vec();
    let m = logcut_format::manifest::Manifest::read(&dir.0.join("app.manifest")).unwrap();
    let deleted = m.deleted();
    let seals: std::collections::HashMap<u64, _> = m.seals().map(|s| (s.seq, s)).collect();
    let mut reported = 0u64;
    let mut segments = 0u64;
    let mut unprinted: Vec<std::ops::Range<u64>> = Vec::new();
    for line in err
        .lines()
        .filter(|l| l.contains("before it could be read"))
    {
        // logcut: segment <seq> (<file>, <n> records) was deleted by ...
        let seq: u64 = line.split(' ').nth(2).unwrap().parse().unwrap();
        let n: u64 = line
            .split(", ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(deleted.contains_key(&seq), "{line}: not deleted");
        assert!(line.contains("deleted by retention (count)"), "{line}");
        let s = seals[&seq];
        assert_eq!(s.records, Some(n), "{line}");
        let first = s.first.unwrap();
        unprinted.push(first..first + n);
        reported += n;
        segments += 1;
    }
    assert!(segments > 0, "nothing was deleted unread: {err}");
    // Every record is printed or in a reported segment, never both.
    assert_eq!(printed.len() as u64 + reported, total, "{err}");
    for id in &printed {
        assert!(
            !unprinted.iter().any(|r| r.contains(id)),
            "{id} printed and reported"
        );
    }
    assert!(
        err.contains(&format!(
            "{reported} records in {segments} segments could not be printed"
        )),
        "{err}"
    );
    // The follower printed every record still on disk (the last segments).
    let cat = logcut(&["cat", dir.0.to_str().unwrap()]).stdout;
    assert!(got.ends_with(&cat), "the segments kept were not printed");
}

// === --config ===

/// Sealed segments of `dir` named `<prefix>...log` (not the active name
/// `<prefix>log`, which stays as a second name of the last one after a
/// shutdown).
fn logs_named(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name();
            let n = n.to_string_lossy();
            n.starts_with(prefix) && n.ends_with(".log") && n != format!("{prefix}log")
        })
        .count()
}

/// `a` and `b` are the same file (two names of one inode).
fn assert_same_file(a: &Path, b: &Path) {
    use std::os::unix::fs::MetadataExt;
    let (ma, mb) = (std::fs::metadata(a).unwrap(), std::fs::metadata(b).unwrap());
    assert_eq!(
        (ma.dev(), ma.ino()),
        (mb.dev(), mb.ino()),
        "{} and {}",
        a.display(),
        b.display()
    );
}

#[test]
fn config_file_values_apply_and_flags_override_them() {
    let dir = TempDir::new("config");
    std::fs::create_dir_all(&dir.0).unwrap();
    let logs = dir.0.join("logs");
    let cfg = dir.0.join("logcut.toml");
    std::fs::write(
        &cfg,
        format!(
            "# a comment\ndir = {:?}\nname = \"web\"\nmax_size = \"1KiB\"\nmode = \"direct\"\n\
             max_line = 4096\nfsync = \"never\"\ngrace = \"1s\"\ninterval = \"1d\"\ntz = \"UTC\"\n",
            logs.to_str().unwrap()
        ),
    )
    .unwrap();
    let input: Vec<u8> = (0..500)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let run = |extra: &[&str]| {
        let mut child = Command::new(BIN)
            .args(["write", "--config", cfg.to_str().unwrap()])
            .args(extra)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // From the file: the directory, the name, 1 KiB segments.
    run(&[]);
    assert!(logs_named(&logs, "web.") > 3, "max_size from the file");
    let cat = |name: &str| logcut(&["cat", logs.to_str().unwrap(), "--name", name]).stdout;
    assert_eq!(cat("web"), input);
    // Flags win: another name, and no size limit (one segment).
    run(&["--name", "other", "--max-size", "none"]);
    assert_eq!(logs_named(&logs, "other."), 1);
    assert_eq!(cat("other"), input);
    assert!(logcut(&["verify", logs.to_str().unwrap()]).status.success());
    // `run` reads the same keys, and stderr_name.
    std::fs::write(
        &cfg,
        format!(
            "dir = {:?}\nname = \"out\"\nstderr_name = \"err\"\n",
            logs.to_str().unwrap()
        ),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["run", "--config", cfg.to_str().unwrap(), "--"])
        .args(["sh", "-c", "echo to-out; echo to-err >&2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(cat("out"), b"to-out\n");
    assert_eq!(cat("err"), b"to-err\n");
}

#[test]
fn bad_config_files_are_one_line_usage_errors() {
    let dir = TempDir::new("badconfig");
    std::fs::create_dir_all(&dir.0).unwrap();
    let cfg = dir.0.join("bad.toml");
    let check_any = |text: &str, cmd: &str, wants: &[&str]| {
        std::fs::write(&cfg, text).unwrap();
        let mut args = vec![cmd, "--config", cfg.to_str().unwrap()];
        if cmd == "run" {
            args.extend(["--", "true"]);
        }
        let o = logcut(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for w in wants {
            assert!(err.contains(w), "{text:?}: {err} lacks {w:?}");
        }
        err.into_owned()
    };
    let check = |text: &str, cmd: &str, wants: &[&str]| {
        let err = check_any(text, cmd, wants);
        assert!(err.contains("bad.toml"), "{err}");
    };
    let d = format!("dir = {:?}\n", dir.0.join("logs").to_str().unwrap());
    check(
        &format!("{d}max_sise = \"1MiB\"\n"),
        "write",
        &["line 2", "unknown field `max_sise`"],
    );
    check(
        &format!("{d}\nmax_size = \"ten\"\n"),
        "write",
        &["line 3", "max_size", "not a size"],
    );
    check(
        &format!("{d}grace = \"soon\"\n"),
        "run",
        &["line 2", "grace", "not a duration"],
    );
    check(
        &format!("{d}mode = 5\n"),
        "write",
        &["line 2", "invalid type"],
    );
    check("dir = \n", "write", &["line 1"]);
    check(
        &format!("{d}stderr_name = \"e\"\n"),
        "write",
        &["stderr_name", "`logcut run` only"],
    );
    // Values the flags' parsers accept but that are not valid settings
    // are reported with their line too.
    check(
        &format!("{d}max_line = 0\n"),
        "write",
        &["line 2", "max_line", "zero"],
    );
    check(
        &format!("{d}\nmax_total = \"0\"\n"),
        "write",
        &["line 3", "max_total", "zero"],
    );
    check(
        &format!("{d}max_age = \"0s\"\n"),
        "write",
        &["line 2", "max_age", "zero"],
    );
    check_any("name = \"x\"\n", "write", &["no log directory"]);
    std::fs::remove_file(&cfg).unwrap();
    let o = logcut(&["write", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read the config file"));
}

// === memory ===

/// Peak resident memory of process `pid` in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap()
}

#[test]
fn write_stays_under_32_mib_of_memory_at_full_speed() {
    if !Path::new("/proc/self/status").exists() {
        return;
    }
    let dir = TempDir::new("rss");
    let mut child = Command::new(BIN)
        .args(["write", "--dir", dir.0.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // 200 MB of lines of mixed length, written as fast as the logger reads.
    let mut chunk = Vec::with_capacity(1 << 20);
    let mut i = 0u64;
    while chunk.len() < (1 << 20) - 300 {
        writeln!(chunk, "{i:010} {}", "y".repeat((i % 200) as usize)).unwrap();
        i += 1;
    }
    let mut written = 0usize;
    while written < 200_000_000 {
        stdin.write_all(&chunk).unwrap();
        written += chunk.len();
    }
    // The pipe holds at most a little of it: the logger has read and
    // handled nearly all the input, and is still alive.
    let peak = peak_rss_kib(child.id());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(peak < 32 << 10, "peak RSS {peak} KiB is not under 32 MiB");
    let v = logcut(&["verify", dir.0.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

/// `logcut rotate` cuts the running writer (through its trigger file) and
/// returns once the new segment is in place; with nobody writing it exits
/// 1 and says so. SIGHUP after an external rename continues in a new file.
#[test]
fn rotate_cuts_the_running_writer_and_sighup_reopens() {
    let tmp = TempDir::new("rotate");
    let dir = tmp.0.join("log");
    let d = dir.to_str().unwrap();
    let out = logcut(&["rotate", "--dir", d]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nobody is writing"), "{err}");

    let mut writer = Command::new(BIN)
        .args([
            "write",
            "--dir",
            d,
            "--max-size",
            "none",
            "--mode",
            "direct",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    let mut f = Follower::start(&dir);
    let mut id = 0u32;
    let mut expected = Vec::new();
    for round in 1..=3 {
        let b = records(&mut id, 100);
        stdin.write_all(&b).unwrap();
        stdin.flush().unwrap();
        expected.extend_from_slice(&b);
        // In the file: the follower has read it.
        f.wait_for(expected.len());
        // Each form of naming the directory: --dir, -d and the argument.
        let form: &[&str] = match round {
            1 => &["rotate", "--dir", d],
            2 => &["rotate", "-d", d],
            _ => &["rotate", d],
        };
        let out = logcut(form);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("rotated: sealed"),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(sealed_count(&dir), round);
    }
    // Nothing written since the last cut: nothing to rotate.
    let out = logcut(&["rotate", "--dir", d]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to rotate"));
    assert_eq!(sealed_count(&dir), 3);
    // Records that will be moved away with the active file.
    let moved = records(&mut id, 50);
    stdin.write_all(&moved).unwrap();
    stdin.flush().unwrap();
    expected.extend_from_slice(&moved);
    f.wait_for(expected.len());
    assert_eq!(f.stop(), expected);
    std::fs::rename(dir.join("app.log"), tmp.0.join("app.log.1")).unwrap();
    // SAFETY: a signal to our own child process.
    assert_eq!(unsafe { libc::kill(writer.id() as i32, libc::SIGHUP) }, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !dir.join("app.log").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no new app.log after SIGHUP"
        );
        std::thread::yield_now();
    }
    let after = records(&mut id, 50);
    stdin.write_all(&after).unwrap();
    drop(stdin);
    assert!(writer.wait().unwrap().success());
    assert_eq!(std::fs::read(tmp.0.join("app.log.1")).unwrap(), moved);
    let cat = logcut(&["cat", d]).stdout;
    let mut want = expected[..expected.len() - moved.len()].to_vec();
    want.extend_from_slice(&after);
    assert_eq!(cat, want);
    let out = logcut(&["verify", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let status = String::from_utf8_lossy(&logcut(&["status", d]).stdout).into_owned();
    assert!(
        status.contains("moved away by someone else (logrotate, mv): 1"),
        "{status}"
    );
}

#[test]
fn compress_zstd_and_keep_n_leave_the_newest_lines_compressed() {
    // With time to finish the compressions at the end, under load.
    const OPTS: &[&str] = &[
        "--max-size",
        "64KiB",
        "--compress",
        "zstd",
        "--keep",
        "4",
        "--shutdown-timeout",
        "120s",
    ];
    let dir = TempDir::new("zstd-keep");
    let mut input = Vec::new();
    for i in 0..100_000u32 {
        writeln!(input, "line {i:08} GET /api/orders status=200").unwrap();
    }
    let out = write_input(&dir.0, OPTS, &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = dir.0.to_str().unwrap();
    let v = logcut(&["verify", "--json", d]);
    let json = String::from_utf8_lossy(&v.stdout).into_owned();
    assert!(v.status.success(), "{json}");
    let field = |k: &str| -> u64 {
        let rest = json.split(&format!("\"{k}\":")).nth(1).unwrap();
        rest.split([',', '}']).next().unwrap().parse().unwrap()
    };
    assert_eq!(field("segments"), 4, "{json}");
    // All but the last, which stays at app.log until the next start.
    assert_eq!(field("compressed_segments"), 3, "{json}");
    assert!(field("deleted_segments") > 0, "{json}");
    assert_eq!(
        field("records") + field("deleted_records"),
        100_000,
        "{json}"
    );
    // Only compressed segments and the manifest are left.
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // 4 segments and their indexes (by default with compression: the
    // deleted segments' went with them), the last one plain and at
    // app.log too, the manifest, the lock, error and trigger files.
    let kinds = |names: &[String]| {
        let zst = names.iter().filter(|n| n.ends_with(".log.zst")).count();
        let idx = names.iter().filter(|n| n.ends_with(".log.idx")).count();
        let plain = names.iter().filter(|n| n.ends_with(".log")).count();
        (zst, idx, plain, names.len())
    };
    assert_eq!(kinds(&names), (3, 4, 2, 13), "{names:?}");
    // The next start removes that name and compresses the segment.
    let again = write_input(&dir.0, OPTS, b"");
    assert!(again.status.success());
    let v = logcut(&["verify", "--json", d]);
    let after = String::from_utf8_lossy(&v.stdout).into_owned();
    assert!(v.status.success(), "{after}");
    assert!(
        after.contains("\"segments\":4,") && after.contains("\"compressed_segments\":4,"),
        "{after}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(kinds(&names), (4, 4, 0, 12), "{names:?}");
    // cat decompresses: the newest lines, whole and in order.
    let c = logcut(&["cat", d]);
    assert!(c.status.success());
    let kept = field("records") as usize;
    let tail: Vec<&[u8]> = input.split_inclusive(|b| *b == b'\n').collect();
    assert_eq!(c.stdout, tail[tail.len() - kept..].concat());
    let s = logcut(&["status", d]);
    let text = String::from_utf8_lossy(&s.stdout);
    assert!(text.contains("zstd"), "{text}");
    assert!(text.contains("deleted by retention"), "{text}");
}

#[test]
fn compression_options_are_checked() {
    let dir = TempDir::new("zstd-bad");
    let d = dir.0.to_str().unwrap();
    // Usage errors: exit 2.
    let out = logcut(&["write", "--dir", d, "--compress-level", "3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--compress-level needs"));
    let out = logcut(&[
        "write",
        "--dir",
        d,
        "--compress",
        "gzip",
        "--compress-level",
        "12",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("level 12 is out of range"));
    let out = logcut(&["write", "--dir", d, "--keep", "0"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn two_shared_writers_share_one_log_and_rotate_cuts_it() {
    let tmp = TempDir::new("shared");
    let dir = tmp.0.join("log");
    let d = dir.to_str().unwrap();
    let spawn = |mode: &str| {
        Command::new(BIN)
            .args(["write", "--dir", d, "--shared", "--max-size", "none"])
            .args(["--mode", mode])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut a = spawn("direct");
    let mut b = spawn("buffered");
    let (mut ia, mut ib) = (a.stdin.take().unwrap(), b.stdin.take().unwrap());
    // Writer a's lines are tagged a, writer b's b.
    let (mut id_a, mut id_b) = (0u32, 0u32);
    let mut f = Follower::start(&dir);
    let mut total = 0;
    for round in 1..=3 {
        let (ra, rb) = (tagged("a", &mut id_a, 100), tagged("b", &mut id_b, 100));
        ia.write_all(&ra).unwrap();
        ia.flush().unwrap();
        ib.write_all(&rb).unwrap();
        ib.flush().unwrap();
        total += ra.len() + rb.len();
        f.wait_for(total);
        let out = logcut(&["rotate", "--dir", d]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("rotated: sealed"),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            sealed_count(&dir),
            round,
            "{:?}\n{}",
            std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect::<Vec<_>>(),
            std::fs::read_to_string(dir.join("app.manifest")).unwrap_or_default()
        );
    }
    drop((ia, ib));
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    // The last one to leave sealed the last segment (the other's records
    // in it too).
    let out = logcut(&["verify", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!dir.join("app.log").exists());
    let all = logcut(&["cat", d]).stdout;
    assert_eq!(all.len(), total);
    // Every line whole, each writer's ids once, in order.
    let r = Parser::new(TAGGED).parse(&all);
    assert_eq!(
        r.counts(),
        [("a".to_string(), 300), ("b".to_string(), 300)].into()
    );
    assert_eq!(f.stop().len(), total);
}

// === issue 10: nothing is created for a refused call; no false "ok" ===

#[test]
fn invalid_names_create_nothing_before_they_are_refused() {
    let tmp = TempDir::new("badname");
    let out = tmp.0.join("out");
    let cfg_dir = tmp.0.join("cfg");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let d = out.join("logs").join("d");
    let d = d.to_str().unwrap();
    let check = |args: &[&str], wants: &str| {
        let o = logcut(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(wants), "{args:?}: {err} lacks {wants:?}");
        assert_eq!(tree(&out), Vec::<PathBuf>::new(), "{args:?} created files");
    };
    for name in ["../escaped", "sub/zz", ".", "..", "", ".hidden", "a b"] {
        check(&["write", "--dir", d, "--name", name], "invalid --name");
        check(
            &["run", "--dir", d, "--name", name, "--", "true"],
            "invalid --name",
        );
        check(
            &["run", "--dir", d, "--stderr-name", name, "--", "true"],
            "invalid --stderr-name",
        );
        check(&["cat", d, "--name", name], "invalid --name");
        check(&["rotate", "--dir", d, "--name", name], "invalid --name");
    }
    // Standard error into the log of standard output: refused too.
    check(
        &["run", "--dir", d, "--stderr-name", "app", "--", "true"],
        "--stderr-name",
    );
    // A NUL byte from a config file (no command line can hold one).
    let cfg = cfg_dir.join("nul.toml");
    for (key, wants) in [
        ("name", "invalid --name"),
        ("stderr_name", "invalid --stderr-name"),
        ("dir", "NUL"),
    ] {
        let dir_line = if key == "dir" {
            String::new()
        } else {
            format!("dir = {d:?}\n")
        };
        std::fs::write(&cfg, format!("{dir_line}{key} = \"a\\u0000b\"\n")).unwrap();
        check(
            &["run", "--config", cfg.to_str().unwrap(), "--", "true"],
            wants,
        );
    }
    // Other refused settings create nothing either.
    check(&["write", "--dir", d, "--tz", "Nowhere/City"], "--tz");
    check(
        &[
            "write",
            "--dir",
            d,
            "--compress",
            "gzip",
            "--compress-level",
            "12",
        ],
        "--compress-level",
    );
}

#[test]
fn verify_fails_and_cat_and_rotate_find_the_log_the_way_verify_does() {
    let tmp = TempDir::new("nolog");
    let empty = tmp.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"not a log\n").unwrap();
    let e = empty.to_str().unwrap();
    // Nothing checked is not "ok".
    for args in [&["verify", e][..], &["verify", "--json", e], &["cat", e]] {
        let o = logcut(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with(&format!("logcut: no log in {e}")), "{err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // One log, not called app: cat finds it, as verify does.
    let one = tmp.0.join("one");
    let o = write_input(&one, &["--name", "web"], b"a\nb\n");
    assert!(o.status.success());
    let one = one.to_str().unwrap();
    let o = logcut(&["cat", one]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, b"a\nb\n");
    assert!(logcut(&["verify", one]).status.success());
    // A name that is not there is an error, not empty output.
    let o = logcut(&["cat", one, "--name", "app"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no log app in") && err.contains("web"),
        "{err}"
    );
    // Several logs: which ones, and ask for --name.
    let o = write_input(Path::new(one), &["--name", "api"], b"c\n");
    assert!(o.status.success());
    for args in [&["cat", one][..], &["rotate", "--dir", one]] {
        let o = logcut(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("2 logs (api, web)") && err.contains("--name"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(logcut(&["cat", one, "--name", "api"]).stdout, b"c\n");
    // rotate with one log and nobody writing it: that log's writer is
    // looked for.
    let o = logcut(&["rotate", "--dir", tmp.0.join("none").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nobody is writing"));
}

#[test]
fn demo_refuses_a_directory_it_did_not_make_and_reruns_in_its_own() {
    let tmp = TempDir::new("demodir");
    let theirs = tmp.0.join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("important.txt"), b"keep me").unwrap();
    let o = logcut(&["demo", "--dir", theirs.to_str().unwrap(), "--seconds", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(tree(&theirs), [theirs.join("important.txt")]);
    // Its own directory: a second run starts afresh there, and leaves
    // what someone else put in it.
    let ours = tmp.0.join("ours");
    let demo = || {
        logcut(&[
            "demo",
            "--dir",
            ours.to_str().unwrap(),
            "--seconds",
            "1",
            "--rate",
            "2000",
        ])
    };
    assert!(demo().status.success());
    std::fs::write(ours.join("mine.txt"), b"mine").unwrap();
    let o = demo();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("ok: every record exactly once"), "{text}");
    assert_eq!(std::fs::read(ours.join("mine.txt")).unwrap(), b"mine");
}

#[test]
fn demo_runs_for_the_time_it_says_and_reports_the_rate_it_reached() {
    let dir = TempDir::new("demotime");
    let started = std::time::Instant::now();
    let o = logcut(&[
        "demo",
        "--dir",
        dir.0.to_str().unwrap(),
        "--seconds",
        "1",
        "--rate",
        "1000",
    ]);
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    // It used to write for 4 s (a thread slept until its next 1000
    // records were due); the shutdown and the checks after take little.
    assert!(took < std::time::Duration::from_secs(4), "{took:?}\n{text}");
    // "throughput: R records/s while writing (N records in S s; ...)".
    let line = text
        .lines()
        .find(|l| l.starts_with("throughput:"))
        .unwrap_or_else(|| panic!("{text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let rate: f64 = words[1].parse().unwrap();
    let secs: f64 = words[8].parse().unwrap();
    assert!(line.contains("while writing"), "{line}");
    assert!((0.95..1.3).contains(&secs), "{line}");
    assert!((800.0..1200.0).contains(&rate), "{line}");
    assert!(
        text.contains("to verify and read every record back"),
        "{text}"
    );
}

#[test]
fn errors_are_one_line_even_with_rust_backtrace_set() {
    let tmp = TempDir::new("backtrace");
    std::fs::create_dir_all(&tmp.0).unwrap();
    let file = tmp.0.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let f = file.to_str().unwrap();
    let sub = file.join("sub");
    let d = tmp.0.join("d");
    let d = d.to_str().unwrap();
    for (args, code) in [
        (&["verify", f][..], 1),
        (&["write", "--dir", sub.to_str().unwrap()], 1),
        (&["write", "--dir", d, "--name", "../x"], 2),
        (
            &["run", "--dir", f, "--name", "x", "--", "/no/such/prog"][..],
            1,
        ),
        (&["run", "--dir", d, "--", "/no/such/prog"], 127),
    ] {
        let o = Command::new(BIN)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LIB_BACKTRACE", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            !err.contains("Stack backtrace") && !err.contains("Caused by"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn run_exits_127_for_a_program_not_found_and_126_for_one_not_executable() {
    let tmp = TempDir::new("run127");
    let logs = tmp.0.join("logs");
    let bin = tmp.0.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let plain = bin.join("plain.sh");
    std::fs::write(&plain, "echo hi\n").unwrap();
    let no_interp = bin.join("no-interp");
    std::fs::write(&no_interp, "#!/no/such/interpreter\necho hi\n").unwrap();
    std::fs::set_permissions(
        &no_interp,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let l = logs.to_str().unwrap();
    let run = |prog: &str| {
        let o = logcut(&["run", "--dir", l, "--", prog, "arg"]);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    for (prog, code, says) in [
        ("/no/such/prog", 127, "no such file"),
        ("no-such-program-anywhere", 127, "command not found"),
        (plain.to_str().unwrap(), 126, "not executable"),
        (bin.to_str().unwrap(), 126, "is a directory"),
    ] {
        let (got, err) = run(prog);
        assert_eq!(got, Some(code), "{prog}: {err}");
        assert_eq!(err.lines().count(), 1, "{prog}: {err}");
        assert!(
            err.starts_with(&format!("logcut: cannot run {prog}: ")) && err.contains(says),
            "{prog}: {err}"
        );
        // Found out before any log was opened.
        assert!(!logs.exists(), "{prog}: created {:?}", tree(&logs));
    }
    // Found only when it is started (the kernel says so): still 127, and
    // the log that was opened is closed properly.
    let (got, err) = run(no_interp.to_str().unwrap());
    assert_eq!(got, Some(127), "{err}");
    assert!(err.contains("interpreter"), "{err}");
    assert!(logcut(&["verify", l]).status.success());
}

#[test]
fn a_repair_at_start_is_reported_as_a_repair() {
    let dir = TempDir::new("repair");
    assert!(write_input(&dir.0, &[], b"one\n").status.success());
    // What a crashed writer leaves: an active segment nobody sealed. (In
    // its place, since a clean shutdown leaves the last segment there.)
    std::fs::remove_file(dir.0.join("app.log")).unwrap();
    std::fs::write(dir.0.join("app.log"), b"left by a crash\n").unwrap();
    let o = write_input(&dir.0, &[], b"two\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.starts_with(&format!("logcut: recovered {}/app.", dir.0.display()))
            && err.contains("adopted app.log left by an earlier run")
            && !err.contains("failed"),
        "{err}"
    );
    assert_eq!(
        logcut(&["cat", dir.0.to_str().unwrap()]).stdout,
        b"one\nleft by a crash\ntwo\n"
    );
}

// === signals ===

/// Polls `cond` until it holds, failing after 30 s (a bound on failure
/// only; nothing waits unless the program under test is slow or wrong),
/// as the library tests' `kit::wait_for` does.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::yield_now();
    }
}

/// Sends `sig` to our child `child`.
fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Sends `sig` to the main thread of our child `child` (`tgkill`), so
/// that it is that thread, the one reading the input, whose wait the
/// signal interrupts, not some other thread of the process the kernel
/// might pick.
fn signal_main_thread(child: &std::process::Child, sig: i32) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: sending a signal to the main thread (tid = pid) of our own
    // child process.
    assert_eq!(unsafe { libc::syscall(libc::SYS_tgkill, pid, pid, sig) }, 0);
}

/// Stops our child `child` with SIGSTOP and returns once it is stopped.
fn stop(child: &std::process::Child) {
    signal(child, libc::SIGSTOP);
    let mut status = 0;
    // SAFETY: waiting for our own child; WUNTRACED reports the stop
    // without reaping it.
    let pid = unsafe { libc::waitpid(child.id() as i32, &mut status, libc::WUNTRACED) };
    assert_eq!(pid, child.id() as i32);
    assert!(libc::WIFSTOPPED(status), "not stopped: {status:#x}");
}

/// Lines `tagged_line(tag, i)` for `i` in `range`.
fn tagged_range(tag: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    range.flat_map(|i| tagged_line(tag, i)).collect()
}

/// `logcut write --dir DIR EXTRA...`, its input and standard error piped.
fn spawn_write(dir: &Path, extra: &[&str]) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = Command::new(BIN)
        .args(["write", "--dir", dir.to_str().unwrap()])
        .args(extra)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// Waits until the active file of `dir` holds exactly `want` (Direct
/// mode: a line is there once `write` has handed it over), failing at once
/// if `child` exits meanwhile.
fn wait_for_active(child: &mut std::process::Child, dir: &Path, want: &[u8]) {
    let active = dir.join("app.log");
    wait_for(
        &format!("{} bytes in {}", want.len(), active.display()),
        || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the writer exited ({status:?}) before its active file held {} bytes; it holds {:?}",
                    want.len(),
                    std::fs::read(&active).map(|d| d.len())
                );
            }
            std::fs::read(&active).is_ok_and(|d| d == want)
        },
    );
}

/// `verify DIR` passes and counts `records` records and none lost.
fn assert_verified(dir: &Path, records: usize) {
    let v = logcut(&["verify", dir.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{text}");
    assert!(
        text.contains(&format!(" {records} records, ")) && text.contains(" 0 lost\n"),
        "{text}"
    );
}

/// Standard error of `child`, read to its end on a thread of its own.
fn stderr_of(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    })
}

/// SIGINT, like SIGTERM: `write` goes on reading until the input ends,
/// writes every line once, seals its last segment and exits 0.
#[test]
fn sigint_drains_the_input_seals_and_exits_0() {
    let dir = TempDir::new("sigint");
    let (mut child, mut stdin) = spawn_write(&dir.0, &["--grace", "30s", "--max-size", "64KiB"]);
    let err = stderr_of(&mut child);
    let before = tagged_range("before", 0..20_000);
    stdin.write_all(&before).unwrap();
    signal(&child, libc::SIGINT);
    // The producer goes on writing: none of it may be dropped.
    let after = tagged_range("after", 0..20_000);
    stdin.write_all(&after).unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    let err = err.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "");
    let got = logcut(&["cat", dir.0.to_str().unwrap()]).stdout;
    let ids = Parser::new(TAGGED).parse(&got);
    assert_eq!(
        ids.counts(),
        [
            ("after".to_string(), 20_000),
            ("before".to_string(), 20_000)
        ]
        .into(),
        "each line once, in order"
    );
    assert!(got == [before, after].concat(), "the bytes differ");
    // Sealed: the last seal is the shutdown's, and its segment stays at
    // the active path too.
    let m = logcut_format::manifest::Manifest::read(&dir.0.join("app.manifest")).unwrap();
    let last = m.seals().last().unwrap();
    assert_eq!(last.reason, logcut::SealReason::Shutdown, "{last:?}");
    assert_same_file(&dir.0.join("app.log"), &dir.0.join(&last.file));
    assert_verified(&dir.0, 40_000);
}

/// With `--grace 0s`, SIGINT ends the reading at once, but only once the
/// input holds nothing more: what the producer put in the pipe before the
/// signal is written, down to a last line without its newline. The lines
/// are written while `write` is stopped, so they are all in the pipe,
/// unread, when the signal arrives, and the signal interrupts the reading
/// thread's wait. The producer keeps its end open: the input never ends.
#[test]
fn sigint_with_no_grace_still_writes_what_is_in_the_pipe() {
    let dir = TempDir::new("sigint-nograce");
    let (mut child, mut stdin) = spawn_write(&dir.0, &["--grace", "0s", "--mode", "direct"]);
    let err = stderr_of(&mut child);
    let first = tagged_range("first", 0..100);
    stdin.write_all(&first).unwrap();
    wait_for_active(&mut child, &dir.0, &first);
    stop(&child);
    // 1,000 lines (about 20 KB) fit in the pipe while nobody reads it.
    let mut queued = tagged_range("queued", 0..1_000);
    queued.extend_from_slice(b"queued, no newline");
    stdin.write_all(&queued).unwrap();
    stdin.flush().unwrap();
    signal_main_thread(&child, libc::SIGINT);
    signal(&child, libc::SIGCONT);
    let status = child.wait().unwrap();
    let err = err.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let all = [first, queued].concat();
    let got = logcut(&["cat", dir.0.to_str().unwrap()]).stdout;
    assert!(
        got == all,
        "what was in the pipe at the signal is not all in the log: {} of {} bytes",
        got.len(),
        all.len()
    );
    assert_eq!(
        err,
        "logcut: nothing came on standard input for 0ns after SIGINT, though it is still open: \
         stopped reading; what is written to it from now on is not logged\n"
    );
    assert_verified(&dir.0, 1_101);
    // The producer's next line finds nobody reading.
    let e = stdin.write_all(b"too late\n").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
}

/// `--grace` expires. The input idles for longer than the grace; then,
/// while `write` is stopped, the producer (which never finishes) puts a
/// batch in the pipe, and SIGINT comes (interrupting the reading thread's
/// wait); after it, one more batch within the grace, then nothing while it
/// keeps the pipe open. The grace counts from the signal, not from the last
/// input before it: `write` writes both batches, says on standard error
/// that it stopped reading an input still open, and exits 0 no sooner than
/// the grace after the last input. Nothing is lost in the log; the
/// producer's later writes fail (EPIPE).
#[test]
fn grace_expires_when_the_input_stays_open() {
    let dir = TempDir::new("grace");
    let grace = std::time::Duration::from_secs(1);
    let (mut child, mut stdin) = spawn_write(&dir.0, &["--grace", "1s", "--mode", "direct"]);
    let mut err = child.stderr.take().unwrap();
    let (tx, said) = std::sync::mpsc::channel();
    let err_reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => tx.send(buf[..n].to_vec()).unwrap(),
            }
        }
    });
    let a = tagged_range("a", 0..500);
    stdin.write_all(&a).unwrap();
    wait_for_active(&mut child, &dir.0, &a);
    // The input idles for longer than the grace, with nothing said. (A
    // real-time wait: the time without input is what this test is about.)
    match said.recv_timeout(grace + grace / 2) {
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!("while idle: {other:?}"),
    }
    stop(&child);
    let b = tagged_range("b", 0..500);
    stdin.write_all(&b).unwrap();
    stdin.flush().unwrap();
    signal_main_thread(&child, libc::SIGINT);
    signal(&child, libc::SIGCONT);
    let ab = [a, b].concat();
    wait_for_active(&mut child, &dir.0, &ab);
    let c = tagged_range("c", 0..500);
    let c_sent = std::time::Instant::now();
    stdin.write_all(&c).unwrap();
    stdin.flush().unwrap();
    let abc = [ab, c].concat();
    wait_for_active(&mut child, &dir.0, &abc);
    // Now nothing more comes, and the pipe stays open.
    let status = child.wait().unwrap();
    let took = c_sent.elapsed();
    err_reader.join().unwrap();
    let err: Vec<u8> = said.try_iter().flatten().collect();
    let err = String::from_utf8(err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(
        err,
        "logcut: nothing came on standard input for 1s after SIGINT, though it is still open: \
         stopped reading; what is written to it from now on is not logged\n"
    );
    // At least the grace after the last input (exact: that input was
    // read after `c_sent`); the upper bound is generous, for a loaded
    // machine of 2 cores.
    assert!(took >= grace, "exited {took:?} after the last input");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    assert!(
        logcut(&["cat", dir.0.to_str().unwrap()]).stdout == abc,
        "the log is not the input"
    );
    assert_verified(&dir.0, 1_500);
    let e = stdin.write_all(b"too late\n").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
}

/// `run` forwards SIGINT and SIGHUP to the program (which traps both and
/// says which it got), and exits with its status; what it printed about
/// them is in the log.
#[test]
fn run_forwards_sigint_and_sighup_to_the_program() {
    let dir = TempDir::new("run-int-hup");
    let mut child = Command::new(BIN)
        .args(["run", "--dir", dir.0.to_str().unwrap(), "--mode", "direct"])
        .args(["--", "sh", "-c"])
        .arg(
            "trap 'echo got-int' INT; trap 'echo got-hup; exit 5' HUP; echo ready; \
             while :; do read x; done",
        )
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    // The program's input stays open (its `read` waits) until the end.
    let stdin = child.stdin.take();
    wait_for_active(&mut child, &dir.0, b"ready\n");
    signal(&child, libc::SIGINT);
    // Still running: SIGINT was trapped, not fatal, to the program; and
    // `run` went on (it only forwards).
    wait_for_active(&mut child, &dir.0, b"ready\ngot-int\n");
    signal(&child, libc::SIGHUP);
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(5));
    assert_eq!(
        logcut(&["cat", dir.0.to_str().unwrap()]).stdout,
        b"ready\ngot-int\ngot-hup\n"
    );
    assert_verified(&dir.0, 3);
}

/// SIGUSR1 makes `write` cut its log: each signal seals a segment holding
/// exactly the records written before it.
#[test]
fn sigusr1_cuts_the_log_of_write() {
    let dir = TempDir::new("sigusr1");
    let (mut child, mut stdin) = spawn_write(&dir.0, &["--mode", "direct", "--max-size", "none"]);
    let err = stderr_of(&mut child);
    let manifest = dir.0.join("app.manifest");
    let seals = || {
        logcut_format::manifest::Manifest::read(&manifest)
            .unwrap()
            .seals()
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut expected = Vec::new();
    for round in 0..3u64 {
        let batch = tagged_range(&format!("r{round}"), 0..100 + 50 * round);
        stdin.write_all(&batch).unwrap();
        stdin.flush().unwrap();
        // In the active file before the signal.
        wait_for_active(&mut child, &dir.0, &batch);
        signal(&child, libc::SIGUSR1);
        wait_for(&format!("seal {}", round + 1), || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the writer exited ({status:?}) after SIGUSR1");
            }
            seals().len() as u64 == round + 1
        });
        let s = seals().pop().unwrap();
        assert_eq!(s.reason, logcut::SealReason::Manual, "{s:?}");
        assert_eq!(s.records, Some(100 + 50 * round), "{s:?}");
        assert_eq!(s.bytes, batch.len() as u64, "{s:?}");
        assert!(
            std::fs::read(dir.0.join(&s.file)).unwrap() == batch,
            "{}: not exactly the records before the signal",
            s.file
        );
        expected.extend_from_slice(&batch);
    }
    let last = tagged_range("last", 0..10);
    stdin.write_all(&last).unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    let err = err.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "");
    expected.extend_from_slice(&last);
    let all = seals();
    assert_eq!(all.len(), 4, "{all:?}");
    assert_eq!(all[3].records, Some(10), "{all:?}");
    assert_eq!(all[3].reason, logcut::SealReason::Shutdown, "{all:?}");
    assert!(logcut(&["cat", dir.0.to_str().unwrap()]).stdout == expected);
    assert_verified(&dir.0, 100 + 150 + 200 + 10);
}

/// `write --route-field`: JSON lines routed to their tenant's log under the
/// group the config file's routes pick; lines that are not JSON or lack the
/// field to the default group's `_none` log; an unsafe tenant value to
/// quarantine, behind its quoted value; every log verifies and `cat` gives
/// back exactly its lines, in order.
#[test]
fn write_routes_json_lines_to_their_tenants_logs() {
    let dir = TempDir::new("route");
    let root = dir.0.join("root");
    let cfg = dir.0.join("route.toml");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(
        &cfg,
        "route_field = \"ctx.tenant\"\ndefault_group = \"std\"\nmax_open = 2\n\
         [groups.std]\nmax_size = 200\n\
         [groups.prod]\nmax_size = \"1KiB\"\n\
         [[routes]]\nmatch = \"env=prod\"\ngroup = \"prod\"\n",
    )
    .unwrap();
    let mut input = String::new();
    let mut want: std::collections::BTreeMap<&str, String> = Default::default();
    for i in 0..200 {
        let (tenant, env, group) = match i % 5 {
            0 => ("acme", "prod", "prod/acme"),
            1 => ("acme", "dev", "std/acme"),
            2 => ("zeta", "prod", "prod/zeta"),
            3 => ("bolt", "dev", "std/bolt"),
            _ => ("../../etc", "prod", "quarantine"),
        };
        let line = format!("{{\"ctx\":{{\"tenant\":\"{tenant}\"}},\"env\":\"{env}\",\"i\":{i}}}\n");
        input.push_str(&line);
        let kept = if group == "quarantine" {
            format!("[tenant \"../../etc\"] {line}")
        } else {
            line
        };
        want.entry(group).or_default().push_str(&kept);
    }
    input.push_str("not json\n{\"env\":\"prod\"}\n");
    want.insert("std/_none", "not json\n{\"env\":\"prod\"}\n".to_string());
    let out = write_input(
        &root,
        &["--config", cfg.to_str().unwrap()],
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (log, text) in &want {
        let d = root.join(log);
        let v = logcut(&["verify", d.to_str().unwrap()]);
        assert!(
            v.status.success(),
            "{log}: {}",
            String::from_utf8_lossy(&v.stdout)
        );
        let c = logcut(&["cat", d.to_str().unwrap()]);
        assert_eq!(String::from_utf8(c.stdout).unwrap(), *text, "{log}");
    }
    // Nothing else under the root, nothing outside it.
    let mut logs: Vec<String> = tree(&root)
        .iter()
        .filter(|p| p.join("app.manifest").exists())
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    logs.sort();
    let expected: Vec<String> = want.keys().map(|s| s.to_string()).collect();
    assert_eq!(logs, expected);
    assert_eq!(
        tree(&dir.0)
            .iter()
            .filter(|p| !p.starts_with(&root))
            .count(),
        1,
        "only the config file beside the root: {:?}",
        tree(&dir.0)
    );
    // One tenant across its groups: every line of both its logs, each
    // log's in order.
    let c = logcut(&["cat", root.to_str().unwrap(), "--tenant", "acme"]);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let got = String::from_utf8(c.stdout).unwrap();
    let mut got_sorted: Vec<&str> = got.lines().collect();
    let mut want_sorted: Vec<&str> = want["prod/acme"]
        .lines()
        .chain(want["std/acme"].lines())
        .collect();
    got_sorted.sort_unstable();
    want_sorted.sort_unstable();
    assert_eq!(got_sorted, want_sorted);
    for log in ["prod/acme", "std/acme"] {
        let mine: Vec<&str> = got.lines().filter(|l| want[log].contains(*l)).collect();
        assert_eq!(mine, want[log].lines().collect::<Vec<_>>(), "{log}");
    }
    let c = logcut(&[
        "cat",
        root.to_str().unwrap(),
        "--group",
        "prod",
        "--tenant",
        "acme",
    ]);
    assert_eq!(String::from_utf8(c.stdout).unwrap(), want["prod/acme"]);
    // The whole root at once: verify (a table, or JSON) and status.
    let v = logcut(&["verify", root.to_str().unwrap()]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let text = String::from_utf8(v.stdout).unwrap();
    for log in want.keys() {
        assert!(
            text.lines().any(|l| l.starts_with("ok") && l.contains(log)),
            "{log}: {text}"
        );
    }
    assert!(
        text.contains(&format!("{} logs, 0 with problems", want.len())),
        "{text}"
    );
    let j = logcut(&["verify", root.to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(j["ok"], true);
    assert_eq!(j["logs"].as_array().unwrap().len(), want.len());
    let st = logcut(&["status", root.to_str().unwrap()]);
    let st = String::from_utf8(st.stdout).unwrap();
    assert!(want.keys().all(|l| st.contains(l)), "{st}");
    // A root has no one sealed history to prove: say which tenant.
    let k = logcut(&[
        "verify",
        root.to_str().unwrap(),
        "--key-file",
        "/nonexistent",
    ]);
    assert_eq!(k.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&k.stderr).contains("router's root"));
    // No tenant had an error: the last column says so.
    assert!(st.lines().next().unwrap().ends_with("  last error"), "{st}");
    assert!(st.lines().skip(1).all(|l| l.ends_with("  -")), "{st}");
    let sj = logcut(&["status", root.to_str().unwrap(), "--json"]);
    assert!(sj.status.success());
    let mut sj: serde_json::Value = serde_json::from_slice(&sj.stdout).unwrap();
    // What verify says, and each log's writer (gone: the write ended) and
    // last error (none).
    for t in sj["logs"].as_array_mut().unwrap() {
        for log in t["report"]["logs"].as_array_mut().unwrap() {
            let log = log.as_object_mut().unwrap();
            let w = log.remove("writer").unwrap();
            assert_eq!(
                (&w["alive"], &w["pids"]),
                (&false.into(), &serde_json::json!([])),
                "{w}"
            );
            assert_eq!(log.remove("last_error"), Some(serde_json::Value::Null));
        }
    }
    assert_eq!(sj["logs"], j["logs"]);
    // One tenant's sealed segment damaged: verify of the root fails, and
    // names that log.
    let victim = tree(&root.join("std/bolt"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "log") && !p.ends_with("app.log"))
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_len(3)
        .unwrap();
    let v = logcut(&["verify", root.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(1));
    let text = String::from_utf8(v.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("std/bolt")),
        "{text}"
    );
    assert!(text.contains("1 with problems"), "{text}");
    // A pattern that does not parse is a usage error naming its line.
    std::fs::write(
        &cfg,
        "route_field = \"t\"\n[[routes]]\nmatch = \"env\"\ngroup = \"x\"\n",
    )
    .unwrap();
    let out = write_input(&root, &["--config", cfg.to_str().unwrap()], b"");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `grep --field`: exactly the lines a brute-force scan of the input finds,
/// across tenants, groups, sealed, compressed and active segments, in time
/// order; `--tenant` and `--group` narrow it; an id that is nowhere prints
/// nothing and exits 1; one log directory works as well as a root.
#[test]
fn grep_finds_every_line_of_a_trace_across_tenants_and_compressed_segments() {
    let dir = TempDir::new("grep");
    let root = dir.0.join("root");
    let cfg = dir.0.join("route.toml");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(
        &cfg,
        "route_field = \"tenant\"\ndefault_group = \"std\"\n\
         [groups.std]\nmax_size = 600\n\
         [groups.zip]\nmax_size = 600\ncompress = \"zstd\"\n\
         [[routes]]\nmatch = \"tenant=bolt\"\ngroup = \"zip\"\n",
    )
    .unwrap();
    let tenants = ["acme", "bolt", "zeta"];
    let mut input = String::new();
    for i in 0..600u32 {
        let tenant = tenants[(i % 3) as usize];
        let trace = format!("t{:03}", i / 7);
        // Distinct times: lines of one trace from several tenants
        // interleave, and only the time says their order.
        let sec = i;
        input.push_str(&format!(
            "{{\"timestamp\":\"2026-12-02T10:{:02}:{:02}Z\",\"tenant\":\"{tenant}\",\"trace_id\":\"{trace}\",\"i\":{i}}}\n",
            sec / 60,
            sec % 60
        ));
    }
    // A line that holds the id's bytes but not as its trace_id.
    input.push_str("{\"tenant\":\"acme\",\"trace_id\":\"t0055\",\"note\":\"t055\"}\n");
    let out = write_input(
        &root,
        &["--config", cfg.to_str().unwrap()],
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Compressed segments are there.
    let zipped = tree(&root.join("zip/bolt"))
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".zst"))
        .count();
    assert!(zipped > 0, "{:?}", tree(&root.join("zip/bolt")));
    let brute = |trace: &str, tenant: Option<&str>| -> String {
        input
            .lines()
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["trace_id"] == trace && tenant.is_none_or(|t| v["tenant"] == t)
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let grep = |args: &[&str]| {
        let mut a = vec!["grep", root.to_str().unwrap()];
        a.extend_from_slice(args);
        logcut(&a)
    };
    for trace in ["t000", "t055", "t085"] {
        let out = grep(&["--field", &format!("trace_id={trace}")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = brute(trace, None);
        assert!(want.lines().count() >= 7 || trace == "t085", "{want}");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), want, "{trace}");
    }
    let out = grep(&["--field", "trace_id=t055", "--tenant", "bolt"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        brute("t055", Some("bolt"))
    );
    let out = grep(&[
        "--field",
        "trace_id=t055",
        "--group",
        "std",
        "--field",
        "tenant=zeta",
    ]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        brute("t055", Some("zeta"))
    );
    let out = grep(&["--field", "trace_id=nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let one = root.join("std/acme");
    let out = logcut(&["grep", one.to_str().unwrap(), "--field", "trace_id=t055"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        brute("t055", Some("acme"))
    );
}

#[test]
fn grep_returns_what_a_brute_force_scan_does_with_or_without_an_index() {
    let dir = TempDir::new("grep-index");
    let mut input = String::new();
    let mut line = |n: u32, body: &str| {
        input.push_str(&format!(
            "{{\"timestamp\":\"2026-12-03T10:{:02}:{:02}.{:03}Z\",{body}}}\n",
            n / 60_000 % 60,
            n / 1000 % 60,
            n % 1000
        ));
    };
    for i in 0..600u32 {
        line(i * 10, &format!("\"trace_id\":\"t{:04}\",\"i\":{i}", i / 8));
        if i == 300 {
            // Escapes the index cannot see through: a value spelled with
            // `\u`, a key spelled with `\u`, a quote in a value; and a
            // number.
            line(i * 10 + 1, "\"trace_id\":\"t\\u0030\\u0030\\u0030\\u0035\"");
            line(i * 10 + 2, "\"trace\\u005fid\":\"t0042\"");
            line(i * 10 + 3, "\"trace_id\":\"q\\\"t0031\"");
            line(i * 10 + 4, "\"span\":{\"trace_id\":12345}");
            line(i * 10 + 5, "\"trace_id\":12345");
        }
    }
    let brute = |field: &str, want: &str| -> String {
        input
            .lines()
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let mut at = &v;
                for part in field.split('.') {
                    match at.get(part) {
                        Some(x) => at = x,
                        None => return false,
                    }
                }
                match at {
                    serde_json::Value::String(s) => s == want,
                    serde_json::Value::Number(n) => n.to_string() == want,
                    _ => false,
                }
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let cases = [
        ("plain, indexed", vec!["--index", "trace_id"]),
        ("plain, no index", vec!["--index", "none"]),
        ("zstd, indexed by default", vec!["--compress", "zstd"]),
    ];
    let queries = [
        ("trace_id", "t0000"),
        ("trace_id", "t0005"),
        ("trace_id", "t0042"),
        ("trace_id", "q\"t0031"),
        ("trace_id", "t0074"),
        ("trace_id", "12345"),
        ("span.trace_id", "12345"),
        ("trace_id", "nowhere"),
    ];
    for (what, args) in cases {
        let log = dir.0.join(what.replace([' ', ','], "_"));
        // Time to finish every index at the end, under load.
        let mut a = vec!["--max-size", "1500", "--shutdown-timeout", "120s"];
        a.extend(args.iter().copied());
        let out = write_input(&log, &a, input.as_bytes());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let indexes: Vec<PathBuf> = tree(&log)
            .into_iter()
            .filter(|p| p.to_string_lossy().ends_with(".idx"))
            .collect();
        assert_eq!(indexes.is_empty(), what.contains("no index"), "{what}");
        let grep = |field: &str, want: &str| {
            let q = format!("{field}={want}");
            logcut(&["grep", log.to_str().unwrap(), "--field", &q, "--stats"])
        };
        let skipped = |out: &std::process::Output| -> u64 {
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            let at = err.find(" skipped").unwrap_or_else(|| panic!("{err}"));
            let before = &err[..at];
            before[before.rfind('(').unwrap() + 1..].parse().unwrap()
        };
        for (field, want) in queries {
            let out = grep(field, want);
            let expect = brute(field, want);
            assert_eq!(
                String::from_utf8(out.stdout.clone()).unwrap(),
                expect,
                "{what}: {field}={want}"
            );
            assert_eq!(
                out.status.code(),
                Some(if expect.is_empty() { 1 } else { 0 })
            );
            if field == "trace_id" && want == "nowhere" {
                // The index rules out (nearly) every segment; without it,
                // every segment is read.
                let n = skipped(&out);
                if indexes.is_empty() {
                    assert_eq!(n, 0, "{what}");
                } else {
                    assert!(n >= 10, "{what}: only {n} skipped");
                }
            }
        }
        if indexes.is_empty() {
            continue;
        }
        // A damaged index is none: the same lines, nothing skipped.
        for p in &indexes {
            let mut b = std::fs::read(p).unwrap();
            let mid = b.len() / 2;
            b[mid] ^= 0x55;
            std::fs::write(p, &b).unwrap();
        }
        for (field, want) in queries {
            let out = grep(field, want);
            assert_eq!(
                String::from_utf8(out.stdout.clone()).unwrap(),
                brute(field, want),
                "{what}, damaged: {field}={want}"
            );
            assert_eq!(skipped(&out), 0, "{what}, damaged");
        }
        let out = logcut(&["verify", log.to_str().unwrap()]);
        assert!(
            !out.status.success(),
            "{what}: verify passes damaged indexes"
        );
    }
}

#[test]
fn write_keeps_a_root_budget_taking_the_lowest_priority_group_first() {
    let dir = TempDir::new("root-budget");
    let root = dir.0.join("root");
    let cfg = dir.0.join("route.toml");
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::write(
        &cfg,
        "route_field = \"tenant\"\ndefault_group = \"debug\"\nroot_max_total = \"8000\"\n\
         mode = \"buffered\"\nmax_size = 500\n\
         [groups.debug]\n\
         [groups.paid]\npriority = 5\n\
         [[routes]]\nmatch = \"tenant=acme\"\ngroup = \"paid\"\n",
    )
    .unwrap();
    let mut input = String::new();
    // The paid tenant's lines come first: its segments are the oldest.
    for i in 0..60u32 {
        input.push_str(&format!(
            "{{\"tenant\":\"acme\",\"i\":{i},\"pad\":\"xxxxxxxxxxxxxx\"}}\n"
        ));
    }
    for i in 0..240u32 {
        let t = ["d1", "d2"][(i % 2) as usize];
        input.push_str(&format!(
            "{{\"tenant\":\"{t}\",\"i\":{i},\"pad\":\"xxxxxxxxxxxxxxxx\"}}\n"
        ));
    }
    let out = write_input(
        &root,
        &["--config", cfg.to_str().unwrap()],
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deletes = |log: &str| -> Vec<String> {
        let m = std::fs::read_to_string(root.join(log).join("app.manifest")).unwrap();
        m.lines()
            .filter(|l| l.starts_with("delete "))
            .map(|l| l.to_string())
            .collect()
    };
    assert!(
        deletes("paid/acme").is_empty(),
        "{:?}",
        deletes("paid/acme")
    );
    let (d1, d2) = (deletes("debug/d1"), deletes("debug/d2"));
    assert!(!d1.is_empty() && !d2.is_empty(), "{d1:?} {d2:?}");
    assert!(
        d1.iter()
            .chain(&d2)
            .all(|l| l.contains(" reason=root-bytes "))
    );
    // Every tenant's log checks out, the deleted records counted.
    let out = logcut(&["verify", root.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without routing, the flag is refused.
    let out = write_input(&dir.0.join("one"), &["--root-max-total", "1MiB"], b"x\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--route-field"));
}

/// `logcut write` of 400,000 lines of 39 bytes ("line NNNNNNNN of the log
/// being shipped") to `log`, in 64 KiB zstd segments at full speed, fed
/// in two halves: the second waits for `second_half`, so that what a test
/// does in between certainly races with cuts. `start` returns once the
/// log exists.
struct ShippedLog {
    writer: std::process::Child,
    half: std::sync::mpsc::Sender<()>,
    feeder: std::thread::JoinHandle<()>,
}

impl ShippedLog {
    fn start(log: &Path) -> ShippedLog {
        let mut writer = Command::new(BIN)
            .args(["write", "--dir", log.to_str().unwrap()])
            .args(["--max-size", "64KiB", "--compress", "zstd"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = writer.stdin.take().unwrap();
        let (half, half_rx) = std::sync::mpsc::channel::<()>();
        let feeder = std::thread::spawn(move || {
            for i in 0..400_000u32 {
                if i == 200_000 {
                    half_rx.recv().unwrap();
                }
                writeln!(stdin, "line {i:08} of the log being shipped").unwrap();
            }
        });
        // The log must exist before a reader looks for it.
        while !log.join("app.manifest").exists() {
            std::thread::yield_now();
        }
        ShippedLog {
            writer,
            half,
            feeder,
        }
    }

    fn second_half(&self) {
        self.half.send(()).unwrap();
    }

    /// Waits for the whole input to be written and the writer to exit.
    fn finish(self) {
        self.feeder.join().unwrap();
        let mut w = self.writer;
        assert!(w.wait().unwrap().success());
    }
}

/// A reader of `cat --follow --cursor` killed twice while a writer cuts
/// 64 KiB segments at full speed, with compression: each run goes on where
/// the cursor says (never past what the last run flushed, so nothing is
/// lost; a bounded stretch repeated), and the last run ends with the log.
#[test]
fn cat_follow_with_a_cursor_loses_nothing_across_killed_readers() {
    use std::io::Read as _;
    let dir = TempDir::new("cursor");
    let log = dir.0.join("log");
    let cursor = dir.0.join("ship.cursor");
    let writer = ShippedLog::start(&log);
    let follow = |until_closed: bool| {
        let mut c = Command::new(BIN);
        // The reader outlives each killed run and reads what was in the
        // pipe: nothing to send again.
        c.args(["cat", log.to_str().unwrap(), "--follow", "--replay", "0"])
            .arg("--cursor")
            .arg(&cursor)
            .stdout(Stdio::piped());
        if until_closed {
            c.arg("--until-closed");
        }
        c.spawn().unwrap()
    };
    // The log must exist before the first reader looks for it.
    let mut runs: Vec<Vec<u8>> = Vec::new();
    for (k, want) in [(0, 2_000_000usize), (1, 3_000_000)] {
        let mut r = follow(false);
        let mut out = r.stdout.take().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while got.len() < want {
            let n = out.read(&mut buf).unwrap();
            assert!(n > 0, "run {k} ended early");
            got.extend_from_slice(&buf[..n]);
        }
        r.kill().unwrap();
        r.wait().unwrap();
        // What it flushed before it died: all of it reached the pipe.
        out.read_to_end(&mut got).unwrap();
        runs.push(got);
        if k == 0 {
            writer.second_half();
        }
    }
    writer.finish();
    let last = follow(true).wait_with_output().unwrap();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    runs.push(last.stdout);
    let full = logcut(&["cat", log.to_str().unwrap()]).stdout;
    assert_eq!(full.len(), 400_000 * 39);
    // Each run is a stretch of the log starting no later than where the
    // runs before it got to.
    let mut reached = 0;
    for (k, run) in runs.iter().enumerate() {
        let head = &run[..run.len().min(200)];
        let at = if k == 0 {
            0
        } else {
            memchr::memmem::rfind(&full[..reached + head.len()], head)
                .unwrap_or_else(|| panic!("run {k} does not start in what was read"))
        };
        assert!(
            at <= reached,
            "run {k} starts at {at}, past {reached}: lost"
        );
        assert!(
            reached - at <= 1 << 20,
            "run {k} repeats {} bytes",
            reached - at
        );
        assert_eq!(&full[at..at + run.len()], &run[..], "run {k}");
        reached = at + run.len();
    }
    assert_eq!(reached, full.len(), "the last run ends with the log");
}

/// A real S3-compatible server on loopback (`s3s-fs`, which checks SigV4
/// signatures) for the shipping tests: `.ci/run` installs it; elsewhere a
/// test without it says so and passes.
struct S3 {
    bin: PathBuf,
    child: Option<std::process::Child>,
    port: u16,
    data: PathBuf,
}

const S3_KEY: &str = "logcut-test-key";
const S3_SECRET: &str = "logcut-test-secret-0123456789";

impl S3 {
    fn start(data: &Path) -> Option<S3> {
        let found = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .chain(std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin")))
            .map(|d| d.join("s3s-fs"))
            .find(|p| p.is_file());
        let Some(bin) = found else {
            assert!(
                std::env::var_os("CI").is_none(),
                "s3s-fs is not installed; .ci/run installs it"
            );
            // Past the test harness's capture, so that the skip is seen.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                b"SKIPPED: s3s-fs not found (cargo install s3s-fs --version 0.14.1 --features binary)\n",
            );
            return None;
        };
        std::fs::create_dir_all(data.join("logs")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = S3 {
            bin,
            child: None,
            port,
            data: data.to_path_buf(),
        };
        s.up();
        Some(s)
    }

    /// Starts the server; returns once it listens (it says so).
    fn up(&mut self) {
        use std::io::BufRead as _;
        let mut child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3_KEY, "--secret-key", S3_SECRET])
            .arg(&self.data)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("s3s-fs exited").unwrap();
            if line.contains("server is running") {
                break;
            }
        }
        // Drained, so that the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The flags and environment a `logcut` command needs to reach it.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .args([
                "--ship-endpoint",
                &format!("http://127.0.0.1:{}", self.port),
            ])
            .arg("--ship-path-style")
            .env("AWS_ACCESS_KEY_ID", S3_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
            .env("AWS_REGION", "us-east-1");
        c
    }

    /// The objects' files in the server's data directory.
    fn objects(&self) -> Vec<PathBuf> {
        tree(&self.data.join("logs"))
            .into_iter()
            .filter(|p| p.is_file())
            .collect()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.down();
    }
}

/// (kind, seq) of the manifest's ship and delete entries, in order.
fn ship_and_delete(dir: &Path) -> Vec<(String, u64, String)> {
    std::fs::read_to_string(dir.join("app.manifest"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("ship ") || l.starts_with("delete ") || l.starts_with("seal "))
        .map(|l| {
            let kind = l.split(' ').next().unwrap().to_string();
            let get = |k: &str| {
                l.split(' ')
                    .find_map(|w| w.strip_prefix(&format!("{k}=")))
                    .unwrap_or("")
                    .to_string()
            };
            (kind, get("seq").parse().unwrap(), get("key"))
        })
        .collect()
}

#[test]
fn shipping_survives_two_server_restarts_and_retention_waits_for_it() {
    let dir = TempDir::new("ship");
    let Some(mut s3) = S3::start(&dir.0.join("s3")) else {
        return;
    };
    let log = dir.0.join("log");
    let mut writer = s3
        .command(&["write", "--dir", log.to_str().unwrap()])
        .args(["--max-size", "4KiB", "--compress", "zstd", "--keep", "20"])
        .args(["--fsync", "never", "--ship", "s3://logs/fleet"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    // 10,300 segments of 97 lines; the server is down for the second and
    // the fourth fifth of them. (About 2 minutes here: the writer 17 s,
    // `logcut ship` of what it left 51 s, `verify --remote` 44 s.)
    let lines = 1_000_000u32;
    for phase in 0..5u32 {
        match phase {
            1 | 3 => s3.down(),
            2 | 4 => s3.up(),
            _ => {}
        }
        for i in phase * lines / 5..(phase + 1) * lines / 5 {
            writeln!(stdin, "line {i:08} shipped to a fleet's bucket").unwrap();
        }
    }
    drop(stdin);
    let out = writer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What shutdown left unshipped goes with `logcut ship`.
    let out = s3
        .command(&["ship", log.to_str().unwrap(), "--to", "s3://logs/fleet"])
        .args(["--compress", "zstd"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = ship_and_delete(&log);
    let seals: Vec<u64> = entries
        .iter()
        .filter(|e| e.0 == "seal")
        .map(|e| e.1)
        .collect();
    assert!(seals.len() > 10_000, "{} segments", seals.len());
    // Every segment shipped once, under one key each, one object each.
    let mut shipped: Vec<u64> = entries
        .iter()
        .filter(|e| e.0 == "ship")
        .map(|e| e.1)
        .collect();
    shipped.sort();
    assert_eq!(shipped, seals);
    let keys: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.0 == "ship")
        .map(|e| e.2.as_str())
        .collect();
    assert_eq!(keys.len(), seals.len());
    // Compressed by the writer, or by `logcut ship --compress` if the
    // writer stopped first; but the writer's last segment, if the writer
    // shipped it: it stayed at app.log, uncompressed, as it was.
    let objects = s3.objects();
    assert_eq!(objects.len(), seals.len());
    let last = format!(".{:06}.log", seals.iter().max().unwrap());
    assert!(
        objects.iter().all(|p| {
            let p = p.to_string_lossy();
            p.ends_with(".zst") || p.ends_with(&last)
        }),
        "{objects:?}"
    );
    // Retention deleted only what had been shipped before.
    let mut shipped_so_far = std::collections::HashSet::new();
    let mut deletes = 0;
    for (kind, seq, _) in &entries {
        match kind.as_str() {
            "ship" => {
                shipped_so_far.insert(*seq);
            }
            "delete" => {
                deletes += 1;
                assert!(
                    shipped_so_far.contains(seq),
                    "segment {seq} deleted before it was shipped"
                );
            }
            _ => {}
        }
    }
    // It did delete, while the server was up.
    assert!(deletes > 0, "{deletes}");
    // The bucket holds the whole log, each line once.
    let mut all = Vec::new();
    for p in &objects {
        let data = std::fs::read(p).unwrap();
        if p.to_string_lossy().ends_with(".zst") {
            let mut r = logcut_format::codec::Codec::Zstd
                .decoder(&data[..])
                .unwrap();
            std::io::Read::read_to_end(&mut r, &mut all).unwrap();
        } else {
            all.extend_from_slice(&data);
        }
    }
    let mut got: Vec<&[u8]> = all
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    got.sort();
    assert_eq!(got.len(), lines as usize);
    got.dedup();
    assert_eq!(got.len(), lines as usize, "a line twice");
    let out = s3
        .command(&[
            "verify",
            log.to_str().unwrap(),
            "--remote",
            "s3://logs/fleet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn verify_remote_names_corrupted_missing_and_extra_objects() {
    let dir = TempDir::new("ship-verify");
    let Some(s3) = S3::start(&dir.0.join("s3")) else {
        return;
    };
    let log = dir.0.join("log");
    let mut w = s3
        .command(&["write", "--dir", log.to_str().unwrap()])
        .args(["--max-size", "2KiB", "--ship", "s3://logs/v"])
        // Time for every upload at the end, however loaded the machine.
        .args(["--shutdown-timeout", "120s"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = w.stdin.take().unwrap();
        for i in 0..500 {
            writeln!(stdin, "line {i:05} to be checked remotely").unwrap();
        }
    }
    assert!(w.wait().unwrap().success());
    let verify = || {
        s3.command(&["verify", log.to_str().unwrap(), "--remote", "s3://logs/v"])
            .output()
            .unwrap()
    };
    let ok = verify();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    // The local figures say so too.
    let j = logcut(&["verify", log.to_str().unwrap(), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    let l = &j["logs"][0];
    assert_eq!(l["shipped_segments"], l["segments"], "{j}");
    let st = String::from_utf8(logcut(&["status", log.to_str().unwrap()]).stdout).unwrap();
    assert!(st.contains("shipped: "), "{st}");
    let objs = s3.objects();
    let segs: Vec<&PathBuf> = objs
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".log"))
        .collect();
    assert!(segs.len() >= 5, "{objs:?}");
    // One altered in place (same length), one removed, one added.
    let mut data = std::fs::read(segs[0]).unwrap();
    data[3] ^= 0x20;
    std::fs::write(segs[0], &data).unwrap();
    std::fs::remove_file(segs[1]).unwrap();
    let extra = segs[2].with_file_name("app.2026-01-01T00-00-00.000Z.999999.log");
    std::fs::copy(segs[2], &extra).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        text.lines()
            .any(|l| l.starts_with("") && l.contains("mismatch: ") && l.contains(&name(segs[0]))),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("missing: ") && l.contains(&name(segs[1]))),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("extra: ") && l.contains("999999")),
        "{text}"
    );
    assert!(text.contains("3 problems"), "{text}");
}

#[test]
fn wrong_credentials_fail_clearly_and_nothing_is_deleted() {
    let dir = TempDir::new("ship-creds");
    let Some(s3) = S3::start(&dir.0.join("s3")) else {
        return;
    };
    let log = dir.0.join("log");
    let input: String = (0..400)
        .map(|i| format!("line {i:05} of a log\n"))
        .collect();
    let out = write_input(
        &log,
        &["--max-size", "1KiB", "--keep", "2"],
        input.as_bytes(),
    );
    assert!(out.status.success());
    let before = ship_and_delete(&log);
    let sealed = before.iter().filter(|e| e.0 == "seal").count();
    let out = s3
        .command(&[
            "ship",
            log.to_str().unwrap(),
            "--to",
            "s3://logs/c",
            "--patience",
            "2s",
        ])
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not be shipped") && err.contains("403"),
        "{err}"
    );
    assert!(
        !err.contains("not-the-secret") && !err.contains(S3_SECRET),
        "{err}"
    );
    // Nothing shipped, nothing more deleted; the log checks out.
    let after = ship_and_delete(&log);
    assert!(after.iter().all(|e| e.0 != "ship"));
    assert_eq!(
        after.iter().filter(|e| e.0 == "delete").count(),
        before.iter().filter(|e| e.0 == "delete").count()
    );
    assert_eq!(after.iter().filter(|e| e.0 == "seal").count(), sealed);
    assert!(s3.objects().is_empty());
    assert!(logcut(&["verify", log.to_str().unwrap()]).status.success());
}

/// A stand-in for a shipper that reads `cat --follow --cursor` through a
/// pipe (syslog-ng's `program()`, Vector's `exec`): it dies three times
/// in the middle of a line with bytes in the pipe it had not read, while
/// a writer cuts 64 KiB zstd segments at full speed, and is started again
/// each time. Like a shipper, it passes on whole lines only. What it
/// passed on, run after run, is the log byte for byte: nothing lost (the
/// cursor counts what the pipe still held) and nothing twice (a restart
/// begins with the whole line it died in).
#[test]
fn cat_follow_with_a_cursor_loses_nothing_when_its_reader_dies_with_bytes_unread() {
    use std::{io::Read as _, os::fd::AsFd};
    let dir = TempDir::new("cursor-pipe");
    let log = dir.0.join("log");
    let cursor = dir.0.join("ship.cursor");
    let writer = ShippedLog::start(&log);
    let follow = || {
        Command::new(BIN)
            .args(["cat", log.to_str().unwrap(), "--follow", "--until-closed"])
            // A stand-in that delivers every byte it reads.
            .args(["--replay", "0", "--cursor"])
            .arg(&cursor)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut delivered = Vec::new();
    let mut left_in_pipe = Vec::new();
    // Odd amounts: the reader dies in the middle of a line.
    for (k, want) in [(0, 1_000_003usize), (1, 1_500_007), (2, 2_000_011)] {
        let mut r = follow();
        let mut out = r.stdout.take().unwrap();
        let mut buf = vec![0u8; 65536];
        let mut run = Vec::new();
        while run.len() < want {
            let room = buf.len().min(want - run.len());
            let n = out.read(&mut buf[..room]).unwrap();
            assert!(n > 0, "run {k} ended early");
            run.extend_from_slice(&buf[..n]);
        }
        let whole = memchr::memrchr(b'\n', &run).unwrap() + 1;
        assert!(whole < run.len(), "run {k} ends with a whole line");
        delivered.extend_from_slice(&run[..whole]);
        // It dies with bytes in the pipe (waiting for the follower to
        // write some, if it has not yet).
        let mut unread = 0;
        wait_for("bytes in the pipe", || {
            unread = rustix::io::ioctl_fionread(out.as_fd()).unwrap();
            unread > 0
        });
        left_in_pipe.push(unread);
        drop(out);
        let o = r.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "run {k}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        if k == 1 {
            writer.second_half();
        }
    }
    writer.finish();
    let last = follow().wait_with_output().unwrap();
    assert!(
        last.status.success(),
        "{}",
        String::from_utf8_lossy(&last.stderr)
    );
    delivered.extend_from_slice(&last.stdout);
    let full = logcut(&["cat", log.to_str().unwrap()]).stdout;
    assert_eq!(full.len(), 400_000 * 39);
    assert_eq!(left_in_pipe.len(), 3, "{left_in_pipe:?}");
    if delivered != full {
        let same = delivered
            .iter()
            .zip(&full)
            .take_while(|(a, b)| a == b)
            .count();
        panic!(
            "delivered {} bytes of {}, first difference at {same}; bytes left in the pipe: {left_in_pipe:?}",
            delivered.len(),
            full.len()
        );
    }
}

/// syslog-ng (`/usr/sbin/syslog-ng`), or `None` with a note on standard
/// error outside CI; in CI (`CI` set) it must be there: `.ci/run` installs
/// it.
fn syslog_ng() -> Option<PathBuf> {
    let bin = PathBuf::from("/usr/sbin/syslog-ng");
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "syslog-ng is not installed; .ci/run installs it"
    );
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"SKIPPED: syslog-ng not found (apt-get install syslog-ng-core)\n",
    );
    None
}

/// A syslog-ng stopped (SIGTERM: it stops its programs too) if the test
/// fails before it stops it.
struct Reaped(Option<std::process::Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            // SAFETY: kill(2) with a pid this test spawned and has not
            // reaped.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

/// The README's recipe (`examples/shippers/syslog-ng.conf`), run:
/// syslog-ng's `program()` source reading
/// `cat --follow --cursor`, stopped (SIGTERM, which stops its program too)
/// and started again twice while a writer cuts 64 KiB zstd segments at
/// full speed. What syslog-ng wrote out, over its three runs, is the log
/// line for line: nothing lost, nothing repeated.
#[test]
fn syslog_ng_behind_cat_follow_cursor_loses_nothing_across_restarts() {
    let Some(sng) = syslog_ng() else {
        return;
    };
    let dir = TempDir::new("syslog-ng");
    std::fs::create_dir_all(&dir.0).unwrap();
    let log = dir.0.join("log");
    let out = dir.0.join("delivered");
    let conf = dir.0.join("syslog-ng.conf");
    let program = format!(
        "{BIN} cat {} --follow --cursor {}",
        log.display(),
        dir.0.join("ship.cursor").display()
    );
    // The operators' example, with this test's paths.
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shippers/syslog-ng.conf"),
    )
    .unwrap();
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the example has no {from:?}");
        text.replace(from, to)
    };
    let text = replace(
        example,
        "logcut cat /var/log/app --follow --cursor /var/lib/logcut/app.cursor",
        &program,
    );
    let text = replace(text, "/var/log/shipped/app.log", out.to_str().unwrap());
    std::fs::write(&conf, text).unwrap();
    let writer = ShippedLog::start(&log);
    let start = |k: usize| {
        let d = &dir.0;
        let c = Command::new(&sng)
            .args(["-F", "--no-caps", "-f"])
            .arg(&conf)
            .arg("-R")
            .arg(d.join("persist"))
            .arg("-p")
            .arg(d.join(format!("pid{k}")))
            .arg("-c")
            .arg(d.join("ctl"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join(format!("syslog-ng{k}.err"))).unwrap())
            .spawn()
            .unwrap();
        Reaped(Some(c))
    };
    let delivered = || std::fs::metadata(&out).map_or(0, |m| m.len());
    let stop = |mut c: Reaped| {
        let mut c = c.0.take().unwrap();
        // SAFETY: kill(2) with a pid this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(c.id() as i32, libc::SIGTERM) }, 0);
        assert!(c.wait().unwrap().success());
    };
    for (k, reach) in [(0, 1_000_000u64), (1, 8_000_000)] {
        let c = start(k);
        wait_for("syslog-ng to deliver", || delivered() >= reach);
        stop(c);
        if k == 0 {
            writer.second_half();
        }
    }
    writer.finish();
    let full = logcut(&["cat", log.to_str().unwrap()]).stdout;
    assert_eq!(full.len(), 400_000 * 39);
    let c = start(2);
    // To the log's last line (repeats make the output longer than the log).
    let last_line = &full[full.len() - 39..];
    wait_for("syslog-ng to deliver the rest", || {
        std::fs::read(&out).is_ok_and(|d| d.ends_with(last_line))
    });
    stop(c);
    let got = std::fs::read(&out).unwrap();
    let mut seen = vec![0u32; 400_000];
    for line in got.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let id: usize = std::str::from_utf8(&line[5..13]).unwrap().parse().unwrap();
        seen[id] += 1;
    }
    let missing = seen.iter().filter(|n| **n == 0).count();
    let repeated: u32 = seen.iter().map(|n| n.saturating_sub(1)).sum();
    // Sent again after each of the 2 restarts: the --replay default
    // (1 MiB, 26,887 lines), plus a line cut in two.
    assert_eq!(missing, 0, "{repeated} repeated");
    assert!(repeated <= 2 * 26_888, "{repeated} lines repeated");
    // In order: the log, going back at most twice.
    let backs = got
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            std::str::from_utf8(&l[5..13])
                .unwrap()
                .parse::<u32>()
                .unwrap()
        })
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .count();
    assert!(backs <= 2, "{backs} jumps");
}

fn logrotate() -> Option<PathBuf> {
    [
        "/usr/sbin/logrotate",
        "/sbin/logrotate",
        "/usr/bin/logrotate",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// `logcut pid D` finds no writer: exit 1, nothing printed, and says so.
fn assert_nobody_writes(d: &str) {
    let out = logcut(&["pid", d]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody is writing"));
}

/// `logcut write -d D --mode direct` (no size limit, `extra` options),
/// with 10 records written and its lock taken: the child, its input and
/// the next record id.
fn direct_writer(
    d: &str,
    extra: &[&str],
    stderr: Stdio,
) -> (std::process::Child, std::process::ChildStdin, u32) {
    let mut writer = Command::new(BIN)
        .args(["write", "-d", d, "-s", "none", "--mode", "direct"])
        .args(extra)
        .stdin(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    let mut id = 0u32;
    stdin.write_all(&records(&mut id, 10)).unwrap();
    stdin.flush().unwrap();
    wait_for("the writer's lock", || logcut(&["pid", d]).status.success());
    (writer, stdin, id)
}

/// `logcut pid` prints the writer's pid (with DIR or `-d`, and `-n`), and
/// exits 1 when nobody writes the log (before the writer starts and after
/// it has gone). The documented logrotate recipe, `create` with
/// `postrotate kill -HUP $(logcut pid DIR)`, run by the real logrotate
/// five times while the writer writes: every record exactly once, in
/// logrotate's files or in the log.
///
/// Without logrotate the rotations are skipped, saying so, except with
/// `CI=true` (`.ci/run` installs logrotate): there the test fails.
#[test]
fn pid_names_the_writer_and_logrotate_reopens_it_through_pid() {
    let tmp = TempDir::new("pid");
    let dir = tmp.0.join("log");
    let d = dir.to_str().unwrap();
    assert_nobody_writes(d);
    let (mut writer, mut stdin, mut id) = direct_writer(d, &[], Stdio::inherit());
    for args in [vec!["pid", d], vec!["pid", "-d", d, "-n", "app"]] {
        let out = logcut(&args);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            writer.id().to_string(),
            "{args:?}"
        );
    }
    let st = status_json(d);
    assert_eq!(st["logs"][0]["writer"]["pid"], writer.id());
    assert_eq!(st["logs"][0]["writer"]["alive"], true);
    match logrotate() {
        Some(bin) => {
            let conf = tmp.0.join("logrotate.conf");
            std::fs::write(
                &conf,
                format!(
                    "{d}/app.log {{\n  rotate 1000\n  create 0640\n  nocompress\n  missingok\n  postrotate\n    kill -HUP $({BIN} pid {d})\n  endscript\n}}\n"
                ),
            )
            .unwrap();
            for _ in 0..5 {
                stdin.write_all(&records(&mut id, 100)).unwrap();
                stdin.flush().unwrap();
                let out = Command::new(&bin)
                    .arg("-f")
                    .arg("-s")
                    .arg(tmp.0.join("logrotate.state"))
                    .arg(&conf)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "logrotate failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        None => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "logrotate is not installed, and CI=true: CI must run this test"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED the logrotate part of pid_names_the_writer_...: logrotate is not installed"
            );
        }
    }
    stdin.write_all(&records(&mut id, 10)).unwrap();
    drop(stdin);
    assert!(writer.wait().unwrap().success());
    assert_nobody_writes(d);
    let st = status_json(d);
    assert_eq!(st["logs"][0]["writer"]["pid"], writer.id());
    assert_eq!(st["logs"][0]["writer"]["alive"], false);
    assert_eq!(st["logs"][0]["open_sessions"], 0);
    // logrotate's files, then the log.
    let mut data = Vec::new();
    let mut rotated = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name
            .strip_prefix("app.log.")
            .is_some_and(|n| n.parse::<u32>().is_ok())
        {
            data.extend(std::fs::read(e.path()).unwrap());
            rotated += 1;
        }
    }
    if logrotate().is_some() {
        assert_eq!(rotated, 5);
    }
    data.extend(logcut(&["cat", d]).stdout);
    let r = Parser::new(TAGGED).any_order().parse(&data);
    assert_eq!(r.count("record"), u64::from(id));
    let out = logcut(&["verify", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `logcut pid` of a log two writers share names both, and once the first
/// (the one the lock file names) has exited, only the second: never a
/// process that is gone (its pid could be another's by then).
#[test]
fn pid_of_a_shared_log_names_the_writers_alive_only() {
    let tmp = TempDir::new("pid-shared");
    let dir = tmp.0.join("log");
    let d = dir.to_str().unwrap();
    let start = || {
        Command::new(BIN)
            .args(["write", "-d", d, "--shared", "--mode", "direct"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let pids = || -> Vec<u32> {
        let out = logcut(&["pid", d]);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    };
    let mut id = 0u32;
    let mut a = start();
    let mut a_in = a.stdin.take().unwrap();
    a_in.write_all(&records(&mut id, 10)).unwrap();
    a_in.flush().unwrap();
    wait_for("the first writer", || pids() == [a.id()]);
    let mut b = start();
    let mut b_in = b.stdin.take().unwrap();
    b_in.write_all(&records(&mut id, 10)).unwrap();
    b_in.flush().unwrap();
    let mut both = vec![a.id(), b.id()];
    both.sort_unstable();
    wait_for("the second writer", || pids() == both);
    drop(a_in);
    assert!(a.wait().unwrap().success());
    assert_eq!(pids(), [b.id()]);
    let st = status_json(d);
    let w = &st["logs"][0]["writer"];
    assert_eq!(w["pids"], serde_json::json!([b.id()]), "{w}");
    assert_eq!(
        (w["alive"].as_bool(), w["shared"].as_bool()),
        (Some(true), Some(true)),
        "{w}"
    );
    b_in.write_all(&records(&mut id, 10)).unwrap();
    drop(b_in);
    assert!(b.wait().unwrap().success());
    assert_nobody_writes(d);
    assert_eq!(
        status_json(d)["logs"][0]["writer"]["pids"],
        serde_json::json!([])
    );
    let r = Parser::new(TAGGED)
        .any_order()
        .parse(&logcut(&["cat", d]).stdout);
    assert_eq!(r.count("record"), u64::from(id));
    assert!(logcut(&["verify", d]).status.success());
}

/// The subcommands `logcut --help` lists.
fn subcommands() -> Vec<String> {
    let help = String::from_utf8(logcut(&["--help"]).stdout).unwrap();
    let list = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .to_string();
    let names: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 13, "{names:?}");
    names
}

/// A completion script for each shell, naming every subcommand; a man
/// page for logcut and for each subcommand, printed or written.
#[test]
fn completions_and_man_pages_name_every_subcommand() {
    let subs = subcommands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = logcut(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in &subs {
            assert!(script.contains(sub.as_str()), "{shell}: no {sub}");
        }
    }
    let out = logcut(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let page = String::from_utf8(logcut(&["manpage"]).stdout).unwrap();
    assert!(page.contains(".TH logcut 1"), "{page}");
    for sub in &subs {
        assert!(
            page.contains(&format!("logcut\\-{sub}")),
            "logcut(1) names no {sub}"
        );
        let out = logcut(&["manpage", sub]);
        assert!(out.status.success(), "{sub}");
        let p = String::from_utf8(out.stdout).unwrap();
        assert!(
            p.contains(&format!(".TH logcut\\-{sub} 1"))
                || p.contains(&format!(".TH logcut-{sub} 1")),
            "{sub}: {p}"
        );
        assert!(p.contains(".SH SYNOPSIS"), "{sub}");
    }
    assert_eq!(logcut(&["manpage", "nosuch"]).status.code(), Some(2));
    let tmp = TempDir::new("man");
    let out = logcut(&["manpage", "--dir", tmp.0.to_str().unwrap()]);
    assert!(out.status.success());
    let mut files: Vec<String> = std::fs::read_dir(&tmp.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut want: Vec<String> = subs.iter().map(|s| format!("logcut-{s}.1")).collect();
    want.push("logcut.1".to_string());
    want.sort();
    assert_eq!(files, want);
}

/// `status --json` of `dir`, checked against the schema the README
/// documents (version 1): exactly these fields, of these types.
fn status_json(dir: &str) -> serde_json::Value {
    use serde_json::Value;
    let out = logcut(&["status", dir, "--json"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v), ["dir", "logs", "ok", "problems", "schema"]);
    assert_eq!(v["schema"], 1);
    assert!(v["dir"].is_string() && v["ok"].is_boolean() && v["problems"].is_array());
    for log in v["logs"].as_array().unwrap() {
        let counts = [
            "bytes",
            "compressed_segments",
            "deleted_records",
            "deleted_segments",
            "disk_bytes",
            "lost",
            "open_sessions",
            "records",
            "segments",
            "segments_moved",
            "segments_unknown_records",
            "sessions",
            "shipped_segments",
            "uncompressed_segments",
        ];
        let mut want: Vec<&str> = counts.to_vec();
        want.extend(["active_bytes", "last_error", "name", "writer"]);
        want.sort_unstable();
        assert_eq!(keys(log), want);
        for c in counts {
            assert!(log[c].is_u64(), "{c}: {}", log[c]);
        }
        assert!(log["name"].is_string());
        assert!(log["active_bytes"].is_null() || log["active_bytes"].is_u64());
        assert_eq!(keys(&log["writer"]), ["alive", "pid", "pids", "shared"]);
        let pids = &log["writer"]["pids"];
        assert!(
            pids.is_null() || pids.as_array().unwrap().iter().all(|p| p.is_u64()),
            "{pids}"
        );
        assert!(log["writer"]["alive"].is_boolean() && log["writer"]["shared"].is_boolean());
        assert!(log["writer"]["pid"].is_null() || log["writer"]["pid"].is_u64());
        let e = &log["last_error"];
        if !e.is_null() {
            assert_eq!(keys(e), ["at", "message", "pid"]);
            assert!(
                e["at"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok(),
                "{e}"
            );
            assert!(e["message"].is_string() && e["pid"].is_u64(), "{e}");
        }
    }
    v
}

/// Lines still unwritable when `--shutdown-timeout` runs out (the disk
/// stays full) are counted: `write` exits 1 saying how many were lost, the
/// manifest records them, and what was written plus what was lost is
/// every line, exactly.
#[test]
fn lines_unwritable_at_the_shutdown_timeout_are_counted_lost() {
    let Some(fs) = SmallFs::mount("lost-at-exit") else {
        return;
    };
    let dir = fs.0.0.join("log");
    let d = dir.to_str().unwrap();
    let (writer, mut stdin, mut id) =
        direct_writer(d, &["--shutdown-timeout", "0s"], Stdio::piped());
    fs.fill();
    stdin.write_all(&records(&mut id, 1000)).unwrap();
    drop(stdin);
    let out = writer.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lost"), "{err}");
    fs.free();
    let st = status_json(d);
    let lost = st["logs"][0]["lost"].as_u64().unwrap();
    assert!(lost > 0, "{st}");
    let r = Parser::new(TAGGED).parse(&logcut(&["cat", d]).stdout);
    assert_eq!(r.count("record") + lost, u64::from(id), "{st}");
    assert!(err.contains(&format!("{lost} records")), "{err}");
}

/// A FIFO planted as a log's error file or lock file does not hang
/// `status`, `status --json` or `pid` (opening a FIFO for reading blocks
/// until a writer comes): the text and `pid` say what is wrong.
#[test]
fn planted_fifos_do_not_hang_status_or_pid() {
    let tmp = TempDir::new("fifo");
    let dir = tmp.0.join("log");
    let d = dir.to_str().unwrap();
    assert!(write_input(&dir, &[], b"one\n").status.success());
    for f in ["app.error", "app.lock"] {
        std::fs::remove_file(dir.join(f)).unwrap();
        let made = Command::new("mkfifo").arg(dir.join(f)).status().unwrap();
        assert!(made.success());
    }
    let within = |args: &[&str]| {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{args:?} hangs");
            }
            std::thread::yield_now();
        }
        child.wait_with_output().unwrap()
    };
    let out = within(&["status", d]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("  last error:"))
        .unwrap();
    assert!(
        line.contains("app.error") && line.contains("not a regular file"),
        "{text}"
    );
    // JSON has no room for why: no writer, no last error.
    let out = within(&["status", d, "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let log = v["logs"][0].as_object().unwrap();
    assert_eq!(log["last_error"], serde_json::Value::Null);
    assert!(!log.contains_key("writer"), "{v}");
    let out = within(&["pid", d]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
}

/// A tmpfs of 1 MiB for a disk-full test (root mounts it; skipped with a
/// message otherwise, never in CI); unmounted when dropped.
struct SmallFs(TempDir);

impl SmallFs {
    fn mount(tag: &str) -> Option<SmallFs> {
        use std::os::unix::ffi::OsStrExt;
        let dir = TempDir::new(tag);
        std::fs::create_dir_all(&dir.0).unwrap();
        let target = std::ffi::CString::new(dir.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=1m,mode=0750".as_ptr().cast(),
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI must run the disk-full tests (as root): {err}"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {tag}: cannot mount a tmpfs ({err})"
            );
            return None;
        }
        Some(SmallFs(dir))
    }

    /// Fills it with the file `filler` until a write fails with ENOSPC.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.0.join("filler")).unwrap();
        while f.write(&[0u8; 4096]).is_ok_and(|n| n > 0) {}
        while f.write(b"x").is_ok_and(|n| n == 1) {}
    }

    fn free(&self) {
        std::fs::remove_file(self.0.0.join("filler")).unwrap();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        use std::os::unix::ffi::OsStrExt;
        let _ = std::fs::remove_dir_all(self.0.0.join("log"));
        let target = std::ffi::CString::new(self.0.0.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// `status` shows the last error the writer reported, from a real full
/// disk, in its text and in `--json`; once the disk frees, every record
/// is there.
#[test]
fn status_shows_the_writers_last_error_from_a_full_disk() {
    let Some(fs) = SmallFs::mount("last-error") else {
        return;
    };
    let dir = fs.0.0.join("log");
    let d = dir.to_str().unwrap();
    // The writer's stderr (its own report of each error), off the disk.
    let logs = TempDir::new("last-error-stderr");
    std::fs::create_dir_all(&logs.0).unwrap();
    let stderr = std::fs::File::create(logs.0.join("stderr")).unwrap();
    let (mut writer, mut stdin, mut id) = direct_writer(d, &[], stderr.into());
    let st = status_json(d);
    assert_eq!(st["logs"][0]["last_error"], serde_json::Value::Null);
    let text = String::from_utf8(logcut(&["status", d]).stdout).unwrap();
    assert!(
        text.contains("  last error:      none recorded\n"),
        "{text}"
    );
    fs.fill();
    // More than the slack of the active file's last page.
    stdin.write_all(&records(&mut id, 1000)).unwrap();
    stdin.flush().unwrap();
    wait_for("the last error", || {
        !status_json(d)["logs"][0]["last_error"].is_null()
    });
    let e = &status_json(d)["logs"][0]["last_error"];
    assert_eq!(e["pid"], writer.id(), "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(message.contains("No space left on device"), "{e}");
    let text = String::from_utf8(logcut(&["status", d]).stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("  last error:"))
        .unwrap();
    assert!(
        line.contains(&format!("by pid {}: ", writer.id())),
        "{text}"
    );
    assert!(line.contains("No space left on device"), "{text}");
    let printed = std::fs::read_to_string(logs.0.join("stderr")).unwrap();
    assert!(printed.contains(message), "{printed}");
    fs.free();
    drop(stdin);
    assert!(writer.wait().unwrap().success());
    let data = logcut(&["cat", d]).stdout;
    let r = Parser::new(TAGGED).parse(&data);
    assert_eq!(r.count("record"), u64::from(id));
    let out = logcut(&["verify", d]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The operators' examples (`examples/`): the Grafana dashboard parses as
/// JSON with panels, and it and the Prometheus alert rules name only metric
/// families a running `write --metrics` serves; the systemd unit's
/// `ExecStart` runs as written (with a directory of the test's and
/// `/bin/true` for the program).
#[test]
fn the_operators_examples_name_only_what_logcut_serves_and_accepts() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let dashboard = std::fs::read_to_string(examples.join("grafana-dashboard.json")).unwrap();
    let alerts = std::fs::read_to_string(examples.join("prometheus-alerts.yml")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let mut exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    exprs.push(
        d["templating"]["list"][0]["query"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    exprs.extend(
        alerts
            .lines()
            .filter_map(|l| l.trim().strip_prefix("expr:"))
            .map(str::to_string),
    );
    // The rules' unit tests feed series of served names too.
    let rule_tests = std::fs::read_to_string(examples.join("prometheus-alerts.test.yml")).unwrap();
    exprs.extend(
        rule_tests
            .lines()
            .filter_map(|l| l.trim().strip_prefix("- series:"))
            .map(str::to_string),
    );
    let mut named: Vec<String> = exprs
        .iter()
        .flat_map(|e| {
            e.match_indices("logcut_").map(|(at, _)| {
                e[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect::<String>()
            })
        })
        .collect();
    named.sort();
    named.dedup();
    assert!(named.len() >= 20, "{named:?}");

    let tmp = TempDir::new("examples");
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["write", "-d", tmp.0.join("log").to_str().unwrap()])
        .args(["--metrics", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "one line").unwrap();
    stdin.flush().unwrap();
    let body = scrape_until(port, "logcut_records_total{log=\"app\"} 1\n");
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let served: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for name in &named {
        // A summary's series: NAME, NAME_sum, NAME_count.
        let family = name
            .strip_suffix("_sum")
            .or_else(|| name.strip_suffix("_count"))
            .filter(|f| served.contains(f))
            .unwrap_or(name);
        assert!(served.contains(&family), "{name} is not served: {served:?}");
    }

    let unit = std::fs::read_to_string(examples.join("logcut@.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let dir = tmp.0.join("unit-log");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| match a {
            "/var/log/%i" => dir.display().to_string(),
            "/usr/local/bin/%i" => "/bin/true".to_string(),
            a => a.to_string(),
        })
        .collect();
    let out = Command::new(BIN).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(logcut(&["verify", dir.to_str().unwrap()]).status.success());
    systemd_accepts(&unit, &tmp.0);
    promtool_accepts(&examples, &body);
    let rotate = std::fs::read_to_string(examples.join("logrotate.conf")).unwrap();
    assert!(
        rotate.contains("kill -HUP $(logcut pid /var/log/app)"),
        "{rotate}"
    );
}

/// The first of `paths` that exists: a tool from outside that CI installs
/// (`.ci/run`). Without it, the caller skips its check with a message on
/// standard error, except in CI, where that fails.
fn ci_tool(what: &str, paths: &[&str]) -> Option<PathBuf> {
    let found = paths.iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is not installed, and CI=true: .ci/run installs it"
        );
        let _ = writeln!(std::io::stderr(), "SKIPPED the {what} check: not installed");
    }
    found
}

/// Prometheus's own checker passes the alert rules, their unit tests
/// (`prometheus-alerts.test.yml`: each alert fires when it should) and
/// the exposition `--metrics` served (`scrape`, the HTTP response).
/// Skipped with a message if
/// promtool is missing, never in CI.
fn promtool_accepts(examples: &Path, scrape: &str) {
    let Some(promtool) = ci_tool(
        "promtool",
        &["/usr/bin/promtool", "/usr/local/bin/promtool"],
    ) else {
        return;
    };
    for args in [
        ["check", "rules", "prometheus-alerts.yml"],
        ["test", "rules", "prometheus-alerts.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(examples)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.split_once("\r\n\r\n").unwrap().1.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `systemd-analyze verify` finds nothing wrong with the unit template
/// (with this build's logcut and `/bin/true` for the program, which it
/// checks are executable). Skipped with a message if systemd-analyze is
/// missing, never in CI.
fn systemd_accepts(unit: &str, tmp: &Path) {
    let Some(analyze) = ci_tool(
        "systemd-analyze",
        &["/usr/bin/systemd-analyze", "/bin/systemd-analyze"],
    ) else {
        return;
    };
    let file = tmp.join("logcut@.service");
    let text = unit
        .replace("/usr/local/bin/logcut ", &format!("{BIN} "))
        .replace("/usr/local/bin/%i", "/bin/true");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shippers' examples (`examples/shippers/`) all run the one reader
/// the README documents, and logcut runs it as written there (with
/// `--until-closed` added, so that it ends with the log's writer), the log
/// byte for byte; run twice, the second finds the cursor at the end and
/// prints nothing again. The syslog-ng example is run in full by
/// `syslog_ng_behind_cat_follow_cursor_loses_nothing_across_restarts`.
#[test]
fn the_shipper_examples_run_the_documented_reader() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shippers");
    let reader = "logcut cat /var/log/app --follow --cursor /var/lib/logcut/app.cursor";
    for f in ["syslog-ng.conf", "fluent-bit.yaml"] {
        let text = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(text.contains(reader), "{f} does not run {reader:?}");
    }
    let vector: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("vector.toml")).unwrap()).unwrap();
    let source = &vector["sources"]["logcut_app"];
    assert_eq!(source["type"].as_str(), Some("exec"));
    assert_eq!(source["mode"].as_str(), Some("streaming"));
    let command: Vec<&str> = source["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(command.join(" "), reader);
    let rsyslog = std::fs::read_to_string(dir.join("rsyslog.conf")).unwrap();
    assert!(
        rsyslog.contains("File=\"/var/log/app/app.2*.log\""),
        "{rsyslog}"
    );

    let tmp = TempDir::new("shippers");
    let log = tmp.0.join("log");
    let mut writer = Command::new(BIN)
        .args(["write", "-d", log.to_str().unwrap(), "-s", "1KiB"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = 0u32;
    let data = records(&mut id, 100);
    writer.stdin.take().unwrap().write_all(&data).unwrap();
    assert!(writer.wait().unwrap().success());
    let cursor = tmp.0.join("app.cursor");
    let mut args: Vec<String> = command[1..]
        .iter()
        .map(|a| match *a {
            "/var/log/app" => log.display().to_string(),
            "/var/lib/logcut/app.cursor" => cursor.display().to_string(),
            a => a.to_string(),
        })
        .collect();
    args.extend(["--until-closed".to_string(), "--replay".into(), "0".into()]);
    // Into a file, which holds no unread bytes for the cursor to leave out.
    let run = |k: usize| {
        let path = tmp.0.join(format!("out{k}"));
        let out = Command::new(BIN)
            .args(&args)
            .stdout(std::fs::File::create(&path).unwrap())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(path).unwrap()
    };
    assert_eq!(run(0), data);
    // Again: the cursor is at the end.
    assert_eq!(run(1), b"");
}
