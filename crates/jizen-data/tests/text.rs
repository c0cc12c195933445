//! Text corpora, vocabularies and language-model batches: small files written by the tests, and
//! — when `JIZEN_DATA` points at the staged data sets — the Penn Treebank.

use std::path::PathBuf;

use jizen_data::text::{tokenize, EOS, UNK};
use jizen_data::{batchify, read_tokens, Tokens, Vocab};

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jizen-text-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn words_with_eos_and_chars() {
    let p = temp_file("words.txt", " the cat \n\nsat  on the mat\n".as_bytes());
    let words = read_tokens(&p, Tokens::Words).unwrap();
    assert_eq!(words, ["the", "cat", EOS, EOS, "sat", "on", "the", "mat", EOS]);
    assert_eq!(tokenize("né\n", Tokens::Chars), ["n", "é", "\n"]);
    std::fs::remove_file(&p).ok();
}

#[test]
fn vocab_maps_both_ways_and_counts_unknowns() {
    let train = tokenize("a b a\nc\n", Tokens::Words);
    let vocab = Vocab::build(&train);
    assert_eq!(vocab.tokens(), ["a", "b", EOS, "c", UNK]);
    assert_eq!(vocab.unk_id(), 4);
    let enc = vocab.encode(&tokenize("a z c y\n", Tokens::Words));
    assert_eq!(enc.ids, vec![0, 4, 3, 4, 2]);
    assert_eq!(enc.unknown, 2);
    assert_eq!(vocab.decode(&enc.ids), ["a", UNK, "c", UNK, EOS]);
    // A corpus that already has <unk> keeps its id.
    let v = Vocab::build(&["x", UNK, "y"]);
    assert_eq!((v.len(), v.unk_id()), (3, 1));
}

#[test]
fn bad_corpora_are_clear_errors() {
    let p = temp_file("bad.txt", b"ok text\n\xc3\x28 more");
    let e = read_tokens(&p, Tokens::Words).unwrap_err().to_string();
    assert!(e.contains("bad.txt") && e.contains("byte offset 8") && e.contains("0xc3"), "{e}");
    for (name, text) in [("empty.txt", ""), ("blank.txt", " \n\n")] {
        let p = temp_file(name, text.as_bytes());
        for mode in [Tokens::Words, Tokens::Chars] {
            let e = read_tokens(&p, mode).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains("empty corpus"), "{e}");
        }
    }
}

#[test]
fn batchify_cuts_rows_and_shifts_targets() {
    // 0..=10: 11 tokens, 2 rows of 5 (the last token is dropped).
    let ids: Vec<u32> = (0..11).collect();
    let b = batchify(&ids, 2, 3).unwrap();
    assert_eq!((b.cols(), b.len()), (5, 2));
    let (x, y) = b.get(0).unwrap();
    assert_eq!(x.shape(), &[2, 3]);
    assert_eq!(x.to_vec::<i64>().unwrap(), vec![0, 1, 2, 5, 6, 7]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![1, 2, 3, 6, 7, 8]);
    // The last window is shorter: inputs up to the next-to-last column.
    let (x, y) = b.get(1).unwrap();
    assert_eq!(x.shape(), &[2, 1]);
    assert_eq!(x.to_vec::<i64>().unwrap(), vec![3, 8]);
    assert_eq!(y.to_vec::<i64>().unwrap(), vec![4, 9]);
    assert!(b.get(2).is_err());
    assert_eq!(b.iter().count(), 2);
    assert!(batchify(&ids, 6, 3).is_err(), "11 tokens cannot fill 6 rows of 2");
    assert!(batchify(&ids, 0, 3).is_err());
    assert!(batchify(&ids, 2, 0).is_err());
}

#[test]
fn real_ptb_loads() {
    let Some(root) = std::env::var_os("JIZEN_DATA") else {
        println!("skipped: JIZEN_DATA unset (point it at the staged data sets to run this test)");
        return;
    };
    let dir = PathBuf::from(root).join("ptb");
    let train = read_tokens(&dir.join("ptb.train.txt"), Tokens::Words).unwrap();
    let valid = read_tokens(&dir.join("ptb.valid.txt"), Tokens::Words).unwrap();
    let vocab = Vocab::build(&train);
    // The well-known sizes of Mikolov's PTB: 10,000 words (with <eos> and <unk>), 929,589 train
    // tokens and 73,760 validation tokens including <eos>.
    assert_eq!(vocab.len(), 10_000);
    assert_eq!((train.len(), valid.len()), (929_589, 73_760));
    assert_eq!(vocab.encode(&valid).unknown, 0, "PTB's validation words are all in the training vocabulary");
    let batches = batchify(&vocab.encode(&train).ids, 20, 35).unwrap();
    assert_eq!(batches.len(), (929_589 / 20 - 1usize).div_ceil(35));
    println!("ptb: {} words, {} train tokens, {} windows of [20, 35]", vocab.len(), train.len(), batches.len());
}
