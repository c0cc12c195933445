//! Downloads against a tiny HTTP/1.1 server written here with `std::net` (no network needed):
//! full download, resume after a dropped connection (the retry carries `Range` and the result is
//! byte-identical), checksum mismatch (error, no file left), an existing verified file (no
//! request), a server that ignores `Range`, HTTP errors, the mirror variable, and CIFAR-10's
//! archive extraction.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jizen_data::download::{part_path, Checksum, RemoteFile};
use jizen_data::{get, load_cifar, Cifar, GetOptions, Split};
use sha2::{Digest, Sha256};

/// What the server saw: the path and the `Range` header of each request.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    path: String,
    range: Option<String>,
}

#[derive(Default)]
struct Behaviour {
    /// Drop this many of the next responses after `drop_after` body bytes.
    drops: usize,
    drop_after: usize,
    /// Answer 200 with the whole file even when asked for a range.
    ignore_range: bool,
}

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Server {
    fn start(files: HashMap<String, Vec<u8>>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let (s, b) = (seen.clone(), behaviour.clone());
        // The thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                handle(stream, &files, &s, &b);
            }
        });
        Server { url, seen, behaviour }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn handle(
    mut stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    seen: &Mutex<Vec<Seen>>,
    behaviour: &Mutex<Behaviour>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("").to_string());
    seen.lock().unwrap().push(Seen { path: path.clone(), range: range.clone() });
    let mut b = behaviour.lock().unwrap();
    let Some(body) = files.get(&path).filter(|_| method == "GET") else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let start: usize = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) if !b.ignore_range => r.trim_end_matches('-').parse().unwrap(),
        _ => 0,
    };
    if start >= body.len() && start > 0 {
        let head = format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", body.len());
        let _ = stream.write_all(head.as_bytes());
        return;
    }
    let head = if start > 0 {
        format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len() - 1,
            body.len(),
            body.len() - start
        )
    } else {
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
    };
    let mut rest = &body[start..];
    if b.drops > 0 {
        b.drops -= 1;
        rest = &rest[..b.drop_after.min(rest.len())];
    }
    drop(b);
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(rest);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jizen-download-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Deterministic, incompressible-looking bytes.
fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = jizen_tensor::Rng::new(seed);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Two fixture files served as `/mnist/…`, the server, and options pointing at it.
fn setup() -> (Vec<(String, Vec<u8>)>, Server, GetOptions) {
    let files = vec![("a.bin".to_string(), payload(200_000, 1)), ("b.txt".to_string(), b"small file\n".to_vec())];
    let served = files.iter().map(|(n, b)| (format!("/mnist/{n}"), b.clone())).collect();
    let server = Server::start(served);
    let options = GetOptions {
        mirror: Some(server.url.clone()),
        files: Some(files.iter().map(|(n, b)| RemoteFile::sha256(n, &sha256(b))).collect()),
        progress: false,
        retries: 0,
        retry_wait: Duration::ZERO,
        timeout: Duration::from_secs(10),
    };
    (files, server, options)
}

fn assert_files(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name} is byte-identical");
        assert!(!part_path(&dir.join(name)).exists(), "{name}.part is gone");
    }
}

#[test]
fn full_download_then_no_request_for_verified_files() {
    let (files, server, options) = setup();
    let dest = temp_dir("full");
    let report = get("mnist", &dest, &options).unwrap();
    assert_eq!(report.dir, dest.join("mnist"));
    assert_eq!(report.downloaded, vec!["a.bin", "b.txt"]);
    assert_files(&report.dir, &files);
    let seen = server.seen();
    assert_eq!(seen.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), ["/mnist/a.bin", "/mnist/b.txt"]);
    assert!(seen.iter().all(|s| s.range.is_none()), "{seen:?}");
    // Again: both files are there and verified, so the server hears nothing.
    let again = get("mnist", &dest, &options).unwrap();
    assert_eq!(again.present, vec!["a.bin", "b.txt"]);
    assert!(again.downloaded.is_empty());
    assert_eq!(server.seen().len(), 2, "no request for verified files");
    // A file corrupted on disk fails its check and is fetched again.
    std::fs::write(report.dir.join("b.txt"), "tampered").unwrap();
    let third = get("mnist", &dest, &options).unwrap();
    assert_eq!((third.present, third.downloaded), (vec!["a.bin".to_string()], vec!["b.txt".to_string()]));
    assert_files(&report.dir, &files);
    std::fs::remove_dir_all(&dest).ok();
}

