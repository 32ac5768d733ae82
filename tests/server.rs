//! `voxide serve` over loopback: the binary started on 127.0.0.1:0, spoken
//! to with a raw HTTP/1.1 client of this file. Endpoints, exactness of pcm
//! and wav against `voxide speak --output -`, SSE, hostile requests
//! (each answered with its status and OpenAI's error body while the server
//! keeps serving), a client that leaves mid-stream (its permit freed at
//! once), a bounded load run (32 clients: only 200 and 429, every permit
//! free afterwards, RSS flat) and SIGTERM (the request in flight finishes,
//! exit 0). The whole file is one test: one server, loaded once.

#![cfg(all(unix, feature = "server"))]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "test-key-0123456789";
const LONG_SENTENCE: &str = "The quick brown fox jumps over the lazy dog near the river bank. ";

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Server {
    let dir = std::env::temp_dir().join(format!("voxide-server-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keyfile = dir.join("keys");
    std::fs::write(&keyfile, format!("# test keys\n{KEY}\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_voxide"))
        .args(["serve", "--bind", "127.0.0.1:0", "--voice"])
        .arg(common::voice_path())
        .arg("--api-key-file")
        .arg(&keyfile)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start voxide serve");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut port = None;
    let mut seen = String::new();
    for _ in 0..20 {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        seen.push_str(&line);
        if let Some(rest) = line.trim().strip_prefix("listening on http://") {
            port = rest.rsplit(':').next().and_then(|p| p.parse().ok());
            break;
        }
    }
    // Keep draining stderr so the server never blocks on it.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = err.read_to_string(&mut sink);
    });
    let port = port.unwrap_or_else(|| panic!("no 'listening on' line; stderr: {seen}"));
    Server { child, port }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// OpenAI's error body with this status and param.
    fn assert_error(&self, status: u16, param: Option<&str>, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        let j = self.json();
        let e = &j["error"];
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {j}"
        );
        assert!(e["type"].is_string(), "{what}: {j}");
        assert!(
            e.get("code").is_some() && e.get("param").is_some(),
            "{what}: {j}"
        );
        if let Some(p) = param {
            assert_eq!(e["param"], p, "{what}: {j}");
        }
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let len_text = std::str::from_utf8(&b[..nl]).unwrap_or("0");
        let len =
            usize::from_str_radix(len_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if len == 0 || b.len() < nl + 2 + len {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + len]);
        b = &b[(nl + 4 + len).min(b.len())..];
    }
}

fn parse(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    Resp {
        status,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
        headers,
    }
}

fn raw(port: u16, bytes: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse(&out)
}

