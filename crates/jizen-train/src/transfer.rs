//! Loading pre-trained weights into a new network, as a **transfer manifest** describes: key
//! remapping, what to do with tensors whose shape differs, which parts start fresh (a new head),
//! which parts are frozen, per-part learning-rate multipliers and staged unfreezing. Loading
//! returns a [`TransferReport`] of what happened to every key.
//!
//! Patterns are globs over dotted names where `*` matches any run of characters (`features.*`,
//! `*.running_mean`). A remap rule `"encoder.* -> features.*"` renames checkpoint keys; the
//! first rule that matches wins, and keys no rule matches keep their names.
//!
//! Nothing loads silently in part: a checkpoint key that is used by nothing, a model key the
//! checkpoint lacks, a shape mismatch or a pattern that matches no key is an error listing every
//! offender with the closest names, unless the manifest says what to do with it.
//!
//! ```toml
//! remap = ["encoder.* -> *"]
//! skip = ["decoder.*"]          # checkpoint keys to leave out
//! reinit = ["5.*"]              # model keys that start fresh (a new head)
//! on_shape_mismatch = "fail"    # or "reinit"
//! freeze = ["1.*"]              # model keys never trained (batch norm there runs in eval mode)
//! [lr_mult]                     # discriminative learning rates, first match wins
//! "1.*" = 0.1
//! [stages]                      # linear probe, then gradual unfreezing from the top
//! probe_epochs = 1
//! unfreeze_every = 1
//! warmup_steps = 50
//! ```

use std::collections::{BTreeMap, BTreeSet};

use jizen_nn::Module;
use jizen_tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What to do with a checkpoint tensor whose shape differs from the model's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnShapeMismatch {
    /// An error listing every mismatch (unless the key is in `reinit`).
    #[default]
    Fail,
    /// Skip the tensor: the model's parameter keeps its fresh initialisation.
    Reinit,
}

/// Linear probing, then gradual unfreezing from the top (ULMFiT's recipe): for `probe_epochs`
/// only the last block (the head) trains; after that one more block joins, from the top, every
/// `unfreeze_every` epochs (0: all at once). A block's learning rate warms up linearly over
/// `warmup_steps` from the step it joins.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stages {
    /// Epochs during which only the head trains.
    #[serde(default)]
    pub probe_epochs: u64,
    /// Epochs between two blocks joining (0: every block joins when probing ends).
    #[serde(default)]
    pub unfreeze_every: u64,
    /// Linear warm-up of a block's learning rate after it joins, in steps.
    #[serde(default)]
    pub warmup_steps: u64,
}

/// How a checkpoint's weights go into a new model and how they train afterwards.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferManifest {
    /// Rules `"from -> to"` renaming checkpoint keys; the first match wins.
    #[serde(default)]
    pub remap: Vec<String>,
    /// Checkpoint keys (after remapping) to leave out.
    #[serde(default)]
    pub skip: Vec<String>,
    /// Model keys that keep their fresh initialisation (a new head).
    #[serde(default)]
    pub reinit: Vec<String>,
    /// What to do with other shape mismatches.
    #[serde(default)]
    pub on_shape_mismatch: OnShapeMismatch,
    /// Model parameters that never train; batch-norm layers among them keep their running
    /// statistics and run in inference mode.
    #[serde(default)]
    pub freeze: Vec<String>,
    /// Learning-rate multipliers by pattern over top-level blocks' parameter names.
    #[serde(default)]
    pub lr_mult: BTreeMap<String, f64>,
    /// Staged unfreezing.
    #[serde(default)]
    pub stages: Option<Stages>,
}