#[test]
fn dropped_connection_resumes_with_range() {
    let (files, server, options) = setup();
    let dest = temp_dir("resume");
    server.behaviour.lock().unwrap().drops = 1;
    server.behaviour.lock().unwrap().drop_after = 70_000;
    // No retries: the call fails and leaves the part file with what arrived.
    let e = get("mnist", &dest, &options).unwrap_err().to_string();
    assert!(e.contains("connection lost after 70000 bytes"), "{e}");
    let dir = dest.join("mnist");
    assert_eq!(std::fs::metadata(part_path(&dir.join("a.bin"))).unwrap().len(), 70_000);
    assert!(!dir.join("a.bin").exists(), "no final file before verification");
    // The next call asks for the rest and completes the file.
    get("mnist", &dest, &options).unwrap();
    assert_files(&dir, &files);
    let seen = server.seen();
    assert_eq!(seen[1], Seen { path: "/mnist/a.bin".into(), range: Some("bytes=70000-".into()) });
    std::fs::remove_dir_all(&dest).ok();

    // With retries, one call survives two drops, resuming each time.
    let dest = temp_dir("resume-retry");
    let before = server.seen().len();
    {
        let mut b = server.behaviour.lock().unwrap();
        b.drops = 2;
        b.drop_after = 50_000;
    }
    get("mnist", &dest, &GetOptions { retries: 3, ..options.clone() }).unwrap();
    assert_files(&dest.join("mnist"), &files);
    let ranges: Vec<_> = server.seen()[before..].iter().map(|s| s.range.clone()).collect();
    assert_eq!(ranges, [None, Some("bytes=50000-".into()), Some("bytes=100000-".into()), None]);
    std::fs::remove_dir_all(&dest).ok();
}

#[test]
fn server_ignoring_range_restarts_cleanly() {
    let (files, server, options) = setup();
    let dest = temp_dir("norange");
    {
        let mut b = server.behaviour.lock().unwrap();
        b.drops = 1;
        b.drop_after = 10_000;
        b.ignore_range = true;
    }
    get("mnist", &dest, &GetOptions { retries: 1, ..options }).unwrap();
    assert_files(&dest.join("mnist"), &files);
    assert_eq!(server.seen()[1].range.as_deref(), Some("bytes=10000-"));
    std::fs::remove_dir_all(&dest).ok();
}

#[test]
fn checksum_mismatch_leaves_no_file() {
    let (_, _server, mut options) = setup();
    let dest = temp_dir("mismatch");
    let wrong = "0".repeat(64);
    options.files = Some(vec![RemoteFile::sha256("b.txt", &wrong)]);
    let e = get("mnist", &dest, &options).unwrap_err().to_string();
    let actual = sha256(b"small file\n");
    assert!(e.contains("checksum mismatch") && e.contains(&wrong) && e.contains(&actual), "{e}");
    assert!(e.contains("b.txt"), "{e}");
    let path = dest.join("mnist/b.txt");
    assert!(!path.exists() && !part_path(&path).exists());
    // md5 checksums are checked the same way.
    options.files = Some(vec![RemoteFile::md5("b.txt", "d41d8cd98f00b204e9800998ecf8427e")]);
    let e = get("mnist", &dest, &options).unwrap_err().to_string();
    assert!(e.contains("expected md5 d41d8cd98f00b204e9800998ecf8427e"), "{e}");
    assert!(!path.exists() && !part_path(&path).exists());
    std::fs::remove_dir_all(&dest).ok();
}

