//! Named parameters: where they come from (a checkpoint, or a fresh
//! initialisation) and where they live (a sorted map of candle `Var`s).
//!
//! candle-nn's `VarMap` is a `HashMap`: its iteration order changes from run
//! to run, which breaks bit-for-bit determinism of anything that sums over
//! parameters (gradient clipping). `ParamStore` keeps names sorted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::error::{Error, Result};

/// Trainable parameters by Hugging Face name, in name order.
#[derive(Clone, Default)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `var` under `name`, replacing any parameter already of that name.
    pub fn insert(&mut self, name: impl Into<String>, var: Var) {
        self.vars.insert(name.into(), var);
    }

    /// The parameter named `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// Name and parameter pairs, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter()
    }

    /// The parameter names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.vars.keys()
    }

    /// Number of parameters (tensors, not scalars: see `num_parameters`).
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether the store holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Total number of scalars.
    pub fn num_parameters(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// All parameters of `self` and `other` (names must not clash).
    pub fn merged(&self, other: &ParamStore) -> ParamStore {
        let mut vars = self.vars.clone();
        vars.extend(other.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        ParamStore { vars }
    }

    /// Plain tensors by name, e.g. for saving.
    pub fn tensors(&self) -> BTreeMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }
}

/// How a parameter absent from the checkpoint is initialised (transformers'
/// `_init_weights` for this model family).
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// Normal(0, initializer_range): Linear and Embedding weights.
    Normal,
    /// Like `Normal`, with the row of `padding_idx` zeroed (word embeddings).
    NormalPaddingRow(usize),
    /// All zeros: biases, and the MLM head's output bias.
    Zeros,
    /// All ones: LayerNorm weights.
    Ones,
}

/// Builds a model's parameters from a checkpoint's tensors, initialising the
/// ones it lacks and remembering both lists for the load report.
pub struct ParamBuilder {
    source: HashMap<String, Tensor>,
    source_path: PathBuf,
    used: BTreeSet<String>,
    initialized: Vec<String>,
    rng: ChaCha8Rng,
    std: f64,
    device: Device,
    dtype: DType,
    inference: bool,
    /// Names handed back as plain tensors (no gradient): frozen parameters.
    frozen: BTreeSet<String>,
}

impl ParamBuilder {
    /// `source` are the checkpoint's tensors (may be empty), `seed` drives the
    /// initialisation of whatever is missing.
    pub fn new(
        source: HashMap<String, Tensor>,
        source_path: impl Into<PathBuf>,
        seed: u64,
        std: f64,
        device: &Device,
        dtype: DType,
    ) -> Self {
        ParamBuilder {
            source,
            source_path: source_path.into(),
            used: BTreeSet::new(),
            initialized: vec![],
            rng: ChaCha8Rng::seed_from_u64(seed),
            std,
            device: device.clone(),
            dtype,
            inference: false,
            frozen: BTreeSet::new(),
        }
    }

    /// The device the parameters are put on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Continues initialisation from another seed (e.g. a fresh head).
    pub fn reseed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// Counts `name` as used without making it a parameter (a tied copy).
    pub fn mark_tied(&mut self, name: &str) {
        if self.source.contains_key(name) {
            self.used.insert(name.to_string());
        }
    }

