//! Safetensors I/O: named tensors plus string metadata in one file, the format of Hugging Face
//! and of jizen's checkpoints.
//!
//! The format: 8 bytes (little-endian `u64`) giving the length `n` of a JSON header, the `n`
//! header bytes, then the tensor data. The header maps each tensor name to
//! `{"dtype": "F32", "shape": [3, 4], "data_offsets": [begin, end]}` (offsets relative to the
//! start of the data) and may hold a `"__metadata__"` object of string → string.
//!
//! Reading ([`load`], [`load_with_metadata`], [`from_bytes`], [`SafetensorsFile`]) validates the
//! whole header before touching any data, so no input can panic; every error is an
//! [`Error::File`] that names the file and the problem. Files are memory-mapped and each tensor
//! is copied into its own storage when it is read.
//!
//! jizen computes in `f32`, `f64` and `i64`, so file dtypes are mapped like this:
//!
//! | file dtype                               | jizen dtype | how                                |
//! |------------------------------------------|-------------|------------------------------------|
//! | `F32`, `F64`, `I64`                      | same        | bit for bit                        |
//! | `BF16`, `F16`                            | `F32`       | exact (every value is representable) |
//! | `I32`, `U32`, `I16`, `U16`, `I8`, `U8`   | `I64`       | exact                              |
//! | `BOOL`                                   | `I64`       | 0 → 0, any other byte → 1          |
//! | `U64`                                    | `I64`       | exact; a value above `i64::MAX` is an error |
//! | `F8_*`, `F6_*`, `F4`, `C64`, others      | —           | an error naming the tensor and dtype |
//!
//! Writing ([`save`], [`to_bytes`]) stores `f32`, `f64` and `i64` tensors of any layout (views
//! are written contiguously) in the canonical layout: the header JSON is padded with spaces to
//! a multiple of 8 bytes and the tensors are laid out 8-byte dtypes first, then by name, so
//! every tensor starts at an offset aligned to its element size. PyTorch's
//! `safetensors.torch.load_file` reads the result.
//!
//! ```
//! use jizen_tensor::{safetensors, Tensor};
//! use std::path::Path;
//! let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
//! let bytes = safetensors::to_bytes([("fc.weight", &w)], None)?;
//! let (tensors, metadata) = safetensors::from_bytes(&bytes, Path::new("<memory>"))?;
//! assert_eq!(tensors["fc.weight"].to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0]);
//! assert!(metadata.is_empty());
//! # Ok::<(), jizen_tensor::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde_json::{Map, Value};

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The largest header accepted or written (the limit of the reference implementation).
const MAX_HEADER_BYTES: u64 = 100_000_000;
/// The header key that holds the string metadata instead of a tensor.
const METADATA_KEY: &str = "__metadata__";

fn file_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::File { path: path.to_path_buf(), msg: msg.into() }
}

// ------------------------------------------------------------------------------------ dtypes

/// The dtypes of a safetensors file that jizen can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileDType {
    Bool,
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F16,
    BF16,
    F32,
    F64,
}

/// Dtypes of the format that jizen recognises but cannot represent.
const UNREADABLE_DTYPES: &[&str] =
    &["F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"];