#[test]
fn http_errors_and_unknown_sets() {
    let (_, server, mut options) = setup();
    let dest = temp_dir("errors");
    options.files = Some(vec![RemoteFile::sha256("missing.bin", &"0".repeat(64))]);
    options.retries = 3;
    let e = get("mnist", &dest, &options).unwrap_err().to_string();
    assert!(e.contains("HTTP status 404") && e.contains("/mnist/missing.bin"), "{e}");
    assert_eq!(server.seen().len(), 1, "a 404 is not retried");
    let e = get("imagenet", &dest, &options).unwrap_err().to_string();
    assert!(e.contains("unknown data set \"imagenet\"") && e.contains("cifar10"), "{e}");
    std::fs::remove_dir_all(&dest).ok();
}

#[test]
fn mirror_from_the_environment() {
    // The variable is set for a child process running this same test, not with `set_var` here:
    // changing the environment of a multi-threaded process races with other threads reading it.
    if let Some(dest) = std::env::var_os("JIZEN_TEST_DOWNLOAD_DEST") {
        let (_, _server, options) = setup();
        get("mnist", Path::new(&dest), &GetOptions { mirror: None, ..options }).unwrap();
        return;
    }
    let (files, server, _) = setup();
    let dest = temp_dir("env");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["mirror_from_the_environment", "--exact", "--test-threads=1"])
        .env(jizen_data::download::MIRROR_ENV, &server.url)
        .env("JIZEN_TEST_DOWNLOAD_DEST", &dest)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_files(&dest.join("mnist"), &files);
    assert_eq!(server.seen().len(), 2, "the child's requests came to the mirror named by the variable");
    std::fs::remove_dir_all(&dest).ok();
}

#[test]
fn cifar10_archive_is_verified_and_extracted() {
    // A tiny stand-in for cifar-10-binary.tar.gz: one record per batch.
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    let names: Vec<String> =
        (1..=5).map(|i| format!("data_batch_{i}.bin")).chain(["test_batch.bin".to_string()]).collect();
    for (i, name) in names.iter().enumerate() {
        let mut record = vec![i as u8];
        record.extend(payload(3072, i as u64));
        let mut header = tar::Header::new_gnu();
        header.set_size(record.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("cifar-10-batches-bin/{name}"), &record[..]).unwrap();
    }
    let archive = tar.into_inner().unwrap().finish().unwrap();
    let md5: String = <md5::Md5 as Digest>::digest(&archive).iter().map(|b| format!("{b:02x}")).collect();
    let server = Server::start(HashMap::from([("/cifar10/cifar-10-binary.tar.gz".to_string(), archive)]));
    let options = GetOptions {
        mirror: Some(server.url.clone()),
        files: Some(vec![RemoteFile { name: "cifar-10-binary.tar.gz".into(), checksum: Checksum::Md5(md5) }]),
        progress: false,
        ..Default::default()
    };
    let dest = temp_dir("cifar");
    let report = get("cifar10", &dest, &options).unwrap();
    assert_eq!(report.extracted, vec!["cifar-10-binary.tar.gz"]);
    let train = load_cifar(&report.dir, Cifar::Ten, Split::Train).unwrap();
    assert_eq!(train.labels, vec![0, 1, 2, 3, 4]);
    assert_eq!(train.image(1), &payload(3072, 1)[..]);
    assert!(!report.dir.join(".extracting").exists());
    // Already downloaded and extracted: nothing to do.
    let again = get("cifar10", &dest, &options).unwrap();
    assert!(again.downloaded.is_empty() && again.extracted.is_empty());
    assert_eq!(server.seen().len(), 1);
    std::fs::remove_dir_all(&dest).ok();
}
