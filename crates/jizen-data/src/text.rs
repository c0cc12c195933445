//! Plain-text corpora for language models: a UTF-8 file read as characters or as
//! whitespace-separated words with `<eos>` at the end of each line (the convention of the Penn
//! Treebank language-model files), a [`Vocab`] mapping tokens to ids, and [`batchify`], which
//! cuts a token stream into `[batch, steps]` inputs and next-token targets.

use std::collections::HashMap;
use std::path::Path;

use jizen_tensor::{Result as TResult, Tensor};

use crate::DataError;

/// The token that ends every line in word mode.
pub const EOS: &str = "<eos>";
/// The token that stands for every token outside the vocabulary.
pub const UNK: &str = "<unk>";

/// How a corpus is cut into tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tokens {
    /// Every Unicode scalar value is a token, newlines included.
    Chars,
    /// Whitespace-separated words, with [`EOS`] after each line (empty lines give just `<eos>`).
    Words,
}

/// Reads a UTF-8 file as tokens. Errors: unreadable file, non-UTF-8 bytes (naming the offset of
/// the first bad byte), no tokens at all.
pub fn read_tokens(path: &Path, mode: Tokens) -> Result<Vec<String>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::new(path, format!("cannot read: {e}")))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        DataError::new(
            path,
            format!("not UTF-8: invalid byte 0x{:02x} at byte offset {}", bytes[e.valid_up_to()], e.valid_up_to()),
        )
    })?;
    let tokens = tokenize(text, mode);
    if tokens.iter().all(|t| t == EOS || t.trim().is_empty()) {
        return Err(DataError::new(path, "empty corpus: the file holds no tokens"));
    }
    Ok(tokens)
}

/// Cuts text into tokens (see [`Tokens`]).
pub fn tokenize(text: &str, mode: Tokens) -> Vec<String> {
    match mode {
        Tokens::Chars => text.chars().map(String::from).collect(),
        Tokens::Words => {
            let mut out = Vec::new();
            for line in text.lines() {
                out.extend(line.split_whitespace().map(String::from));
                out.push(EOS.to_string());
            }
            out
        }
    }
}

/// A two-way map between tokens and ids `0..len`, with an [`UNK`] entry for everything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

/// Token ids, and how many tokens were outside the vocabulary (and so became [`UNK`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub unknown: usize,
}

impl Vocab {
    /// The vocabulary of a training corpus: ids in order of first appearance, then [`UNK`] if the
    /// corpus did not contain it (the PTB files already do).
    pub fn build<S: AsRef<str>>(tokens: &[S]) -> Vocab {
        let mut v = Vocab { tokens: Vec::new(), ids: HashMap::new() };
        for t in tokens {
            v.insert(t.as_ref());
        }
        v.insert(UNK);
        v
    }

    fn insert(&mut self, t: &str) {
        if !self.ids.contains_key(t) {
            self.ids.insert(t.to_string(), self.tokens.len() as u32);
            self.tokens.push(t.to_string());
        }
    }

    /// Number of tokens, [`UNK`] included.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Always false: a vocabulary holds at least [`UNK`].
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The id of [`UNK`].
    pub fn unk_id(&self) -> u32 {
        self.ids[UNK]
    }

    /// The token with id `id`.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// All tokens, by id.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The ids of `tokens`; those outside the vocabulary become [`UNK`] and are counted.
    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Encoded {
        let unk = self.unk_id();
        let mut unknown = 0;
        let ids = tokens
            .iter()
            .map(|t| {
                self.id(t.as_ref()).unwrap_or_else(|| {
                    unknown += 1;
                    unk
                })
            })
            .collect();
        Encoded { ids, unknown }
    }

    /// The tokens of `ids` (ids outside the vocabulary read as [`UNK`]).
    pub fn decode(&self, ids: &[u32]) -> Vec<&str> {
        ids.iter().map(|&i| self.token(i).unwrap_or(UNK)).collect()
    }
}

/// A token stream laid out for truncated back-propagation through time: the stream cut into
/// `batch` contiguous rows of `cols` tokens (the tail that does not fill a row is dropped), read
/// in windows of `steps` columns. Window `k` has inputs `rows[:, k*steps .. k*steps+len]` and
/// targets one token further on, so row `b` of consecutive windows continues the same text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LmBatches {
    /// `[batch, cols]`, row-major.
    data: Vec<i64>,
    batch: usize,
    cols: usize,
    steps: usize,
}

/// Lays out `ids` as [`LmBatches`]. Errors when the stream is too short to give every row at
/// least one input and one target, or when `batch` or `steps` is zero.
pub fn batchify(ids: &[u32], batch: usize, steps: usize) -> TResult<LmBatches> {
    if batch == 0 || steps == 0 {
        return Err(jizen_tensor::Error::invalid(
            "batchify",
            format!("batch ({batch}) and steps ({steps}) must be positive"),
        ));
    }
    let cols = ids.len() / batch;
    if cols < 2 {
        return Err(jizen_tensor::Error::invalid(
            "batchify",
            format!("{} tokens are too few for {batch} rows of at least 2 tokens", ids.len()),
        ));
    }
    let data = ids[..batch * cols].iter().map(|&t| t as i64).collect();
    Ok(LmBatches { data, batch, cols, steps })
}

impl LmBatches {
    /// Number of windows (the last may be shorter than `steps`).
    pub fn len(&self) -> usize {
        (self.cols - 1).div_ceil(self.steps)
    }

    /// Always false: [`batchify`] refuses streams too short for one window.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tokens per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Window `k`: inputs and targets, both i64 `[batch, len]` with `len <= steps`.
    pub fn get(&self, k: usize) -> TResult<(Tensor, Tensor)> {
        if k >= self.len() {
            return Err(jizen_tensor::Error::invalid("LmBatches::get", format!("window {k} of {}", self.len())));
        }
        let start = k * self.steps;
        let len = self.steps.min(self.cols - 1 - start);
        let window = |offset: usize| -> Vec<i64> {
            (0..self.batch)
                .flat_map(|b| {
                    let row = &self.data[b * self.cols..(b + 1) * self.cols];
                    row[start + offset..start + offset + len].iter().copied()
                })
                .collect()
        };
        Ok((Tensor::from_vec(window(0), &[self.batch, len])?, Tensor::from_vec(window(1), &[self.batch, len])?))
    }

    /// All windows in order.
    pub fn iter(&self) -> impl Iterator<Item = TResult<(Tensor, Tensor)>> + '_ {
        (0..self.len()).map(|k| self.get(k))
    }
}
