//! Safetensors I/O: round trips, dtype conversion on load, hostile files, atomic saves.
//!
//! Oracles: bit patterns written by hand (bf16/f16 encodings from IEEE 754 and the bfloat16
//! definition), the reference `safetensors` crate (it must accept every file jizen writes), and
//! the format specification for the broken files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use jizen_tensor::safetensors::{self as st, SafetensorsFile};
use jizen_tensor::{DType, Tensor};

// ------------------------------------------------------------------------------------ helpers

/// A fresh, empty directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("jizen-safetensors-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A safetensors file from a header (as given, unpadded) and raw data bytes.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Writes `bytes` to `file_name` and checks that loading fails, by path and from bytes, with a
/// message naming the file and containing every one of `expected`. Returns the message.
fn load_error(file_name: &str, bytes: &[u8], expected: &[&str]) -> String {
    let dir = TempDir::new("bad");
    let path = dir.join(file_name);
    std::fs::write(&path, bytes).unwrap();
    let msg = match st::load(&path) {
        Ok(t) => panic!("{file_name}: loaded {} tensors, expected an error", t.len()),
        Err(e) => e.to_string(),
    };
    eprintln!("{msg}"); // shown with --nocapture, to read the messages
    assert!(msg.contains(file_name), "message lacks the file name: {msg}");
    for e in expected {
        assert!(msg.contains(e), "message lacks {e:?}: {msg}");
    }
    let from_mem = st::from_bytes(bytes, Path::new(file_name)).unwrap_err().to_string();
    assert!(from_mem.contains(file_name), "{from_mem}");
    for e in expected {
        assert!(from_mem.contains(e), "from_bytes message lacks {e:?}: {from_mem}");
    }
    // Header problems fail at `open`; value problems (U64 beyond i64) at `get`.
    if let Ok(file) = SafetensorsFile::open(&path) {
        assert!(file.names().iter().any(|n| file.get(n).is_err()));
    }
    msg
}

fn f32_bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
}

fn f64_bits(t: &Tensor) -> Vec<u64> {
    t.to_vec::<f64>().unwrap().iter().map(|x| x.to_bits()).collect()
}

/// A well-formed file with two F32 tensors: "a" [2] at [0, 8) and "b" [2] at [8, 16).
fn two_tensor_file() -> Vec<u8> {
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#;
    let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    raw_file(header, &data)
}

// ------------------------------------------------------------------------------------ round trips