    /// Whether the checkpoint has a tensor named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.source.contains_key(name)
    }

    /// The parameter `name` of shape `shape`: from the checkpoint (shape
    /// checked) or initialised with `init`. Registers it in `store`.
    pub fn take(
        &mut self,
        store: &mut ParamStore,
        name: &str,
        shape: &[usize],
        init: Init,
    ) -> Result<Tensor> {
        let tensor = match self.source.get(name) {
            Some(t) => {
                if t.dims() != shape {
                    return Err(Error::Shape {
                        path: self.source_path.clone(),
                        name: name.to_string(),
                        expected: shape.to_vec(),
                        got: t.dims().to_vec(),
                    });
                }
                self.used.insert(name.to_string());
                t.to_device(&self.device)?.to_dtype(self.dtype)?
            }
            None => {
                self.initialized.push(name.to_string());
                self.init(shape, init)?
            }
        };
        if self.inference || self.frozen.contains(name) {
            // Plain tensors sharing the weights' storage: no copy, and no
            // autograd graph is recorded through them.
            return Ok(tensor.detach());
        }
        let var = Var::from_tensor(&tensor)?;
        let t = var.as_tensor().clone();
        store.insert(name, var);
        Ok(t)
    }

    /// Builds an inference view instead of parameters: `take` hands back
    /// the source tensors detached (shared storage, not copied, not
    /// registered), so a forward pass keeps no graph.
    pub fn for_inference(mut self) -> Self {
        self.inference = true;
        self
    }

    /// Hands the parameters named in `frozen` back as plain tensors (shared
    /// storage, not registered): a forward pass through them records no
    /// graph, so they get no gradient (training's `freeze`).
    pub fn freezing(mut self, frozen: &BTreeSet<String>) -> Self {
        self.frozen = frozen.clone();
        self
    }

    /// A builder over detached copies of `params` (a `Var` built from a
    /// detached tensor owns a fresh copy), in memory, on `device` in
    /// `dtype`: the one way a model is rebuilt from another's weights
    /// (`to`, `for_inference`).
    pub fn detached(params: &ParamStore, std: f64, device: &Device, dtype: DType) -> Self {
        let source = params
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.detach()))
            .collect();
        ParamBuilder::new(source, "<in memory>", 0, std, device, dtype)
    }

    /// A builder over `params` themselves (the same `Var`s, not copies),
    /// with the names in `frozen` as plain tensors: a view of a model in
    /// which only the others are trained.
    pub fn shared(
        params: &ParamStore,
        frozen: &BTreeSet<String>,
        device: &Device,
        dtype: DType,
    ) -> Self {
        ParamBuilder::new(
            params.tensors().into_iter().collect(),
            "<in memory>",
            0,
            0.0,
            device,
            dtype,
        )
        .freezing(frozen)
    }

    fn init(&mut self, shape: &[usize], init: Init) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal | Init::NormalPaddingRow(_) => {
                let normal = Normal::new(0.0f32, self.std as f32)
                    .map_err(|e| Error::msg(format!("initializer_range: {e}")))?;
                let mut v: Vec<f32> = (0..n).map(|_| normal.sample(&mut self.rng)).collect();
                if let Init::NormalPaddingRow(row) = init {
                    let width = shape[1];
                    v[row * width..(row + 1) * width]
                        .iter_mut()
                        .for_each(|x| *x = 0.0);
                }
                v
            }
        };
        Ok(Tensor::from_vec(data, shape, &self.device)?.to_dtype(self.dtype)?)
    }

    /// What the checkpoint did not provide, and what it had that nobody used.
    pub fn finish(self) -> LoadReport {
        let unexpected = self
            .source
            .keys()
            .filter(|k| !self.used.contains(*k))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        LoadReport {
            source: self.source_path,
            initialized: self.initialized,
            unexpected,
            notes: vec![],
        }
    }
}

/// What happened when a checkpoint met a model: transformers' "missing" and
/// "unexpected" keys. Neither is fatal; both are shown to the user.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// The weights file (or shard index) read, or a placeholder such as
    /// `<random init>` or `<new head>` when the weights came from no file.
    pub source: PathBuf,
    /// Parameters the checkpoint lacked, freshly initialised (e.g. a new head).
    pub initialized: Vec<String>,
    /// Checkpoint tensors the model did not use (e.g. `lm_head.*`).
    pub unexpected: Vec<String>,
    /// Other things worth saying about the load (a config/tokenizer
    /// difference that is harmless for this model, ...).
    pub notes: Vec<String>,
}

impl LoadReport {
    /// One human line per non-empty list, grouping names by prefix.
    pub fn summary(&self) -> Vec<String> {
        let mut out = vec![];
        if !self.initialized.is_empty() {
            out.push(format!(
                "newly initialised (not in {}): {}",
                self.source.display(),
                group_names(&self.initialized)
            ));
        }
        if !self.unexpected.is_empty() {
            out.push(format!(
                "unused weights in {}: {}",
                self.source.display(),
                group_names(&self.unexpected)
            ));
        }
        out.extend(self.notes.iter().cloned());
        out
    }
}

/// `a.b.weight, a.b.bias, a.c.weight` -> `a.b.{bias,weight}, a.c.weight` style, short.
fn group_names(names: &[String]) -> String {
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    for n in names {
        let prefix = n.rsplit_once('.').map(|(p, _)| p).unwrap_or(n);
        *groups.entry(prefix).or_default() += 1;
    }
    let shown: Vec<String> = groups.keys().take(8).map(|s| s.to_string()).collect();
    let more = groups.len().saturating_sub(8);
    if more > 0 {
        format!("{} (+{more} more)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
