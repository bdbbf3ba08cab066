//! End-to-end tests of the `logcut` binary.

#![allow(missing_docs)]

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

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
    // Errors are one line unless RUST_BACKTRACE asks for the details.
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
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
    let feeder = std::thread::spawn(move || stdin.write_all(&data).unwrap());
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
    let o = logcut(&["write", "--dir", "x", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(2));
    let o = logcut(&["write", "--dir", "x", "--max-size", "ten"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a size"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
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
    let victim = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&victim)
        .unwrap();
    f.set_len(10).unwrap();
    let v = logcut(&["verify", dir.0.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(1));
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.contains(victim.file_name().unwrap().to_str().unwrap()) && text.contains("truncated"),
        "{text}"
    );
    let j = logcut(&["verify", "--json", dir.0.to_str().unwrap()]);
    assert_eq!(j.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&j.stdout).contains("\"kind\":\"SizeMismatch\""));
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
        http_get(port, "/other")
            .unwrap()
            .starts_with("HTTP/1.1 404")
    );
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn compress_zstd_and_keep_n_leave_the_newest_lines_compressed() {
    let dir = TempDir::new("zstd-keep");
    let mut input = Vec::new();
    for i in 0..100_000u32 {
        writeln!(input, "line {i:08} GET /api/orders status=200").unwrap();
    }
    let out = write_input(
        &dir.0,
        &["--max-size", "64KiB", "--compress", "zstd", "--keep", "4"],
        &input,
    );
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
    assert_eq!(field("compressed_segments"), 4, "{json}");
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
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".log.zst") || n == "app.manifest"),
        "{names:?}"
    );
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
    let out = logcut(&["write", "--dir", d, "--compress-level", "3"]);
    assert_eq!(out.status.code(), Some(1));
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
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("level 12 is out of range"));
    let out = logcut(&["write", "--dir", d, "--keep", "0"]);
    assert_eq!(out.status.code(), Some(2));
}