#[test]
fn round_trip_is_bitwise_with_views_scalars_empties_and_metadata() {
    let dir = TempDir::new("roundtrip");
    let path = dir.join("model.safetensors");

    // Values that a lossy path would disturb: NaN payload, -0.0, infinities, a subnormal.
    let f = Tensor::from_vec(
        vec![1.5f32, -0.0, f32::from_bits(0x7fc0_1234), f32::INFINITY, f32::NEG_INFINITY, 1e-45],
        &[2, 3],
    )
    .unwrap();
    let ft = f.t().unwrap(); // [3, 2], non-contiguous
    assert!(!ft.is_contiguous());
    let d = Tensor::from_vec(vec![std::f64::consts::PI, -1e-310, f64::MAX, 0.1], &[4]).unwrap();
    let i = Tensor::from_vec(vec![i64::MIN, -1, 0, i64::MAX], &[2, 2]).unwrap();
    let narrowed = i.narrow(1, 1, 1).unwrap(); // [2, 1] view with stride 2
    let expanded = Tensor::from_vec(vec![7.0f64, 8.0], &[2, 1]).unwrap().expand(&[2, 3]).unwrap(); // stride-0 view
    let scalar = Tensor::scalar(42.25, DType::F64);
    let empty = Tensor::zeros(&[0, 3], DType::F32);
    let mut meta = HashMap::new();
    meta.insert("epoch".to_string(), "3".to_string());
    meta.insert("note".to_string(), "ünïcode \"quoted\"".to_string());

    let tensors: Vec<(&str, &Tensor)> = vec![
        ("f", &f),
        ("f.t", &ft),
        ("d", &d),
        ("i", &i),
        ("i.narrow", &narrowed),
        ("expanded", &expanded),
        ("scalar", &scalar),
        ("empty", &empty),
    ];
    st::save(tensors.clone(), Some(&meta), &path).unwrap();
    let (loaded, loaded_meta) = st::load_with_metadata(&path).unwrap();
    assert_eq!(loaded_meta, meta);
    assert_eq!(loaded.len(), tensors.len());
    for (name, t) in &tensors {
        let l = &loaded[*name];
        assert_eq!(l.shape(), t.shape(), "{name}");
        assert_eq!(l.dtype(), t.dtype(), "{name}");
        match t.dtype() {
            DType::F32 => assert_eq!(f32_bits(l), f32_bits(t), "{name}"),
            DType::F64 => assert_eq!(f64_bits(l), f64_bits(t), "{name}"),
            DType::I64 => assert_eq!(l.to_vec::<i64>().unwrap(), t.to_vec::<i64>().unwrap()),
        }
    }
    // The transpose is written in its own row-major order: [1.5, inf, -0.0, -inf, NaN, 1e-45].
    assert_eq!(f32_bits(&loaded["f.t"])[1..3], [f32::INFINITY.to_bits(), (-0.0f32).to_bits()]);
    assert_eq!(loaded["i.narrow"].to_vec::<i64>().unwrap(), vec![-1, i64::MAX]);
    assert_eq!(loaded["expanded"].to_vec::<f64>().unwrap(), vec![7.0, 7.0, 7.0, 8.0, 8.0, 8.0]);
    assert_eq!(loaded["scalar"].shape(), &[] as &[usize]);
    assert_eq!(loaded["scalar"].item().unwrap(), 42.25);
    assert_eq!(loaded["empty"].shape(), &[0, 3]);

    // The in-memory form is the same bytes; loading it gives the same tensors.
    let bytes = st::to_bytes(tensors.clone(), Some(&meta)).unwrap();
    assert_eq!(bytes, std::fs::read(&path).unwrap());
    let (mem, mem_meta) = st::from_bytes(&bytes, Path::new("mem")).unwrap();
    assert_eq!(mem_meta, meta);
    assert_eq!(f32_bits(&mem["f.t"]), f32_bits(&ft));

    // Canonical layout: header padded to 8 bytes, every tensor aligned to its element size.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(n % 8, 0);
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(header.trim_end_matches(' ').ends_with('}'), "{header:?}");

    // The reference implementation accepts the file and sees the same tensors and bytes.
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = reference.names().iter().map(|s| s.to_string()).collect();
    names.sort();
    let mut expect: Vec<&str> = tensors.iter().map(|(n, _)| *n).collect();
    expect.sort();
    assert_eq!(names, expect);
    for (name, t) in &tensors {
        let view = reference.tensor(name).unwrap();
        assert_eq!(view.shape(), t.shape(), "{name}");
        let want = match t.dtype() {
            DType::F32 => safetensors::Dtype::F32,
            DType::F64 => safetensors::Dtype::F64,
            DType::I64 => safetensors::Dtype::I64,
        };
        assert_eq!(view.dtype(), want, "{name}");
        let le: Vec<u8> = match t.dtype() {
            DType::F32 => t.to_vec::<f32>().unwrap().iter().flat_map(|x| x.to_le_bytes()).collect(),
            DType::F64 => t.to_vec::<f64>().unwrap().iter().flat_map(|x| x.to_le_bytes()).collect(),
            DType::I64 => t.to_vec::<i64>().unwrap().iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        assert_eq!(view.data(), le.as_slice(), "{name}");
        let offset = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
        assert_eq!(offset % t.dtype().size_in_bytes(), 0, "{name} is misaligned");
    }
}

#[test]
fn safetensors_file_reads_names_shapes_tensors_and_metadata_on_demand() {
    let dir = TempDir::new("file");
    let path = dir.join("lazy.safetensors");
    let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    let b = Tensor::from_vec(vec![0.5f64, -0.5], &[2]).unwrap();
    let idx = Tensor::from_vec(vec![3i64, 1, 4], &[3]).unwrap();
    st::save([("z.idx", &idx), ("fc.weight", &w), ("fc.bias", &b)], None, &path).unwrap();

    let file = SafetensorsFile::open(&path).unwrap();
    assert_eq!(file.names(), vec!["fc.bias", "fc.weight", "z.idx"]);
    assert_eq!(file.shape("fc.weight").unwrap(), vec![2, 3]);
    assert_eq!(file.shape("fc.bias").unwrap(), vec![2]);
    assert_eq!(file.get("fc.weight").unwrap().to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(file.get("z.idx").unwrap().to_vec::<i64>().unwrap(), vec![3, 1, 4]);
    assert!(file.metadata().is_empty());
    assert!(file.shape("nope").unwrap_err().to_string().contains("nope"));

    // Without metadata, load_with_metadata gives an empty map.
    let (all, meta) = st::load_with_metadata(&path).unwrap();
    assert!(meta.is_empty());
    assert_eq!(all.keys().collect::<Vec<_>>(), vec!["fc.bias", "fc.weight", "z.idx"]);
    let plain: BTreeMap<String, Tensor> = st::load(&path).unwrap();
    assert_eq!(plain["fc.bias"].to_vec::<f64>().unwrap(), vec![0.5, -0.5]);
}

// ------------------------------------------------------------------------------------ dtype conversion

#[test]
fn bf16_file_loads_as_f32() {
    // bfloat16 is the top half of an f32: 1.0 = 0x3F80, -2.0 = 0xC000, 0.5 = 0x3F00,
    // +inf = 0x7F80, 3.140625 = 0x4049, the smallest subnormal 0x0001 = 2^-133.
    let bits: [u16; 6] = [0x3F80, 0xC000, 0x3F00, 0x7F80, 0x4049, 0x0001];
    let data: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    let bytes = raw_file(r#"{"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]}}"#, &data);
    let dir = TempDir::new("bf16");
    let path = dir.join("bf16.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let w = &st::load(&path).unwrap()["w"];
    assert_eq!(w.dtype(), DType::F32);
    assert_eq!(w.shape(), &[2, 3]);
    let want = [1.0f32, -2.0, 0.5, f32::INFINITY, 3.140625, 2f32.powi(-133)];
    assert_eq!(f32_bits(w), want.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
}

#[test]
fn f16_file_loads_as_f32() {
    // IEEE half: 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800, max 65504 = 0x7BFF,
    // smallest subnormal 0x0001 = 2^-24, -0.0 = 0x8000.
    let bits: [u16; 6] = [0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000];
    let data: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    let bytes =
        raw_file(r#"{"__metadata__":{"format":"pt"},"h":{"dtype":"F16","shape":[6],"data_offsets":[0,12]}}"#, &data);
    let (t, meta) = st::from_bytes(&bytes, Path::new("f16.safetensors")).unwrap();
    assert_eq!(meta["format"], "pt");
    let h = &t["h"];
    assert_eq!(h.dtype(), DType::F32);
    let want = [1.0f32, -2.0, 0.5, 65504.0, 2f32.powi(-24), -0.0];
    assert_eq!(f32_bits(h), want.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
}

#[test]
fn integer_and_bool_files_load_as_i64() {
    let mut data = Vec::new();
    data.extend((-5i32..-2).flat_map(|x| x.to_le_bytes())); // I32 [3] at [0, 12)
    data.extend([u32::MAX].iter().flat_map(|x| x.to_le_bytes())); // U32 [1] at [12, 16)
    data.extend([i16::MIN, 7].iter().flat_map(|x| x.to_le_bytes())); // I16 [2] at [16, 20)
    data.extend([u16::MAX].iter().flat_map(|x| x.to_le_bytes())); // U16 [1] at [20, 22)
    data.extend([0x80u8, 0x7F]); // I8 [2] at [22, 24): -128, 127
    data.extend([0u8, 255]); // U8 [2] at [24, 26)
    data.extend([0u8, 1, 1, 0]); // BOOL [2, 2] at [26, 30)
    data.extend([0u8, 0]); // U8 [2] padding tensor at [30, 32)
    data.extend((i64::MAX as u64).to_le_bytes()); // U64 [1] at [32, 40)
    let header = r#"{
        "i32": {"dtype": "I32", "shape": [3], "data_offsets": [0, 12]},
        "u32": {"dtype": "U32", "shape": [1], "data_offsets": [12, 16]},
        "i16": {"dtype": "I16", "shape": [2], "data_offsets": [16, 20]},
        "u16": {"dtype": "U16", "shape": [1], "data_offsets": [20, 22]},
        "i8":  {"dtype": "I8",  "shape": [2], "data_offsets": [22, 24]},
        "u8":  {"dtype": "U8",  "shape": [2], "data_offsets": [24, 26]},
        "mask": {"dtype": "BOOL", "shape": [2, 2], "data_offsets": [26, 30]},
        "pad": {"dtype": "U8", "shape": [2], "data_offsets": [30, 32]},
        "u64": {"dtype": "U64", "shape": [1], "data_offsets": [32, 40]}
    }"#;
    let (t, _) = st::from_bytes(&raw_file(header, &data), Path::new("ints.safetensors")).unwrap();
    let get = |n: &str| {
        assert_eq!(t[n].dtype(), DType::I64, "{n}");
        t[n].to_vec::<i64>().unwrap()
    };
    assert_eq!(get("i32"), vec![-5, -4, -3]);
    assert_eq!(get("u32"), vec![u32::MAX as i64]);
    assert_eq!(get("i16"), vec![i16::MIN as i64, 7]);
    assert_eq!(get("u16"), vec![65535]);
    assert_eq!(get("i8"), vec![-128, 127]);
    assert_eq!(get("u8"), vec![0, 255]);
    assert_eq!(get("mask"), vec![0, 1, 1, 0]);
    assert_eq!(t["mask"].shape(), &[2, 2]);
    assert_eq!(get("u64"), vec![i64::MAX]);
}

#[test]
fn u64_beyond_i64_is_an_error() {
    let data = [5u64, 1 << 63].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>();
    let bytes = raw_file(r#"{"big":{"dtype":"U64","shape":[2],"data_offsets":[0,16]}}"#, &data);
    load_error("u64.safetensors", &bytes, &["\"big\"", "9223372036854775808", "i64"]);
}

// ------------------------------------------------------------------------------------ hostile files

#[test]
fn empty_file_is_an_error() {
    load_error("empty.safetensors", &[], &["empty"]);
}

#[test]
fn file_shorter_than_the_length_prefix_is_an_error() {
    load_error("short.safetensors", &[1, 2, 3, 4, 5], &["only 5 bytes", "8-byte header length"]);
}

#[test]
fn header_length_beyond_the_file_is_an_error() {
    let mut bytes = 1200u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}      ");
    load_error("long.safetensors", &bytes, &["header length says 1200 bytes", "only 8 bytes"]);
    // A hostile, enormous length must not make jizen allocate or overflow.
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    load_error("huge.safetensors", &huge, &["18446744073709551615", "truncated"]);
}

#[test]
fn header_that_is_not_json_is_an_error() {
    load_error("notjson.safetensors", &raw_file("{\"w\": [1, 2,", &[]), &["header is not valid JSON"]);
    let mut binary = 4u64.to_le_bytes().to_vec();
    binary.extend_from_slice(&[0xff, 0xfe, 0x00, 0x41]);
    load_error("binary.safetensors", &binary, &["not UTF-8"]);
    load_error("array.safetensors", &raw_file("[1, 2]", &[]), &["header is an array", "object"]);
}

#[test]
fn truncated_data_is_an_error() {
    let mut bytes = two_tensor_file();
    bytes.truncate(bytes.len() - 6); // 10 of the 16 data bytes remain
    load_error("cut.safetensors", &bytes, &["truncated: header says 16 bytes of tensor data, file has 10"]);
}

#[test]
fn data_offsets_out_of_range_are_an_error() {
    let big = u64::MAX;
    let header = format!(
        r#"{{"a":{{"dtype":"F32","shape":[2],"data_offsets":[0,8]}},"b":{{"dtype":"F32","shape":[1],"data_offsets":[{},{big}]}}}}"#,
        big - 4
    );
    load_error(
        "range.safetensors",
        &raw_file(&header, &[0; 8]),
        &["tensor \"b\"", "out of range", "only 8 bytes of tensor data"],
    );
    // Offsets that are not integers at all.
    load_error(
        "negative.safetensors",
        &raw_file(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, &[]),
        &["tensor \"a\"", "data_offsets [-4,0] are not two non-negative byte offsets"],
    );
    load_error(
        "backwards.safetensors",
        &raw_file(r#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, &[0; 8]),
        &["tensor \"a\"", "run backwards"],
    );
}

#[test]
fn overlapping_offsets_are_an_error() {
    let header = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#;
    load_error("overlap.safetensors", &raw_file(header, &[0; 24]), &["\"a\"", "\"b\"", "overlap"]);
}

#[test]
fn gaps_and_unclaimed_trailing_bytes_are_errors() {
    let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    load_error("gap.safetensors", &raw_file(header, &[0; 8]), &["bytes [0, 4)", "belong to no tensor"]);
    let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    load_error("trailing.safetensors", &raw_file(header, &[0; 12]), &["8 bytes of tensor data after the last tensor"]);
}

#[test]
fn unknown_or_unreadable_dtype_is_an_error() {
    let header = r#"{"fc.weight":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#;
    load_error(
        "fp8.safetensors",
        &raw_file(header, &[0; 2]),
        &["tensor \"fc.weight\" has dtype F8_E4M3, which jizen cannot read"],
    );
    let header = r#"{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}}"#;
    load_error("q4.safetensors", &raw_file(header, &[0; 2]), &["tensor \"w\" has unknown dtype \"Q4\""]);
}

#[test]
fn shape_and_byte_count_mismatch_is_an_error() {
    let header = r#"{"w":{"dtype":"F32","shape":[3,4],"data_offsets":[0,40]}}"#;
    load_error(
        "mismatch.safetensors",
        &raw_file(header, &[0; 40]),
        &["tensor \"w\" shape [3, 4] needs 48 bytes", "give 40"],
    );
    // An empty tensor whose shape overflows must be refused, not wrap or panic.
    let header = r#"{"e":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}}"#;
    load_error("overflow.safetensors", &raw_file(header, &[]), &["tensor \"e\"", "too many elements"]);
}

#[test]
fn malformed_entries_and_metadata_are_errors() {
    load_error(
        "nofield.safetensors",
        &raw_file(r#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, &[0; 4]),
        &["tensor \"w\" has no \"shape\" field"],
    );
    load_error(
        "meta.safetensors",
        &raw_file(r#"{"__metadata__":{"epoch":3}}"#, &[]),
        &["__metadata__ value for key \"epoch\" is a number"],
    );
    load_error("entry.safetensors", &raw_file(r#"{"w":[1,2,3]}"#, &[]), &["tensor \"w\" is described by an array"]);
}

#[test]
fn missing_key_names_the_file_the_key_and_the_closest_names() {
    let dir = TempDir::new("missing");
    let path = dir.join("weights.safetensors");
    let t = Tensor::ones(&[1], DType::F32);
    st::save([("fc.weight", &t), ("fc.bias", &t), ("conv.weight", &t), ("zzz", &t)], None, &path).unwrap();
    let file = SafetensorsFile::open(&path).unwrap();
    let msg = file.get("fc.weigth").unwrap_err().to_string();
    assert!(msg.contains("weights.safetensors"), "{msg}");
    assert!(msg.contains("no tensor named \"fc.weigth\""), "{msg}");
    assert!(msg.contains("closest: \"fc.weight\""), "closest name first: {msg}");
    assert!(!msg.contains("zzz"), "only the three closest names: {msg}");
}

#[test]
fn no_truncation_or_corruption_of_a_valid_file_panics() {
    let good = two_tensor_file();
    let name = Path::new("fuzz.safetensors");
    for len in 0..good.len() {
        let err = st::from_bytes(&good[..len], name).unwrap_err().to_string();
        assert!(err.contains("fuzz.safetensors"), "{err}");
    }
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    for i in 0..header_end {
        for v in [0u8, b'9', b'"', b'}', 0xff] {
            let mut bad = good.clone();
            bad[i] = v;
            // Either a clean error or (e.g. when a digit changes to another valid layout) a
            // successful parse; never a panic.
            if let Err(e) = st::from_bytes(&bad, name) {
                assert!(e.to_string().contains("fuzz.safetensors"), "{e}");
            }
        }
    }
}

// ------------------------------------------------------------------------------------ saving

#[test]
fn save_replaces_an_existing_file_atomically() {
    let dir = TempDir::new("atomic");
    let path = dir.join("ckpt.safetensors");
    let old = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    let new = Tensor::from_vec(vec![9i64, 8, 7], &[3]).unwrap();
    st::save([("w", &old)], None, &path).unwrap();
    st::save([("w", &new), ("step", &new)], None, &path).unwrap();
    let loaded = st::load(&path).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded["w"].to_vec::<i64>().unwrap(), vec![9, 8, 7]);
    assert_eq!(dir.entries(), vec!["ckpt.safetensors"], "no temporary file is left behind");
}

#[test]
fn failed_saves_leave_the_existing_file_untouched() {
    let dir = TempDir::new("failed");
    let path = dir.join("keep.safetensors");
    let t = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).unwrap();
    st::save([("w", &t)], None, &path).unwrap();
    let before = std::fs::read(&path).unwrap();

    // Into a directory that does not exist.
    let nowhere = dir.join("no/such/dir/keep.safetensors");
    let msg = st::save([("w", &t)], None, &nowhere).unwrap_err().to_string();
    assert!(msg.contains("no/such/dir/keep.safetensors"), "{msg}");
    assert!(msg.contains("cannot create temporary file"), "{msg}");

    // Invalid tensor sets are refused before anything is written.
    let msg = st::save([("w", &t), ("w", &t)], None, &path).unwrap_err().to_string();
    assert!(msg.contains("keep.safetensors") && msg.contains("\"w\" is given twice"), "{msg}");
    let msg = st::save([("__metadata__", &t)], None, &path).unwrap_err().to_string();
    assert!(msg.contains("reserved"), "{msg}");
    assert!(st::to_bytes([("a", &t), ("a", &t)], None).is_err());

    // A rename that fails (the target is a non-empty directory) removes the temporary file.
    let blocked = dir.join("blocked.safetensors");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("inside"), b"x").unwrap();
    let msg = st::save([("w", &t)], None, &blocked).unwrap_err().to_string();
    assert!(msg.contains("blocked.safetensors") && msg.contains("rename"), "{msg}");
    assert!(blocked.is_dir());

    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(st::load(&path).unwrap()["w"].to_vec::<f64>().unwrap(), vec![1.0, 2.0]);
    assert_eq!(dir.entries(), vec!["blocked.safetensors", "keep.safetensors"], "no temporary file is left behind");
}