impl FileDType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "BOOL" => Self::Bool,
            "U8" => Self::U8,
            "I8" => Self::I8,
            "I16" => Self::I16,
            "U16" => Self::U16,
            "I32" => Self::I32,
            "U32" => Self::U32,
            "I64" => Self::I64,
            "U64" => Self::U64,
            "F16" => Self::F16,
            "BF16" => Self::BF16,
            "F32" => Self::F32,
            "F64" => Self::F64,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Bool => "BOOL",
            Self::U8 => "U8",
            Self::I8 => "I8",
            Self::I16 => "I16",
            Self::U16 => "U16",
            Self::I32 => "I32",
            Self::U32 => "U32",
            Self::I64 => "I64",
            Self::U64 => "U64",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::F32 => "F32",
            Self::F64 => "F64",
        }
    }

    fn size(self) -> usize {
        match self {
            Self::Bool | Self::U8 | Self::I8 => 1,
            Self::I16 | Self::U16 | Self::F16 | Self::BF16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    fn of(dtype: DType) -> Self {
        match dtype {
            DType::F32 => Self::F32,
            DType::F64 => Self::F64,
            DType::I64 => Self::I64,
        }
    }
}

// ------------------------------------------------------------------------------------ header

/// Where one tensor lives in the data section (validated: in range, size matches the shape).
#[derive(Clone, Debug)]
struct TensorInfo {
    dtype: FileDType,
    shape: Vec<usize>,
    /// Byte range relative to the start of the data section.
    begin: usize,
    end: usize,
}

/// A parsed and fully validated header.
#[derive(Debug)]
struct Header {
    tensors: BTreeMap<String, TensorInfo>,
    metadata: HashMap<String, String>,
    /// Offset of the data section from the start of the file.
    data_start: usize,
}

/// The kind of a JSON value, for error messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses and validates the header of a whole file's bytes. Touches no tensor data.
fn parse_header(bytes: &[u8], path: &Path) -> Result<Header> {
    let len = bytes.len();
    if len == 0 {
        return Err(file_err(path, "file is empty; a safetensors file starts with an 8-byte header length"));
    }
    let Some((prefix, rest)) = bytes.split_first_chunk::<8>() else {
        return Err(file_err(
            path,
            format!(
                "file is only {len} bytes, too short for the 8-byte header length that starts a \
                 safetensors file"
            ),
        ));
    };
    let n = u64::from_le_bytes(*prefix);
    if n > rest.len() as u64 {
        return Err(file_err(
            path,
            format!(
                "header length says {n} bytes, but only {} bytes follow the 8-byte length prefix \
                 (the file is truncated or is not a safetensors file)",
                rest.len()
            ),
        ));
    }
    if n > MAX_HEADER_BYTES {
        return Err(file_err(
            path,
            format!(
                "header length {n} bytes exceeds the {MAX_HEADER_BYTES}-byte limit (not a \
                 safetensors file?)"
            ),
        ));
    }
    if n == 0 {
        return Err(file_err(path, "header length is 0; the header must be a JSON object"));
    }
    // n <= rest.len(), so these conversions and splits are in range.
    let (header_bytes, data) = rest.split_at(n as usize);
    let text = std::str::from_utf8(header_bytes).map_err(|e| {
        file_err(
            path,
            format!(
                "header is not UTF-8 text (invalid byte at header offset {}); not a safetensors \
                 file?",
                e.valid_up_to()
            ),
        )
    })?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| file_err(path, format!("header is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(file_err(
            path,
            format!(
                "header is {}, but must be a JSON object mapping tensor names to their dtype, \
                 shape and data_offsets",
                json_kind(&value)
            ),
        ));
    };

    let mut metadata = HashMap::new();
    let mut raw = Vec::with_capacity(map.len());
    for (name, v) in &map {
        if name == METADATA_KEY {
            metadata = parse_metadata(v, path)?;
        } else {
            raw.push(parse_info(name, v, path)?);
        }
    }
    check_offsets(&raw, data.len() as u64, path)?;

    let tensors = raw
        .into_iter()
        .map(|r| {
            // check_offsets guarantees end <= data.len(), so both fit in usize.
            let info = TensorInfo { dtype: r.dtype, shape: r.shape, begin: r.begin as usize, end: r.end as usize };
            (r.name.to_string(), info)
        })
        .collect();
    Ok(Header { tensors, metadata, data_start: 8 + n as usize })
}

