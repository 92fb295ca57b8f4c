//! Devices by name: `cpu`, `cuda`, `cuda:N`, parsed once for every front
//! end (the CLI's `--device`, a cell's device, the REPL).

use candle_core::Device;

use crate::error::{Error, Result};

/// The name a device is given back by: `cpu`, `cuda:N`, `metal:N`.
///
/// ```
/// assert_eq!(stilts_model::device::device_name(&candle_core::Device::Cpu), "cpu");
/// ```
pub fn device_name(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// `cpu`, `cuda` or `cuda:N`. A CUDA device in a build without the `cuda`
/// feature is an error that says how to rebuild.
///
/// ```
/// use stilts_model::device::parse_device;
/// assert!(parse_device("cpu").unwrap().is_cpu());
/// assert!(parse_device("gpu").is_err());
/// ```
pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim();
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    let ord = match s.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Error::msg(format!("--device `{s}`: use cpu, cuda or cuda:N")))?,
        None => {
            return Err(Error::msg(format!(
                "--device `{s}`: use cpu, cuda or cuda:N"
            )))
        }
    };
    Device::new_cuda(ord).map_err(|e| {
        if cfg!(feature = "cuda") {
            Error::msg(format!("--device {s}: {e}"))
        } else {
            Error::msg(format!("--device {s}: this stilts was built without CUDA; rebuild with `cargo build --release --features cuda`"))
        }
    })
}
