//! Numeric CSV files: one example per line, comma-separated, f32 features and one integer label
//! column (named, by index, or the last). Gzip-compressed files are read too (detected by
//! content). Quoted fields are not supported: the files this reads are plain numeric tables.

use std::path::Path;

use jizen_tensor::{Result as TResult, Tensor};

use crate::DataError;

/// Which column holds the label.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum LabelColumn {
    /// The last column.
    #[default]
    Last,
    /// The column with this name in the header row.
    Name(String),
    /// The column at this index (0-based).
    Index(usize),
}

/// How to read a CSV file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// The first line is a header (column names), not data.
    pub header: bool,
    pub label: LabelColumn,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { header: true, label: LabelColumn::Last }
    }
}

/// A numeric table: `len` examples of `features` f32 values each, and integer labels.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvSet {
    /// Names of the feature columns (from the header, else `col0`, `col1`, …), label excluded.
    pub feature_names: Vec<String>,
    /// The label column's name.
    pub label_name: String,
    /// `len * features` values, example-major.
    pub features: Vec<f32>,
    pub labels: Vec<i64>,
}

impl CsvSet {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Features per example.
    pub fn dim(&self) -> usize {
        self.feature_names.len()
    }

    /// The number of classes, taken as the largest label plus one.
    pub fn classes(&self) -> usize {
        self.labels.iter().max().map_or(0, |&m| m as usize + 1)
    }

    /// The examples at `indices` as f32 features `[n, d]` and i64 labels `[n]`.
    pub fn tensors(&self, indices: &[usize]) -> TResult<(Tensor, Tensor)> {
        let d = self.dim();
        let x = indices.iter().flat_map(|&i| self.features[i * d..(i + 1) * d].iter().copied()).collect();
        let y = indices.iter().map(|&i| self.labels[i]).collect();
        Ok((Tensor::from_vec(x, &[indices.len(), d])?, Tensor::from_vec(y, &[indices.len()])?))
    }
}

impl crate::Dataset for CsvSet {
    fn len(&self) -> usize {
        CsvSet::len(self)
    }
    fn batch(&self, indices: &[usize]) -> TResult<(Tensor, Tensor)> {
        self.tensors(indices)
    }
}

/// Reads a numeric CSV file (raw or gzip). Errors name the file, the line (1-based) and column
/// and what was found there. Blank lines are skipped; a trailing `\r` is ignored.
pub fn load_csv(path: &Path, options: &CsvOptions) -> Result<CsvSet, DataError> {
    let bytes = crate::idx::read_file(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| DataError::new(path, format!("not UTF-8 text: invalid byte at offset {}", e.valid_up_to())))?;
    parse_csv(text, options, path)
}

/// Parses CSV text; `path` only names the source in errors.
pub fn parse_csv(text: &str, options: &CsvOptions, path: &Path) -> Result<CsvSet, DataError> {
    let err = |line: usize, msg: String| DataError::new(path, format!("line {line}: {msg}"));
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty());
    let split = |l: &str| l.split(',').map(str::trim).map(String::from).collect::<Vec<_>>();
    let (names, mut first_row) = match (options.header, lines.next()) {
        (_, None) => return Err(DataError::new(path, "the file has no lines: expected a CSV table")),
        (true, Some((_, l))) => (split(l), None),
        (false, Some((n, l))) => {
            let k = l.split(',').count();
            ((0..k).map(|i| format!("col{i}")).collect(), Some((n, l)))
        }
    };
    let width = names.len();
    if width < 2 {
        return Err(DataError::new(path, format!("{width} column: expected features and a label")));
    }
    let label = match &options.label {
        LabelColumn::Last => width - 1,
        LabelColumn::Index(i) if *i < width => *i,
        LabelColumn::Index(i) => {
            return Err(DataError::new(path, format!("label column {i} does not exist: the table has {width} columns")))
        }
        LabelColumn::Name(name) => names.iter().position(|n| n == name).ok_or_else(|| {
            DataError::new(path, format!("no column named {name:?} for the label; the header has {names:?}"))
        })?,
    };
    let (mut features, mut labels) = (Vec::new(), Vec::new());
    let rows = first_row.take().into_iter().chain(lines);
    for (line, l) in rows {
        let fields: Vec<&str> = l.split(',').map(str::trim).collect();
        if fields.len() != width {
            return Err(err(line, format!("{} fields, expected {width} (as in the first line)", fields.len())));
        }
        for (col, field) in fields.iter().enumerate() {
            let value: f64 = field
                .parse()
                .map_err(|_| err(line, format!("column {} ({}): {field:?} is not a number", col + 1, names[col])))?;
            if col == label {
                if value < 0.0 || value.fract() != 0.0 || value > i64::MAX as f64 {
                    return Err(err(
                        line,
                        format!("column {} ({}): label {field:?} is not a non-negative integer", col + 1, names[col]),
                    ));
                }
                labels.push(value as i64);
            } else {
                features.push(value as f32);
            }
        }
    }
    if labels.is_empty() {
        return Err(DataError::new(path, "no data rows after the header"));
    }
    let label_name = names[label].clone();
    let feature_names = names.into_iter().enumerate().filter(|&(i, _)| i != label).map(|(_, n)| n).collect();
    Ok(CsvSet { feature_names, label_name, features, labels })
}