/// `__metadata__`: an object whose values are all strings.
fn parse_metadata(v: &Value, path: &Path) -> Result<HashMap<String, String>> {
    let Value::Object(m) = v else {
        return Err(file_err(path, format!("{METADATA_KEY} is {}, but must be an object of strings", json_kind(v))));
    };
    m.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(file_err(
                path,
                format!(
                    "{METADATA_KEY} value for key \"{k}\" is {}, but safetensors metadata values \
                     must be strings",
                    json_kind(other)
                ),
            )),
        })
        .collect()
}

/// One header entry, checked on its own (offsets not yet checked against the others).
struct RawInfo<'a> {
    name: &'a str,
    dtype: FileDType,
    shape: Vec<usize>,
    begin: u64,
    end: u64,
}

fn parse_info<'a>(name: &'a str, v: &Value, path: &Path) -> Result<RawInfo<'a>> {
    let err = |msg: String| file_err(path, format!("tensor \"{name}\" {msg}"));
    let Value::Object(o) = v else {
        return Err(err(format!(
            "is described by {}, but must be an object with dtype, shape and data_offsets",
            json_kind(v)
        )));
    };
    let field = |key: &str| o.get(key).ok_or_else(|| err(format!("has no \"{key}\" field")));

    let dtype = match field("dtype")? {
        Value::String(s) => match FileDType::parse(s) {
            Some(d) => d,
            None if UNREADABLE_DTYPES.contains(&s.as_str()) => {
                return Err(err(format!(
                    "has dtype {s}, which jizen cannot read (it reads F32, F64, I64, BF16, F16, \
                     I32, U32, I16, U16, I8, U8, BOOL, and U64 within the i64 range)"
                )))
            }
            None => return Err(err(format!("has unknown dtype \"{s}\""))),
        },
        other => return Err(err(format!("dtype is {}, but must be a string such as \"F32\"", json_kind(other)))),
    };

    let shape_v = field("shape")?;
    let shape: Option<Vec<usize>> = match shape_v {
        Value::Array(a) => a.iter().map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok())).collect(),
        _ => None,
    };
    let Some(shape) = shape else {
        return Err(err(format!("shape {shape_v} is not a list of non-negative integers")));
    };

    let offsets_v = field("data_offsets")?;
    let offsets = match offsets_v {
        Value::Array(a) if a.len() == 2 => a[0].as_u64().zip(a[1].as_u64()),
        _ => None,
    };
    let Some((begin, end)) = offsets else {
        return Err(err(format!("data_offsets {offsets_v} are not two non-negative byte offsets [begin, end]")));
    };
    if begin > end {
        return Err(err(format!("data_offsets [{begin}, {end}] run backwards (begin is after end)")));
    }

    // The element count must fit, and so must the strides a contiguous layout computes (they
    // treat zero-length dimensions as 1), so an empty tensor cannot claim an absurd shape.
    let too_big = || err(format!("shape {shape:?} has too many elements"));
    let numel = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(too_big)?;
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1))).ok_or_else(too_big)?;
    let nbytes = numel.checked_mul(dtype.size()).ok_or_else(too_big)?;
    if nbytes as u64 != end - begin {
        return Err(err(format!(
            "shape {shape:?} needs {nbytes} bytes ({numel} × {}-byte {}), its data_offsets \
             [{begin}, {end}] give {}",
            dtype.size(),
            dtype.name(),
            end - begin
        )));
    }
    Ok(RawInfo { name, dtype, shape, begin, end })
}

