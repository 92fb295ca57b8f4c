//! `stilts submit`: the unfinished cells of a recipe as one Slurm job
//! array (an element per cell, each `stilts run FILE --only CELL`), and a
//! collect job that runs after the whole array (`afterany`) and writes the
//! report from the store (`stilts run FILE --collect`).
//!
//! Everything a submission writes goes to `STORE_DIR/slurm/NAME-TIME/`:
//! `cells.txt` (the array index -> cell table), `array.sbatch`,
//! `collect.sbatch`, `submission.json` (job ids, cells, logs) and `logs/`
//! (one log per cell, `CELL.log`, appended across requeues and
//! resubmissions; Slurm's own output per element; the collect job's).
//!
//! Time limits and preemption: the array asks Slurm for SIGUSR1
//! `--signal-before` seconds before its time runs out (`--signal=B:USR1@S`,
//! to the batch shell, which passes it on); stilts then writes a checkpoint
//! at its next update, stops, and the batch shell requeues the element
//! (`scontrol requeue`), which resumes from the checkpoint. A cell killed
//! outright (scancel, node failure) keeps its last periodic checkpoint; the
//! next `stilts submit` runs it again (and only it), resuming there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{absolute, passthrough, shell_quote, this_binary, CellRow, Plan, Queue};
use stilts_model::error::{Error, Result, WithPath};
use stilts_protocol::store::Store;
use stilts_script::Settings;

/// What `stilts submit` was asked for.
#[derive(Clone, Debug)]
pub struct SubmitOptions {
    /// sbatch options for every array element (`--partition=gpu --gres=gpu:1 --time=12:00:00`).
    pub slurm: String,
    /// sbatch options of the collect job (default: those of `slurm`
    /// without GPU requests).
    pub collect_slurm: Option<String>,
    /// At most this many elements at once (`--array=0-K%N`).
    pub max_parallel: Option<usize>,
    /// Write the sbatch files and print them; submit nothing.
    pub dry_run: bool,
    /// Seconds before the time limit at which Slurm sends SIGUSR1.
    pub signal_before: u64,
    /// `--device` of every cell ([`cell_device`]: `cuda` in a CUDA build).
    pub cell_device: String,
    /// The collect job's report folder (`--out`).
    pub out: Option<PathBuf>,
}

/// One submitted cell.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SubmittedCell {
    pub index: usize,
    pub key: String,
    pub name: String,
    pub model: String,
    pub seed: u64,
    pub log: String,
}

/// `submission.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Submission {
    pub script: String,
    pub set: Vec<String>,
    pub submitted_at: u64,
    pub dir: String,
    pub array_job: Option<String>,
    pub collect_job: Option<String>,
    pub cells: Vec<SubmittedCell>,
}

/// Every submission under the store, oldest first.
pub fn submissions(store: &Store) -> Vec<Submission> {
    let Ok(entries) = std::fs::read_dir(store.root().join("slurm")) else {
        return vec![];
    };
    let mut out: Vec<Submission> = entries
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path().join("submission.json")).ok()?;
            serde_json::from_str(&text).ok()
        })
        .collect();
    out.sort_by(|a, b| (a.submitted_at, &a.dir).cmp(&(b.submitted_at, &b.dir)));
    out
}

/// The job and log of each cell's latest submission: cell id (16 hex) ->
/// (`ARRAY_INDEX`, log).
pub fn latest_jobs(store: &Store) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for s in submissions(store) {
        let Some(array) = &s.array_job else { continue };
        for c in &s.cells {
            out.insert(
                c.key[..16.min(c.key.len())].to_string(),
                (format!("{array}_{}", c.index), c.log.clone()),
            );
        }
    }
    out
}