fn request(port: u16, method: &str, path: &str, key: Option<&str>, body: &[u8]) -> Resp {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(k) = key {
        r.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    raw(port, &bytes)
}

fn get(port: u16, path: &str) -> Resp {
    request(port, "GET", path, Some(KEY), b"")
}

fn speech(port: u16, body: &serde_json::Value) -> Resp {
    request(
        port,
        "POST",
        "/v1/audio/speech",
        Some(KEY),
        body.to_string().as_bytes(),
    )
}

fn metric(port: u16, name: &str) -> f64 {
    let m = get(port, "/metrics");
    assert_eq!(m.status, 200);
    String::from_utf8_lossy(&m.body)
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn wait_idle(port: u16, within: Duration, what: &str) {
    let t0 = Instant::now();
    loop {
        let (p, q) = (
            metric(port, "voxide_permits_in_use "),
            metric(port, "voxide_queue_depth "),
        );
        if p == 0.0 && q == 0.0 {
            return;
        }
        assert!(
            t0.elapsed() < within,
            "{what}: {p} permits in use, {q} queued after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cli_wav(text: &str, seed: u64) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_voxide"))
        .args([
            "speak",
            "--text",
            text,
            "--seed",
            &seed.to_string(),
            "--output",
            "-",
            "--voice",
        ])
        .arg(common::voice_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn endpoints(port: u16) {
    let h = request(port, "GET", "/healthz", None, b"");
    assert_eq!((h.status, h.json()["status"].as_str()), (200, Some("ok")));
    assert_eq!(request(port, "GET", "/readyz", None, b"").status, 200);
    let page = request(port, "GET", "/", None, b"");
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        html.contains("<html") && html.contains("/v1/audio/speech") && html.contains("aria-live")
    );
    let m = get(port, "/v1/models").json();
    let ids: Vec<&str> = m["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"tts-1") && ids.contains(&"en_US-joe-medium"),
        "{m}"
    );
    for f in ["wav", "pcm", "flac"] {
        assert!(
            m["formats"].as_array().unwrap().iter().any(|x| x == f),
            "{m}"
        );
    }
    let v = get(port, "/v1/audio/voices").json();
    let joe = &v["voices"][0];
    assert_eq!(
        (joe["id"].as_str(), joe["sample_rate"].as_u64()),
        (Some("en_US-joe-medium"), Some(22050))
    );
    assert_eq!(joe["language"], "en_US");
    let text = String::from_utf8_lossy(&get(port, "/metrics").body).to_string();
    for name in [
        "voxide_http_requests_total",
        "voxide_speech_ttfa_seconds",
        "voxide_permits_in_use",
        "voxide_queue_depth",
        "voxide_audio_seconds_total",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}

fn exactness(port: u16) {
    let text = "Hello from the server. It speaks the same samples.";
    let cli = cli_wav(text, 7);
    let body = |f: &str| serde_json::json!({"model": "tts-1", "input": text, "voice": "alloy", "seed": 7, "response_format": f});
    let wav = speech(port, &body("wav"));
    assert_eq!(
        (wav.status, wav.header("content-type")),
        (200, Some("audio/wav"))
    );
    assert_eq!(wav.body.len(), cli.len());
    assert!(
        wav.body == cli,
        "server wav differs from voxide speak --output -"
    );
    let pcm = speech(port, &body("pcm"));
    assert!(
        pcm.status == 200 && pcm.body == cli[44..],
        "server pcm differs"
    );
    // SSE: the deltas' bytes are the pcm; words with timestamps; done last.
    let mut b = body("pcm");
    b["stream_format"] = "sse".into();
    b["timestamps"] = true.into();
    let s = speech(port, &b);
    assert_eq!(
        (s.status, s.header("content-type")),
        (200, Some("text/event-stream"))
    );
    let (mut audio, mut words, mut done) = (Vec::new(), Vec::new(), 0);
    use base64::Engine as _;
    for ev in String::from_utf8(s.body)
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
    {
        let j: serde_json::Value =
            serde_json::from_str(ev.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(done, 0, "event after done: {j}");
        match j["type"].as_str().unwrap() {
            "speech.audio.delta" => audio.extend(
                base64::engine::general_purpose::STANDARD
                    .decode(j["audio"].as_str().unwrap())
                    .unwrap(),
            ),
            "speech.word" => words.push(j["text"].as_str().unwrap().to_string()),
            "speech.audio.done" => {
                assert!(j["usage"]["input_tokens"].as_u64().unwrap() > 0);
                done += 1;
            }
            o => panic!("unexpected event {o}"),
        }
    }
    assert_eq!(done, 1);
    assert!(audio == cli[44..], "SSE deltas differ from the pcm");
    assert_eq!(words.first().map(String::as_str), Some("Hello"));
    assert!(words.len() >= 8, "{words:?}");
    // mp3 and opus: the codec's container, when the library is here.
    for (f, magic) in [("mp3", &b"\xff"[..]), ("opus", &b"OggS"[..])] {
        let r = speech(port, &body(f));
        if r.status == 501 {
            r.assert_error(501, Some("response_format"), f);
            common::skip(&format!("server {f}"), "the codec library is not installed");
            continue;
        }
        assert_eq!(r.status, 200, "{f}");
        let start = if f == "mp3" && r.body.starts_with(b"ID3") {
            10
        } else {
            0
        };
        assert!(
            r.body[start..].starts_with(magic) && r.body.len() > 2000,
            "{f}: {} bytes",
            r.body.len()
        );
    }
    let flac = speech(port, &body("flac"));
    assert!(flac.status == 200 && flac.body.starts_with(b"fLaC"));
}

fn hostile(port: u16) {
    let p = port;
    let post = |b: &[u8]| request(p, "POST", "/v1/audio/speech", Some(KEY), b);
    post(b"{\"input\": ").assert_error(400, None, "malformed JSON");
    post(b"[1, 2]").assert_error(400, None, "not an object");
    post(br#"{"input": 42}"#).assert_error(400, Some("input"), "input a number");
    post(br#"{"input": "hi", "speed": "fast"}"#).assert_error(400, Some("speed"), "speed a string");
    post(b"{\"input\": \"\xff\xfe bad\"}").assert_error(400, None, "invalid UTF-8");
    post(br#"{"input": "hi", "voice": "nobody"}"#).assert_error(
        400,
        Some("voice"),
        "unknown voice",
    );
    post(br#"{"input": "hi", "speaker": "nobody"}"#).assert_error(
        400,
        Some("speaker"),
        "unknown speaker",
    );
    post(br#"{"input": "hi", "speed": 9}"#).assert_error(400, Some("speed"), "speed out of range");
    post(br#"{"input": "hi", "model": "gpt-9"}"#).assert_error(400, Some("model"), "unknown model");
    post(br#"{"input": "hi", "response_format": "aac"}"#).assert_error(
        400,
        Some("response_format"),
        "aac",
    );
    let long = serde_json::json!({"input": "a".repeat(5000)}).to_string();
    post(long.as_bytes()).assert_error(400, Some("input"), "input over the character limit");
    // A huge body: refused by its declared length, before it is sent.
    raw(p, b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100000000\r\nAuthorization: Bearer test-key-0123456789\r\n\r\n")
        .assert_error(413, None, "huge declared body");
    // And a chunked one without a length.
    let mut chunked = b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer test-key-0123456789\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(b"2000\r\n");
        chunked.extend(std::iter::repeat_n(b' ', 0x2000));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    raw(p, &chunked).assert_error(413, None, "huge chunked body");
    // Keys.
    request(p, "POST", "/v1/audio/speech", None, br#"{"input":"hi"}"#)
        .assert_error(401, None, "no key");
    request(
        p,
        "POST",
        "/v1/audio/speech",
        Some("wrong"),
        br#"{"input":"hi"}"#,
    )
    .assert_error(401, None, "bad key");
    request(p, "GET", "/v1/models", Some("test-key-01234567890"), b"").assert_error(
        401,
        None,
        "longer key",
    );
    get(p, "/v2/nothing").assert_error(404, None, "no route");
    request(p, "DELETE", "/v1/audio/speech", Some(KEY), b"").assert_error(405, None, "DELETE");
    // Slow loris: headers never finished; the server closes the connection
    // after --header-timeout (1 s here) without a permit.
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "slow headers held {:?}",
        t0.elapsed()
    );
    // A slow body: 400 after --body-timeout.
    let mut s = TcpStream::connect(("127.0.0.1", p)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\nContent-Length: 100\r\n\r\n{{\"input\"").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse(&buf).assert_error(400, None, "slow body");
    assert_eq!(metric(p, "voxide_permits_in_use "), 0.0);
    // The server still serves.
    assert_eq!(
        speech(
            p,
            &serde_json::json!({"input": "Still here.", "response_format": "pcm"})
        )
        .status,
        200
    );
}

fn disconnect(port: u16) {
    let text = LONG_SENTENCE.repeat(40);
    let body = serde_json::json!({"input": text, "response_format": "pcm"}).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    let mut first = [0u8; 512];
    s.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    assert_eq!(
        metric(port, "voxide_permits_in_use "),
        1.0,
        "the stream holds its permit"
    );
    let t0 = Instant::now();
    drop(s);
    // 40 long sentences take far longer than this to synthesize.
    wait_idle(
        port,
        Duration::from_secs(5),
        "after a client left mid-stream",
    );
    eprintln!(
        "server: permit freed {:?} after the client left",
        t0.elapsed()
    );
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// One load round: `clients` threads share `total` requests.
fn load_round(port: u16, clients: usize, total: usize) -> (Vec<u16>, Vec<f64>, f64) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t0 = Instant::now();
    let results: Vec<(u16, Option<f64>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < total {
                        let body = serde_json::json!({"input": "Load test.", "response_format": "pcm"}).to_string();
                        let t = Instant::now();
                        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
                        c.write_all(format!("POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
                        let mut one = [0u8; 1];
                        c.read_exact(&mut one).unwrap();
                        let first = t.elapsed().as_secs_f64();
                        let mut rest = one.to_vec();
                        c.read_to_end(&mut rest).unwrap();
                        let r = parse(&rest);
                        if r.status == 429 {
                            assert!(r.header("retry-after").is_some(), "429 without Retry-After");
                            r.assert_error(429, None, "busy");
                        }
                        out.push((r.status, (r.status == 200).then_some(first)));
                    }
                    out
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let wall = t0.elapsed().as_secs_f64();
    let statuses = results.iter().map(|r| r.0).collect();
    let ttfa = results.iter().filter_map(|r| r.1).collect();
    (statuses, ttfa, wall)
}

fn load(server: &Server) {
    let port = server.port;
    let pid = server.child.id();
    let (clients, total) = (32, 96);
    let (s1, _, _) = load_round(port, clients, total);
    wait_idle(port, Duration::from_secs(20), "after load round 1");
    let rss1 = rss_kb(pid);
    let (s2, mut ttfa, wall) = load_round(port, clients, total);
    wait_idle(port, Duration::from_secs(20), "after load round 2");
    let rss2 = rss_kb(pid);
    let all: Vec<u16> = s1.iter().chain(&s2).copied().collect();
    assert!(
        all.iter().all(|s| *s == 200 || *s == 429),
        "statuses {all:?}"
    );
    let ok = s2.iter().filter(|s| **s == 200).count();
    assert!(
        ok > 0 && all.contains(&429),
        "want both 200 and 429 under load: {all:?}"
    );
    assert!(
        rss2 < rss1 + 30 * 1024,
        "RSS grew from {rss1} kB to {rss2} kB over a load round"
    );
    eprintln!(
        "server load: {clients} clients, {total} requests: {ok} x 200, {} x 429, TTFA p50 {:.1} ms p99 {:.1} ms, {:.1} ok requests/s, RSS {} -> {} MB",
        total - ok,
        percentile(&mut ttfa, 0.5) * 1e3,
        percentile(&mut ttfa, 0.99) * 1e3,
        ok as f64 / wall,
        rss1 / 1024,
        rss2 / 1024
    );
}

fn sigterm(mut server: Server) {
    let port = server.port;
    let text = LONG_SENTENCE.repeat(3);
    let body = serde_json::json!({"input": text, "response_format": "wav"}).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(format!("POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    let mut first = [0u8; 64];
    s.read_exact(&mut first).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    let mut rest = first.to_vec();
    s.read_to_end(&mut rest).unwrap();
    let r = parse(&rest);
    assert_eq!(r.status, 200);
    // The in-flight stream completed: well over a second of audio.
    assert!(r.body.len() > 44 + 2 * 22050 * 3, "{} bytes", r.body.len());
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still accepting after SIGTERM"
    );
}

#[test]
fn server_end_to_end() {
    let t0 = Instant::now();
    let server = start(&[
        "--max-concurrent",
        "2",
        "--queue",
        "4",
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
    ]);
    endpoints(server.port);
    exactness(server.port);
    hostile(server.port);
    disconnect(server.port);
    load(&server);
    sigterm(server);
    eprintln!("server test: {:?}", t0.elapsed());
}