/// The tensors' byte ranges must tile the data section exactly: no overlaps, no gaps, nothing
/// beyond the end of the file and nothing unclaimed after the last tensor. Empty tensors only
/// need to point inside the data.
fn check_offsets(raw: &[RawInfo<'_>], data_len: u64, path: &Path) -> Result<()> {
    let mut spans: Vec<&RawInfo<'_>> = raw.iter().filter(|r| r.begin < r.end).collect();
    spans.sort_by_key(|r| (r.begin, r.end));
    for w in spans.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b.begin < a.end {
            return Err(file_err(
                path,
                format!(
                    "tensors \"{}\" (data_offsets [{}, {}]) and \"{}\" (data_offsets [{}, {}]) \
                     overlap",
                    a.name, a.begin, a.end, b.name, b.begin, b.end
                ),
            ));
        }
    }
    let mut gap = None;
    let mut covered = 0;
    for s in &spans {
        if s.begin > covered && gap.is_none() {
            gap = Some((covered, s.begin));
        }
        covered = s.end;
    }
    let total = covered;
    if total > data_len {
        if gap.is_none() {
            return Err(file_err(
                path,
                format!("truncated: header says {total} bytes of tensor data, file has {data_len}"),
            ));
        }
        if let Some(r) = spans.iter().find(|r| r.end > data_len) {
            return Err(file_err(
                path,
                format!(
                    "tensor \"{}\" data_offsets [{}, {}] are out of range: the file has only \
                     {data_len} bytes of tensor data",
                    r.name, r.begin, r.end
                ),
            ));
        }
    }
    if let Some((a, b)) = gap {
        return Err(file_err(
            path,
            format!(
                "bytes [{a}, {b}) of the tensor data belong to no tensor (data_offsets must \
                 cover the data without gaps)"
            ),
        ));
    }
    if total < data_len {
        return Err(file_err(
            path,
            format!(
                "{} bytes of tensor data after the last tensor (which ends at byte {total}) \
                 belong to no tensor",
                data_len - total
            ),
        ));
    }
    if let Some(r) = raw.iter().find(|r| r.begin == r.end && r.begin > data_len) {
        return Err(file_err(
            path,
            format!(
                "empty tensor \"{}\" data_offsets [{}, {}] are out of range: the file has only \
                 {data_len} bytes of tensor data",
                r.name, r.begin, r.end
            ),
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------ decoding

/// Fixed-size little-endian chunks of `bytes` (whose length is a multiple of `N`).
fn le_chunks<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes.chunks_exact(N).map(|c| <[u8; N]>::try_from(c).unwrap_or([0; N]))
}

/// Copies one validated tensor out of the data section, converting its dtype (see the module
/// documentation).
fn decode(name: &str, info: &TensorInfo, data: &[u8], path: &Path) -> Result<Tensor> {
    let Some(b) = data.get(info.begin..info.end) else {
        // Unreachable after `check_offsets`; kept so that no input can panic.
        return Err(file_err(path, format!("tensor \"{name}\" data lies outside the file")));
    };
    let shape = &info.shape;
    match info.dtype {
        FileDType::F32 => Tensor::from_vec(le_chunks(b).map(f32::from_le_bytes).collect(), shape),
        FileDType::F64 => Tensor::from_vec(le_chunks(b).map(f64::from_le_bytes).collect(), shape),
        FileDType::I64 => Tensor::from_vec(le_chunks(b).map(i64::from_le_bytes).collect(), shape),
        FileDType::BF16 => {
            Tensor::from_vec(le_chunks(b).map(|c| half::bf16::from_le_bytes(c).to_f32()).collect(), shape)
        }
        FileDType::F16 => Tensor::from_vec(le_chunks(b).map(|c| half::f16::from_le_bytes(c).to_f32()).collect(), shape),
        FileDType::I32 => Tensor::from_vec(le_chunks(b).map(|c| i32::from_le_bytes(c) as i64).collect(), shape),
        FileDType::U32 => Tensor::from_vec(le_chunks(b).map(|c| u32::from_le_bytes(c) as i64).collect(), shape),
        FileDType::I16 => Tensor::from_vec(le_chunks(b).map(|c| i16::from_le_bytes(c) as i64).collect(), shape),
        FileDType::U16 => Tensor::from_vec(le_chunks(b).map(|c| u16::from_le_bytes(c) as i64).collect(), shape),
        FileDType::I8 => Tensor::from_vec(b.iter().map(|&x| x as i8 as i64).collect(), shape),
        FileDType::U8 => Tensor::from_vec(b.iter().map(|&x| x as i64).collect(), shape),
        FileDType::Bool => Tensor::from_vec(b.iter().map(|&x| i64::from(x != 0)).collect(), shape),
        FileDType::U64 => {
            let mut out = Vec::with_capacity(b.len() / 8);
            for (i, c) in le_chunks(b).enumerate() {
                let v = u64::from_le_bytes(c);
                let Ok(v) = i64::try_from(v) else {
                    return Err(file_err(
                        path,
                        format!(
                            "tensor \"{name}\" (U64) holds {v} at element {i}, beyond the i64 \
                             range jizen uses for integers"
                        ),
                    ));
                };
                out.push(v);
            }
            Tensor::from_vec(out, shape)
        }
    }
}

/// The error for a name that is not in the file, suggesting the closest existing names.
fn missing_err(path: &Path, name: &str, header: &Header) -> Error {
    if header.tensors.is_empty() {
        return file_err(path, format!("no tensor named \"{name}\": the file holds no tensors"));
    }
    let mut scored: Vec<(usize, &str)> = header.tensors.keys().map(|k| (edit_distance(name, k), k.as_str())).collect();
    scored.sort();
    let closest: Vec<String> = scored.iter().take(3).map(|(_, k)| format!("\"{k}\"")).collect();
    file_err(
        path,
        format!(
            "no tensor named \"{name}\" (the file has {} tensors; closest: {})",
            header.tensors.len(),
            closest.join(", ")
        ),
    )
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

// ------------------------------------------------------------------------------------ reading

/// A memory-mapped safetensors file whose tensors are read on demand.
///
/// Opening validates the whole header (see the [module documentation](self)); [`get`] then
/// copies one tensor out of the mapping. The file must not be modified in place while it is
/// open; replacing it with [`save`] is safe, since that renames a new file over the old one.
///
/// [`get`]: SafetensorsFile::get
pub struct SafetensorsFile {
    path: PathBuf,
    mmap: Mmap,
    header: Header,
}

impl SafetensorsFile {
    /// Maps the file and validates its header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| file_err(path, format!("cannot open: {e}")))?;
        let meta = file.metadata().map_err(|e| file_err(path, format!("cannot read file metadata: {e}")))?;
        if !meta.is_file() {
            return Err(file_err(path, "is not a regular file"));
        }
        if meta.len() == 0 {
            // Mapping an empty file fails on some platforms; the header check names the problem.
            parse_header(&[], path)?;
        }
        // SAFETY: the mapping is only read, and only within its length. As with any memory
        // map, modifying the file in place while it is open is the caller's mistake (documented
        // on the type); jizen itself only ever replaces files by renaming.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| file_err(path, format!("cannot memory-map: {e}")))?;
        let header = parse_header(&mmap, path)?;
        Ok(SafetensorsFile { path: path.to_path_buf(), mmap, header })
    }

    /// The names of all tensors in the file, sorted.
    pub fn names(&self) -> Vec<String> {
        self.header.tensors.keys().cloned().collect()
    }

    /// The shape of the named tensor, without reading its data.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        self.info(name).map(|i| i.shape.clone())
    }

    /// Reads the named tensor into a new contiguous tensor (converting its dtype as described in
    /// the [module documentation](self)). An absent name is an error that names the file, the
    /// missing key and the closest existing names.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        let info = self.info(name)?;
        let data = self.mmap.get(self.header.data_start..).unwrap_or(&[]);
        decode(name, info, data, &self.path)
    }

    /// The `__metadata__` map of the file (empty if it has none).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.header.metadata
    }

    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.header.tensors.get(name).ok_or_else(|| missing_err(&self.path, name, &self.header))
    }
}