/// The device the cells of a submission train on: `given` (`--cell-device`),
/// else `cuda` in a build with CUDA and `cpu` in one without. The cells run
/// this same binary, so a CUDA device from a build without CUDA would fail
/// at every cell's start: refused here, before anything is submitted.
pub fn cell_device(given: Option<&str>, slurm: &str) -> Result<String> {
    let cuda = cfg!(feature = "cuda");
    let device = given
        .map(|d| d.trim().to_string())
        .unwrap_or_else(|| if cuda { "cuda" } else { "cpu" }.to_string());
    let parsed_cuda = device.starts_with("cuda");
    if !parsed_cuda && device != "cpu" {
        return Err(Error::msg(format!(
            "--cell-device `{device}`: use cpu, cuda or cuda:N"
        )));
    }
    if parsed_cuda && !cuda {
        return Err(Error::msg(format!(
            "--cell-device {device}: this stilts was built without CUDA, and every cell runs this binary, so each would fail at its start; give --cell-device cpu, or rebuild with `cargo build --release --features cuda` and submit again"
        )));
    }
    if !cuda && given.is_none() && slurm.contains("gpu") {
        eprintln!(
            "warning: --slurm asks for GPUs, but this stilts was built without CUDA: the cells train on the CPU (--cell-device cpu); rebuild with `--features cuda` to use them"
        );
    }
    Ok(device)
}

/// Whether a command can be started.
fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// The jobs Slurm knows now, one line per array element (`squeue -r`);
/// `None` where there is no `squeue` or it cannot reach the controller.
/// (`sacct` would tell finished jobs' exit codes, but needs the accounting
/// daemon; the store's marks say the same.)
///
/// Where Slurm's commands are installed but no cluster is configured
/// (squeue: "Could not establish a configuration source") there is no
/// queue to read and nothing is said; where a cluster is configured and
/// squeue fails, a warning says so once per process.
pub fn squeue() -> Queue {
    if !have("squeue") {
        return None;
    }
    let out = Command::new("squeue")
        .args(["-h", "-r", "-o", "%i %T"])
        .output()
        .ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if !no_cluster(&err) {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "warning: Slurm's squeue failed ({}); the states below come from the store alone",
                    err.lines().last().unwrap_or("").trim()
                )
            });
        }
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (id, st) = l.trim().split_once(' ')?;
                Some((id.to_string(), st.trim().to_string()))
            })
            .collect(),
    )
}

/// Whether squeue's error says there is no cluster here at all (Slurm's
/// commands installed, no configuration): not worth a word.
fn no_cluster(stderr: &str) -> bool {
    stderr.contains("Could not establish a configuration source")
        || stderr.contains("slurm.conf: No such file")
}

/// The sbatch options of `--slurm`, split as a shell would.
fn words(what: &str, opts: &str) -> Result<Vec<String>> {
    shlex::split(opts).ok_or_else(|| {
        Error::msg(format!(
            "{what} `{opts}`: unbalanced quotes; give sbatch options as on its command line, e.g. \"--partition=gpu --gres=gpu:1 --time=12:00:00\""
        ))
    })
}

/// `--slurm`'s options without GPU requests (for the collect job, which
/// trains nothing).
fn without_gpus(opts: &[String]) -> Vec<String> {
    let gpu = |w: &str| {
        [
            "--gres",
            "--gpus",
            "-G",
            "--gpus-per",
            "--gpu",
            "--cpus-per-gpu",
            "--mem-per-gpu",
        ]
        .iter()
        .any(|p| w.starts_with(p))
    };
    let mut out = vec![];
    let mut skip_next = false;
    for w in opts {
        if skip_next {
            skip_next = false;
            continue;
        }
        if gpu(w) {
            // `--gres gpu:1` (value as the next word) or `--gres=gpu:1`.
            skip_next = !w.contains('=') && w.starts_with("--") || w == "-G";
            continue;
        }
        out.push(w.clone());
    }
    out
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A command as one line of shell, each word quoted.
fn command_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The array's batch script.
fn array_script(
    name: &str,
    dir: &Path,
    cells: usize,
    opts: &SubmitOptions,
    cell_command: &[String],
) -> String {
    let parallel = opts
        .max_parallel
        .map(|n| format!("%{}", n.max(1)))
        .unwrap_or_default();
    let cwd = absolute(Path::new("."));
    let cmd = command_line(cell_command);
    format!(
        r#"#!/bin/bash
# Written by `stilts submit`: one element per unfinished cell of the grid.
# The options given with --slurm are on sbatch's command line, where they
# override the lines below.
#SBATCH --job-name={name}
#SBATCH --array=0-{last}{parallel}
#SBATCH --output={dir}/logs/slurm-%A_%a.out
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@{signal}
#SBATCH --chdir={cwd}
set -u
cell=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {cells_txt} | cut -f1)
log={dir}/logs/$cell.log
export STILTS_CELL_LOG=$log
threads=()
if [ -n "${{SLURM_CPUS_PER_TASK:-}}" ]; then threads=(--threads "$SLURM_CPUS_PER_TASK"); fi
echo "== $(date -u +%FT%TZ) job ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} (restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname): cell $cell" >> "$log"
requeue=0
# Slurm's SIGUSR1 before the time limit (or preemption): stilts writes a
# checkpoint at its next update and stops; the element is then requeued.
trap 'requeue=1; echo "== SIGUSR1: checkpointing, then requeueing" >> "$log"; kill -USR1 "$pid" 2>/dev/null' USR1
{cmd} --only "$cell" "${{threads[@]}}" >> "$log" 2>&1 &
pid=$!
while true; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
if [ "$requeue" = 1 ]; then
  echo "== $(date -u +%FT%TZ) requeued: the next start resumes from the checkpoint" >> "$log"
  scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi
echo "== $(date -u +%FT%TZ) exit $rc" >> "$log"
exit $rc
"#,
        last = cells.saturating_sub(1),
        dir = shell_quote(&dir.display().to_string()),
        cells_txt = shell_quote(&dir.join("cells.txt").display().to_string()),
        signal = opts.signal_before,
        cwd = shell_quote(&cwd.display().to_string()),
    )
}

