//! Precisions and dtypes by name, parsed once for every front end (the
//! CLI's `--dtype`, a script's `dtype:`): [`Precision`], how a training
//! step stores and runs its weights, and [`storage_dtype`], the dtype a
//! model's weights are kept in.

use std::str::FromStr;

use candle_core::DType;

use crate::error::{Error, Result};

/// How parameters and matmuls are stored and run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Precision {
    /// `f32`: f32 weights, f32 compute.
    #[cfg_attr(feature = "clap", value(name = "f32"))]
    F32,
    /// `bf16`: f32 master weights, bf16 matmuls (`bf16: true`).
    #[cfg_attr(feature = "clap", value(name = "bf16"))]
    MixedBf16,
    /// `bf16-weights`: weights stored in bf16 (`dtype: "bf16"`), bf16
    /// compute.
    #[cfg_attr(feature = "clap", value(name = "bf16-weights"))]
    Bf16,
}

impl Precision {
    /// The names [`FromStr`] takes, in order.
    pub const NAMES: [&'static str; 3] = ["f32", "bf16", "bf16-weights"];

    /// The name this precision is given by (`f32`, `bf16`, `bf16-weights`).
    pub fn name(&self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::MixedBf16 => "bf16",
            Precision::Bf16 => "bf16-weights",
        }
    }
}

impl FromStr for Precision {
    type Err = Error;

    /// ```
    /// use stilts_model::dtype::Precision;
    /// assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::MixedBf16);
    /// assert!("fp16".parse::<Precision>().unwrap_err().to_string().contains("bf16-weights"));
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::MixedBf16),
            "bf16-weights" => Ok(Precision::Bf16),
            other => Err(Error::msg(format!(
                "precision `{other}`: use f32, bf16 (bf16 matmuls, f32 weights) or bf16-weights (weights stored in bf16)"
            ))),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The dtype a model's weights are stored in, by name: `f32` or `bf16`.
///
/// ```
/// use stilts_model::dtype::storage_dtype;
/// assert_eq!(storage_dtype("bf16").unwrap(), candle_core::DType::BF16);
/// assert!(storage_dtype("f16").is_err());
/// ```
pub fn storage_dtype(s: &str) -> Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        other => Err(Error::msg(format!("dtype `{other}`: use f32 or bf16"))),
    }
}