/// Loads every tensor of a safetensors file (memory-mapped read).
///
/// `F32`, `F64` and `I64` keep their dtype; `BF16` and `F16` become `f32`; `I32`, `U32`,
/// `I16`, `U16`, `I8`, `U8`, `BOOL` (and `U64` whose values fit) become `i64`. Any other dtype
/// (`F8_*`, complex, ...) is an error naming the tensor. See the [module documentation](self).
pub fn load(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    load_with_metadata(path).map(|(t, _)| t)
}

/// Like [`load`], and also returns the `__metadata__` map (empty if the file has none).
pub fn load_with_metadata(path: impl AsRef<Path>) -> Result<(BTreeMap<String, Tensor>, HashMap<String, String>)> {
    let file = SafetensorsFile::open(path)?;
    let tensors = file.header.tensors.keys().map(|name| Ok((name.clone(), file.get(name)?))).collect::<Result<_>>()?;
    Ok((tensors, file.header.metadata))
}

/// Parses a safetensors file held in memory; `name_for_errors` only appears in error messages.
/// Returns the tensors (converted as in [`load`]) and the `__metadata__` map.
pub fn from_bytes(bytes: &[u8], name_for_errors: &Path) -> Result<(BTreeMap<String, Tensor>, HashMap<String, String>)> {
    let header = parse_header(bytes, name_for_errors)?;
    let data = bytes.get(header.data_start..).unwrap_or(&[]);
    let tensors = header
        .tensors
        .iter()
        .map(|(name, info)| Ok((name.clone(), decode(name, info, data, name_for_errors)?)))
        .collect::<Result<_>>()?;
    Ok((tensors, header.metadata))
}

