//! Losses, written in differentiable candle ops.

use candle_core::{DType, Tensor, D};

type CResult<T> = candle_core::Result<T>;

/// Label value that is skipped by the loss (transformers' `-100`).
pub const IGNORE_INDEX: i64 = -100;

/// Mean cross-entropy of `logits` `[N, C]` against `targets` `[N]` (i64),
/// skipping targets equal to [`IGNORE_INDEX`] (or any negative value), like
/// `torch.nn.CrossEntropyLoss`. Half-precision logits are promoted to f32.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> CResult<Tensor> {
    let dtype = if logits.dtype() == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let logits = logits.to_dtype(dtype)?;
    let (n, c) = logits.dims2()?;
    let targets = targets.to_dtype(DType::I64)?;
    let valid = targets.ge(0i64)?;
    let safe = valid.where_cond(&targets, &targets.zeros_like()?)?;
    let safe = safe.clamp(0i64, c as i64 - 1)?.to_dtype(DType::U32)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let picked = logp.gather(&safe.reshape((n, 1))?, 1)?.reshape(n)?;
    let valid = valid.to_dtype(dtype)?;
    let count = valid.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
    if count == 0.0 {
        // Nothing to learn from (all ignored): zero loss, still differentiable.
        return (picked * 0.0)?.sum_all();
    }
    (picked * valid)?.sum_all()? * (-1.0 / count)
}