/// The collect job's batch script.
fn collect_script(name: &str, dir: &Path, collect_command: &[String]) -> String {
    let cwd = absolute(Path::new("."));
    let cmd = command_line(collect_command);
    format!(
        r#"#!/bin/bash
# Written by `stilts submit`: runs after every element of the array has
# ended (afterany) and writes the report from the store; it trains nothing,
# and a cell that did not finish makes it fail, naming the cell and its log.
#SBATCH --job-name={name}-collect
#SBATCH --output={dir}/logs/collect-%j.out
#SBATCH --chdir={cwd}
{cmd}
"#,
        dir = shell_quote(&dir.display().to_string()),
        cwd = shell_quote(&cwd.display().to_string()),
    )
}

/// Runs `sbatch --parsable ARGS FILE` and returns the job id.
fn sbatch(args: &[String], file: &Path) -> Result<String> {
    let out = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(file)
        .output()
        .map_err(|e| {
            Error::msg(format!(
                "cannot run sbatch ({e}): submit from a machine with Slurm's commands, or use `stilts run --jobs N` on this one"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::msg(format!(
            "sbatch {} {} failed: {}",
            args.join(" "),
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::msg(format!(
            "sbatch gave no job id: `{}`",
            text.trim()
        )));
    }
    Ok(id)
}

/// `stilts submit`: writes the batch scripts of `plan`'s unfinished cells
/// and (unless `dry_run`) submits them; prints what it did.
pub fn submit(
    settings: &Settings,
    plan: &Plan,
    script_arg: &Path,
    set: &[String],
    opts: &SubmitOptions,
) -> Result<Submission> {
    let user = words("--slurm", &opts.slurm)?;
    let collect_user = match &opts.collect_slurm {
        Some(s) => words("--collect-slurm", s)?,
        None => without_gpus(&user),
    };
    let todo: Vec<&CellRow> = plan.cells.iter().filter(|c| c.state.unfinished()).collect();
    let busy = plan
        .cells
        .iter()
        .filter(|c| {
            matches!(
                c.state,
                super::CellState::Running | super::CellState::Queued
            )
        })
        .count();
    let stem = plan
        .script
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "script".into());
    let name = format!("stilts-{stem}");
    let stamp = {
        let t = now();
        format!("{stem}-{t}-{}", std::process::id())
    };
    let dir = absolute(&plan.store.root().join("slurm").join(&stamp));
    std::fs::create_dir_all(dir.join("logs")).with_path(&dir)?;
    let exe = this_binary()?;
    let mut common = passthrough(set, settings);
    let script = script_arg.display().to_string();
    let mut cell_cmd = vec![exe.display().to_string(), "run".into(), script.clone()];
    cell_cmd.append(&mut common.clone());
    cell_cmd.extend(["--device".into(), opts.cell_device.clone()]);
    let mut collect_cmd = vec![exe.display().to_string(), "run".into(), script.clone()];
    collect_cmd.append(&mut common);
    collect_cmd.push("--collect".into());
    if let Some(o) = &opts.out {
        collect_cmd.extend(["--out".into(), o.display().to_string()]);
    }
    let cells: Vec<SubmittedCell> = todo
        .iter()
        .enumerate()
        .map(|(i, c)| SubmittedCell {
            index: i,
            key: c.key.clone(),
            name: c.name.clone(),
            model: c.model.clone(),
            seed: c.seed,
            log: dir
                .join("logs")
                .join(format!("{}.log", c.id()))
                .display()
                .to_string(),
        })
        .collect();
    let table: String = cells
        .iter()
        .map(|c| {
            format!(
                "{}\t{}\t{}\tseed {}\n",
                &c.key[..16],
                c.name,
                c.model,
                c.seed
            )
        })
        .collect();
    let write = |file: &str, text: &str| -> Result<PathBuf> {
        let p = dir.join(file);
        std::fs::write(&p, text).with_path(&p)?;
        Ok(p)
    };
    write("cells.txt", &table)?;
    let array_file = (!cells.is_empty())
        .then(|| {
            write(
                "array.sbatch",
                &array_script(&name, &dir, cells.len(), opts, &cell_cmd),
            )
        })
        .transpose()?;
    let collect_file = write("collect.sbatch", &collect_script(&name, &dir, &collect_cmd))?;
    let mut sub = Submission {
        script: script.clone(),
        set: set.to_vec(),
        submitted_at: now(),
        dir: dir.display().to_string(),
        array_job: None,
        collect_job: None,
        cells,
    };
    let array_args = user.clone();
    if opts.dry_run {
        if let Some(f) = &array_file {
            println!(
                "# {}\n{}",
                f.display(),
                std::fs::read_to_string(f).unwrap_or_default()
            );
            println!(
                "# would run: sbatch --parsable {} {}\n",
                array_args.join(" "),
                f.display()
            );
        }
        println!(
            "# {}\n{}",
            collect_file.display(),
            std::fs::read_to_string(&collect_file).unwrap_or_default()
        );
        println!(
            "# would run: sbatch --parsable {}{} {}",
            if array_file.is_some() {
                "--dependency=afterany:ARRAY "
            } else {
                ""
            },
            collect_user.join(" "),
            collect_file.display()
        );
        println!(
            "dry run: {} of {} cells would be submitted ({} done, {busy} running or queued); nothing was submitted",
            sub.cells.len(),
            plan.cells.len(),
            plan.cells.iter().filter(|c| c.state == super::CellState::Done).count()
        );
        return Ok(sub);
    }
    if let Some(f) = &array_file {
        sub.array_job = Some(sbatch(&array_args, f)?);
    }
    let mut cargs = vec![];
    if let Some(a) = &sub.array_job {
        cargs.push(format!("--dependency=afterany:{a}"));
    }
    cargs.extend(collect_user);
    // The array is in the queue: record it before the collect job, so
    // `stilts status` knows it even if the second sbatch fails.
    let json = |s: &Submission| serde_json::to_string_pretty(s).unwrap_or_default();
    write("submission.json", &json(&sub))?;
    sub.collect_job = Some(sbatch(&cargs, &collect_file)?);
    write("submission.json", &json(&sub))?;
    match &sub.array_job {
        Some(a) => println!(
            "submitted array job {a} ({} cell{}{}) and collect job {}; {} done, {busy} already running or queued",
            sub.cells.len(),
            if sub.cells.len() == 1 { "" } else { "s" },
            opts.max_parallel
                .map(|n| format!(", at most {n} at once"))
                .unwrap_or_default(),
            sub.collect_job.as_deref().unwrap_or("?"),
            plan.cells.iter().filter(|c| c.state == super::CellState::Done).count()
        ),
        None => println!(
            "every cell is done or under way; submitted only the collect job {}",
            sub.collect_job.as_deref().unwrap_or("?")
        ),
    }
    println!("logs: {}/logs/", dir.display());
    println!("follow: stilts status {}", plan.store.root().display());
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collect_job_asks_for_no_gpu() {
        let w: Vec<String> = [
            "--partition=gpu",
            "--gres=gpu:1",
            "--time=1:00:00",
            "--gpus",
            "2",
            "-c",
            "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            without_gpus(&w),
            vec!["--partition=gpu", "--time=1:00:00", "-c", "4"]
        );
    }
}