// ------------------------------------------------------------------------------------ writing

/// What to write: the 8-byte length and padded header, then the tensors in this order.
struct Plan<'a> {
    header: Vec<u8>,
    order: Vec<(&'a str, &'a Tensor)>,
}

/// Lays the tensors out (8-byte dtypes first, then by name) and builds the header.
fn plan<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    metadata: Option<&HashMap<String, String>>,
) -> std::result::Result<Plan<'a>, String> {
    let mut order: Vec<(&'a str, &'a Tensor)> = tensors.into_iter().collect();
    order.sort_by(|(na, ta), (nb, tb)| {
        let (sa, sb) = (ta.dtype().size_in_bytes(), tb.dtype().size_in_bytes());
        sb.cmp(&sa).then(na.cmp(nb))
    });
    let mut map = Map::new();
    if let Some(meta) = metadata {
        let m: Map<String, Value> = meta.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        map.insert(METADATA_KEY.to_string(), Value::Object(m));
    }
    let mut offset = 0usize;
    for (name, t) in &order {
        if *name == METADATA_KEY {
            return Err(format!("tensor name \"{METADATA_KEY}\" is reserved for the metadata map"));
        }
        let end = t
            .numel()
            .checked_mul(t.dtype().size_in_bytes())
            .and_then(|n| n.checked_add(offset))
            .ok_or_else(|| format!("tensor \"{name}\" of shape {:?} is too large to write", t.shape()))?;
        let entry = serde_json::json!({
            "dtype": FileDType::of(t.dtype()).name(),
            "shape": t.shape(),
            "data_offsets": [offset, end],
        });
        if map.insert(name.to_string(), entry).is_some() {
            return Err(format!("tensor name \"{name}\" is given twice"));
        }
        offset = end;
    }
    let mut json =
        serde_json::to_vec(&Value::Object(map)).map_err(|e| format!("cannot encode the header as JSON: {e}"))?;
    // Pad with spaces so that the data (after the 8-byte length) starts 8-byte aligned.
    json.resize(json.len().next_multiple_of(8), b' ');
    if json.len() as u64 > MAX_HEADER_BYTES {
        return Err(format!(
            "the header would be {} bytes, over the {MAX_HEADER_BYTES}-byte limit that \
             safetensors readers accept (too much metadata or too many tensors)",
            json.len()
        ));
    }
    let mut header = Vec::with_capacity(8 + json.len());
    header.extend_from_slice(&(json.len() as u64).to_le_bytes());
    header.extend_from_slice(&json);
    Ok(Plan { header, order })
}