/// What loading did with every key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// `(checkpoint key, model key)` pairs copied.
    pub loaded: Vec<(String, String)>,
    /// Model keys left at their fresh initialisation: `(key, model shape, checkpoint shape)`
    /// (no checkpoint shape when the checkpoint did not have the key).
    pub reinitialised: Vec<(String, Vec<usize>, Option<Vec<usize>>)>,
    /// Model keys the checkpoint lacks (an error unless they are in `reinit`).
    pub missing: Vec<String>,
    /// Checkpoint keys that nothing used (an error unless they are in `skip`).
    pub unexpected: Vec<String>,
    /// Checkpoint keys skipped by the manifest.
    pub skipped: Vec<String>,
    /// `(key, model shape, checkpoint shape)` mismatches (an error under `fail`).
    pub shape_mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl TransferReport {
    /// A readable account, one line per category.
    pub fn to_text(&self) -> String {
        let list = |v: Vec<String>| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        let renamed: Vec<String> =
            self.loaded.iter().filter(|(a, b)| a != b).map(|(a, b)| format!("{a} -> {b}")).collect();
        format!(
            "loaded {} tensors{}\nre-initialised: {}\nskipped: {}\nmissing: {}\nunexpected: {}\nshape-mismatched: {}",
            self.loaded.len(),
            if renamed.is_empty() { String::new() } else { format!(" (renamed: {})", renamed.join(", ")) },
            list(
                self.reinitialised
                    .iter()
                    .map(|(k, m, c)| match c {
                        Some(c) => format!("{k} {m:?} (checkpoint {c:?})"),
                        None => format!("{k} {m:?} (not in the checkpoint)"),
                    })
                    .collect()
            ),
            list(self.skipped.clone()),
            list(self.missing.clone()),
            list(self.unexpected.clone()),
            list(self.shape_mismatched.iter().map(|(k, m, c)| format!("{k}: model {m:?}, checkpoint {c:?}")).collect()),
        )
    }
}

/// Whether `name` matches the glob `pattern` (`*` matches any run of characters).
pub fn glob(pattern: &str, name: &str) -> bool {
    glob_captures(pattern, name).is_some()
}

/// The texts the `*`s of `pattern` matched in `name`, if it matches.
fn glob_captures(pattern: &str, name: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return (pattern == name).then(Vec::new);
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return None;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    let mut caps = Vec::new();
    for mid in &parts[1..parts.len() - 1] {
        // Leftmost match for each middle part.
        let at = rest.find(mid)?;
        caps.push(rest[..at].to_string());
        rest = &rest[at + mid.len()..];
    }
    caps.push(rest.to_string());
    Some(caps)
}

/// A parsed remap rule.
struct Rule {
    from: String,
    to: String,
}

impl Rule {
    fn parse(text: &str) -> Result<Rule> {
        let (from, to) = text.split_once("->").ok_or_else(|| {
            Error::Msg(format!("remap rule {text:?}: expected \"from -> to\", e.g. \"encoder.* -> features.*\""))
        })?;
        let (from, to) = (from.trim().to_string(), to.trim().to_string());
        if from.matches('*').count() != to.matches('*').count() {
            return Err(Error::Msg(format!("remap rule {text:?}: both sides need the same number of '*'")));
        }
        Ok(Rule { from, to })
    }

    fn apply(&self, key: &str) -> Option<String> {
        let caps = glob_captures(&self.from, key)?;
        let mut out = String::new();
        for (i, part) in self.to.split('*').enumerate() {
            if i > 0 {
                out += &caps[i - 1];
            }
            out += part;
        }
        Some(out)
    }
}