/// Writes `values` as little-endian bytes, a block at a time.
fn write_le<W: Write, T: Copy, const N: usize>(w: &mut W, values: &[T], to_le: fn(T) -> [u8; N]) -> io::Result<()> {
    const BLOCK: usize = 8192;
    let mut buf = Vec::with_capacity(N * BLOCK.min(values.len()));
    for block in values.chunks(BLOCK) {
        buf.clear();
        for &v in block {
            buf.extend_from_slice(&to_le(v));
        }
        w.write_all(&buf)?;
    }
    Ok(())
}

/// Writes the header and every tensor's elements in row-major order.
fn write_plan<W: Write>(w: &mut W, plan: &Plan<'_>) -> io::Result<()> {
    w.write_all(&plan.header)?;
    for (_, t) in &plan.order {
        let written = match t.dtype() {
            DType::F32 => t.with_data::<f32, _>(|s| write_le(w, s, f32::to_le_bytes)),
            DType::F64 => t.with_data::<f64, _>(|s| write_le(w, s, f64::to_le_bytes)),
            DType::I64 => t.with_data::<i64, _>(|s| write_le(w, s, i64::to_le_bytes)),
        };
        written.map_err(|e| io::Error::other(e.to_string()))??;
    }
    Ok(())
}

/// Serializes named tensors (`f32`, `f64`, `i64`; any layout) and optional string metadata to
/// the bytes of a safetensors file, exactly as [`save`] writes them.
pub fn to_bytes<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    metadata: Option<&HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let invalid = |msg: String| Error::Invalid { op: "safetensors::to_bytes", msg };
    let plan = plan(tensors, metadata).map_err(invalid)?;
    let mut out = Vec::new();
    write_plan(&mut out, &plan).map_err(|e| invalid(e.to_string()))?;
    Ok(out)
}

/// The temporary file a save writes first: `<path>.tmp-<pid>`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".tmp-{}", std::process::id()));
    PathBuf::from(s)
}

/// Saves named tensors (`f32`, `f64`, `i64`; any layout, views are written contiguously) with
/// optional string metadata to a safetensors file.
///
/// The save is atomic: the bytes go to `<path>.tmp-<pid>`, which is flushed to disk and then
/// renamed over `path`, and finally the directory is synced. A failed save removes the
/// temporary file and leaves any existing file at `path` untouched. (A failure to sync the
/// directory after the rename is ignored: the new file is complete by then, only the
/// durability of the rename across a power loss is in doubt, and some file systems refuse to
/// sync directories.)
///
/// Names must be unique and must not be `__metadata__`.
pub fn save<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    metadata: Option<&HashMap<String, String>>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    let plan = plan(tensors, metadata).map_err(|m| file_err(path, m))?;
    let tmp = tmp_path(path);
    let written = write_and_rename(&plan, &tmp, path);
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_parent_dir(path);
    Ok(())
}

fn write_and_rename(plan: &Plan<'_>, tmp: &Path, path: &Path) -> Result<()> {
    let file = File::create(tmp)
        .map_err(|e| file_err(path, format!("cannot create temporary file {}: {e}", tmp.display())))?;
    let mut w = BufWriter::new(file);
    let io_err = |e: io::Error| file_err(path, format!("cannot write temporary file {}: {e}", tmp.display()));
    write_plan(&mut w, plan).map_err(io_err)?;
    let file = w.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    std::fs::rename(tmp, path)
        .map_err(|e| file_err(path, format!("cannot rename temporary file {} over it: {e}", tmp.display())))
}

/// Syncs the directory holding `path`, so that a rename into it survives a crash (Unix only;
/// errors are ignored, see [`save`]).
fn sync_parent_dir(path: &Path) {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}