/// Up to three names of `candidates` closest to `name` (edit distance), for error messages.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut scored: Vec<(usize, &String)> = candidates.into_iter().map(|c| (edit_distance(name, c), c)).collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, c)| c.clone()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl TransferManifest {
    /// Parses a manifest from TOML text.
    pub fn from_toml(text: &str) -> Result<TransferManifest> {
        let m: TransferManifest =
            toml::from_str(text).map_err(|e| Error::Msg(format!("transfer manifest: {}", e.to_string().trim())))?;
        for r in &m.remap {
            Rule::parse(r)?;
        }
        if let Some((p, v)) = m.lr_mult.iter().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
            return Err(Error::Msg(format!("transfer manifest: lr_mult {p:?} = {v} must be a non-negative number")));
        }
        Ok(m)
    }

    /// Copies `state` (a checkpoint's model tensors) into `model` as the manifest says. On any
    /// error nothing has been copied.
    pub fn load(&self, model: &dyn Module, state: &BTreeMap<String, Tensor>) -> Result<TransferReport> {
        let rules: Vec<Rule> = self.remap.iter().map(|r| Rule::parse(r)).collect::<Result<_>>()?;
        let target: BTreeMap<String, Tensor> = jizen_nn::state_dict(model);
        let target_keys: Vec<String> = target.keys().cloned().collect();
        let source_keys: Vec<String> = state.keys().cloned().collect();
        let renamed: Vec<(String, String)> = source_keys
            .iter()
            .map(|k| (k.clone(), rules.iter().find_map(|r| r.apply(k)).unwrap_or_else(|| k.clone())))
            .collect();
        self.check_patterns(&rules, &source_keys, &renamed, &target_keys)?;

        let mut report = TransferReport::default();
        let mut plan = Vec::new();
        let mut used = BTreeSet::new();
        for (src, dst) in &renamed {
            if self.skip.iter().any(|p| glob(p, dst)) {
                report.skipped.push(src.clone());
                continue;
            }
            let Some(p) = target.get(dst) else {
                report.unexpected.push(src.clone());
                continue;
            };
            used.insert(dst.clone());
            let t = &state[src];
            let reinit = self.reinit.iter().any(|p| glob(p, dst));
            if reinit {
                report.reinitialised.push((dst.clone(), p.shape().to_vec(), Some(t.shape().to_vec())));
            } else if t.shape() != p.shape() {
                if self.on_shape_mismatch == OnShapeMismatch::Reinit {
                    report.reinitialised.push((dst.clone(), p.shape().to_vec(), Some(t.shape().to_vec())));
                } else {
                    report.shape_mismatched.push((dst.clone(), p.shape().to_vec(), t.shape().to_vec()));
                }
            } else {
                plan.push((p.clone(), t.clone()));
                report.loaded.push((src.clone(), dst.clone()));
            }
        }
        for (k, p) in &target {
            if !used.contains(k) {
                if self.reinit.iter().any(|pat| glob(pat, k)) {
                    report.reinitialised.push((k.clone(), p.shape().to_vec(), None));
                } else {
                    report.missing.push(k.clone());
                }
            }
        }
        self.check_report(&report, &target_keys, &renamed)?;
        for (p, t) in plan {
            p.copy_from_(&t.to_dtype(p.dtype())?)?;
        }
        Ok(report)
    }

    /// Every pattern must match some key: a pattern that matches nothing is a typo.
    fn check_patterns(
        &self,
        rules: &[Rule],
        source: &[String],
        renamed: &[(String, String)],
        target: &[String],
    ) -> Result<()> {
        let mut bad = Vec::new();
        for r in rules {
            if !source.iter().any(|k| glob(&r.from, k)) {
                bad.push(format!(
                    "remap {:?} matches no checkpoint key (closest: {:?})",
                    r.from,
                    closest(&r.from, source)
                ));
            }
        }
        let dsts: Vec<String> = renamed.iter().map(|(_, d)| d.clone()).collect();
        for p in &self.skip {
            if !dsts.iter().any(|k| glob(p, k)) {
                bad.push(format!("skip {p:?} matches no checkpoint key (closest: {:?})", closest(p, &dsts)));
            }
        }
        let model_patterns = self.reinit.iter().map(|p| ("reinit", p)).chain(self.freeze.iter().map(|p| ("freeze", p)));
        for (what, p) in model_patterns.chain(self.lr_mult.keys().map(|p| ("lr_mult", p))) {
            if !target.iter().any(|k| glob(p, k)) {
                bad.push(format!("{what} {p:?} matches no model key (closest: {:?})", closest(p, target)));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(Error::Msg(format!("transfer manifest: {}", bad.join("; "))))
        }
    }

    fn check_report(&self, r: &TransferReport, target: &[String], renamed: &[(String, String)]) -> Result<()> {
        let mut bad = Vec::new();
        let dsts: Vec<String> = renamed.iter().map(|(_, d)| d.clone()).collect();
        for k in &r.unexpected {
            let dst = renamed.iter().find(|(s, _)| s == k).map_or(k.as_str(), |(_, d)| d.as_str());
            bad.push(format!("checkpoint key {dst:?} is not in the model (closest: {:?})", closest(dst, target)));
        }
        for k in &r.missing {
            bad.push(format!("model key {k:?} is not in the checkpoint (closest: {:?})", closest(k, &dsts)));
        }
        for (k, m, c) in &r.shape_mismatched {
            bad.push(format!("{k}: model {m:?}, checkpoint {c:?}"));
        }
        if bad.is_empty() {
            return Ok(());
        }
        Err(Error::Msg(format!(
            "the checkpoint does not fit the model; nothing was loaded:\n  {}\n  hint: remap keys, `skip` checkpoint keys, \
             `reinit` model keys (a new head), or set on_shape_mismatch = \"reinit\"",
            bad.join("\n  ")
        )))
    }

    /// The learning-rate multiplier of parameter `name` (first matching pattern; 1 otherwise).
    pub fn lr_mult_of(&self, name: &str) -> f64 {
        self.lr_mult.iter().find(|(p, _)| glob(p, name)).map_or(1.0, |(_, m)| *m)
    }

    /// Whether parameter `name` is frozen for the whole run.
    pub fn is_frozen(&self, name: &str) -> bool {
        self.freeze.iter().any(|p| glob(p, name))
    }
}
