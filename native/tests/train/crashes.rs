//! Crashes, damaged checkpoints and concurrent runs: a run killed with SIGKILL at 20 points
//! resumes each time and ends with the weights of an uninterrupted run; a damaged newest
//! checkpoint is skipped with a warning naming the file; a second run on the same output
//! directory is refused, and the lock of a killed run is taken over.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{assert_error, small_config, train, walk, write_config};

/// SplitMix64: the kill points are drawn from a fixed seed, so a failing sequence replays (the
/// points are events of the run, such as "checkpoint 7 saved" or "checkpoint 12 being written",
/// plus a drawn delay).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// Where a run is killed.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// `ms` after it starts (setup, the lock, resuming).
    Start(u64),
    /// `ms` after a checkpoint of step ≥ `step` is complete (in the middle of a later step).
    Saved(usize, u64),
    /// While a checkpoint of step ≥ `step` is being written (its temporary directory exists).
    Saving(usize),
}

const STEPS: usize = 30;
const KILLS: usize = 20;

/// The crash run: the tiny preset, a checkpoint after every step (the newest two kept), every
/// step's loss logged.
fn crash_config(out: &Path) -> serde_json::Value {
    small_config(
        out,
        json!({
            "max_steps": STEPS,
            "save_steps": 1,
            "save_total_limit": 2,
            "logging_steps": 1,
            "per_device_train_batch_size": 4,
            "do_eval": false,
        }),
    )
}

/// `KILLS` kill points spread over the run, in the order of the run: distinct steps drawn from
/// 1..STEPS-3 (the run cannot finish before the last kill), each with a kind and a delay.
fn kill_points(seed: u64) -> Vec<KillAt> {
    let mut rng = Rng(seed);
    let mut steps: Vec<usize> = (1..=STEPS - 3).collect();
    while steps.len() > KILLS {
        steps.remove(rng.below(steps.len() as u64) as usize);
    }
    steps
        .into_iter()
        .map(|step| match rng.below(10) {
            0..=1 => KillAt::Start(rng.below(120)),
            2..=6 => KillAt::Saved(step, rng.below(60)),
            _ => KillAt::Saving(step),
        })
        .collect()
}

/// The steps of `out`'s checkpoints: complete (with their manifest) and being written.
fn checkpoints(out: &Path) -> (Vec<usize>, Vec<usize>) {
    let (mut done, mut writing) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(out).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("checkpoint-") else {
            continue;
        };
        if let Some(step) = rest.strip_suffix(".tmp").and_then(|s| s.parse().ok()) {
            writing.push(step);
        } else if let Ok(step) = rest.parse() {
            if entry.path().join("manifest.json").is_file() {
                done.push(step);
            }
        }
    }
    (done, writing)
}

/// Waits until `ready` holds for `out` (true) or the child exits (false).
fn wait_until(child: &mut Child, out: &Path, ready: impl Fn(&Path) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if ready(out) {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        assert!(Instant::now() < deadline, "the run stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn spawn(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_native"))
        .args(["train", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs until `at`, then SIGKILL; returns whether a checkpoint was being written at the kill.
fn run_and_kill(config: &Path, out: &Path, at: KillAt) -> bool {
    let mut child = spawn(config);
    match at {
        KillAt::Start(ms) => std::thread::sleep(Duration::from_millis(ms)),
        KillAt::Saved(step, ms) => {
            let reached = wait_until(&mut child, out, |o| {
                checkpoints(o).0.iter().any(|&s| s >= step)
            });
            assert!(reached, "the run ended before checkpoint {step}");
            std::thread::sleep(Duration::from_millis(ms));
        }
        KillAt::Saving(step) => {
            let reached = wait_until(&mut child, out, |o| {
                let (done, writing) = checkpoints(o);
                writing.iter().any(|&s| s >= step) || done.iter().any(|&s| s > step)
            });
            assert!(reached, "the run ended before checkpoint {step}");
        }
    }
    let mid_save = !checkpoints(out).1.is_empty();
    child.kill().unwrap();
    child.wait().unwrap();
    mid_save
}

/// `(step, loss, lr)` of every line of `metrics.jsonl` (the speed differs between runs).
fn losses(out: &Path) -> Vec<(u64, String, String)> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["loss"].to_string(),
                v["lr"].to_string(),
            )
        })
        .collect()
}

/// The output directory's checkpoints and their trainer states.
fn states(out: &Path) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("checkpoint-"))
        .map(|n| {
            let state = std::fs::read_to_string(out.join(&n).join("trainer_state.json"));
            (n, state.unwrap_or_default())
        })
        .collect();
    found.sort();
    found
}

#[test]
fn a_run_killed_at_20_points_resumes_each_time_to_the_same_weights() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    let out = train(&write_config(tmp.path(), &crash_config(&straight)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = std::fs::read(straight.join("model/model.safetensors")).unwrap();

    let seed = std::env::var("CRASH_SEED").map_or(14, |s| s.parse().unwrap());
    let points = kill_points(seed);
    let killed = tmp.path().join("killed");
    let config = tmp.path().join("killed.json");
    std::fs::write(&config, crash_config(&killed).to_string()).unwrap();
    let mut mid_save = 0;
    for (i, &at) in points.iter().enumerate() {
        mid_save += run_and_kill(&config, &killed, at) as usize;
        assert!(
            !killed.join("model").exists(),
            "kill {i} ({at:?}) came after the end of the run (seed {seed})"
        );
    }
    let out = train(&config);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "seed {seed}: {stderr}");
    assert!(stderr.contains("resuming from"), "{stderr}");
    let after = std::fs::read(killed.join("model/model.safetensors")).unwrap();
    assert!(
        after == reference,
        "seed {seed}: weights after {KILLS} kills differ from the uninterrupted run ({points:?})"
    );
    // Every step's loss is the uninterrupted run's, logged once: each resumed part trained from
    // the same weights, and the lines of redone steps were dropped.
    assert_eq!(losses(&killed), losses(&straight), "seed {seed}");
    assert_eq!(states(&killed), states(&straight), "seed {seed}");
    assert!(!killed.join("train.lock").exists(), "the lock file stayed");
    for file in ["config.json", "metrics.jsonl", "training_curves.svg"] {
        assert!(killed.join(file).is_file(), "{file} missing");
    }
    eprintln!(
        "seed {seed}: {KILLS} kills ({mid_save} while a checkpoint was being written) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The run of the damage tests: 10 steps, checkpoints at 5 and 10, all kept.
fn damage_config(out: &Path) -> serde_json::Value {
    small_config(
        out,
        json!({
            "max_steps": 10,
            "save_steps": 5,
            "save_total_limit": null,
            "per_device_train_batch_size": 4,
            "do_eval": false,
        }),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    for file in walk(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, target).unwrap();
    }
}

#[test]
fn a_damaged_newest_checkpoint_is_skipped_with_a_warning_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let straight = tmp.path().join("straight");
    let out = train(&write_config(tmp.path(), &damage_config(&straight)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = std::fs::read(straight.join("model/model.safetensors")).unwrap();
    type Damage = fn(&Path);
    let cases: [(&str, Damage, &str, &str); 5] = [
        (
            "truncated",
            |c| cut(&c.join("model.mpk"), 2),
            "model.mpk",
            "truncated",
        ),
        (
            "emptied",
            |c| cut(&c.join("optimizer-model-decay.mpk"), 0),
            "optimizer-model-decay.mpk",
            "empty",
        ),
        (
            "deleted",
            |c| std::fs::remove_file(c.join("trainer_state.json")).unwrap(),
            "trainer_state.json",
            "missing",
        ),
        (
            "model gone",
            |c| std::fs::remove_file(c.join("model.mpk")).unwrap(),
            "model.mpk",
            "missing",
        ),
        (
            "no manifest",
            |c| std::fs::remove_file(c.join("manifest.json")).unwrap(),
            "manifest.json",
            "missing",
        ),
    ];
    for (i, (case, damage, file, why)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("case-{i}"));
        for step in [5, 10] {
            let name = format!("checkpoint-{step}");
            copy_dir(&straight.join(&name), &dir.join(&name));
        }
        damage(&dir.join("checkpoint-10"));
        // The last case damages both: nothing is whole, the run starts over.
        let all = i == cases.len() - 1;
        if all {
            damage(&dir.join("checkpoint-5"));
        }
        let out = train(&write_config(tmp.path(), &damage_config(&dir)));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {stderr}");
        let warning = stderr
            .lines()
            .find(|l| l.starts_with("warning: skipping checkpoint-10: "))
            .unwrap_or_else(|| panic!("{case}: no warning in {stderr}"));
        let named = dir.join("checkpoint-10").join(file);
        assert!(
            warning.contains(&format!("{}: {why}", named.display())),
            "{case}: {warning}"
        );
        assert_eq!(stderr.contains("resuming from"), !all, "{case}: {stderr}");
        assert_eq!(
            stderr.contains("warning: skipping checkpoint-5: "),
            all,
            "{case}: {stderr}"
        );
        assert_eq!(
            stderr.contains("warning: no whole checkpoint in "),
            all,
            "{case}: {stderr}"
        );
        let after = std::fs::read(dir.join("model/model.safetensors")).unwrap();
        assert!(
            after == reference,
            "{case}: weights differ from the straight run"
        );
        assert!(
            dir.join("checkpoint-10/manifest.json").is_file(),
            "{case}: checkpoint-10 written again"
        );
    }
}

/// Keeps the first `1/part` of a file (`0`: empties it).
fn cut(path: &Path, part: u64) {
    let len = std::fs::metadata(path).unwrap().len();
    let keep = len.checked_div(part).unwrap_or(0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(keep)
        .unwrap();
}

/// A checkpoint whose files match their manifest but do not hold this run's records (written
/// for another model, or by hand) is an error naming the file, without burn's note on its record
/// format of 0.14.
#[test]
fn an_unreadable_whole_checkpoint_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let checkpoint = dir.join("checkpoint-5");
    std::fs::create_dir_all(&checkpoint).unwrap();
    std::fs::write(checkpoint.join("model.mpk"), b"not a burn record").unwrap();
    t5_core::train::manifest::write(&checkpoint).unwrap();
    let out = train(&write_config(tmp.path(), &damage_config(&dir)));
    assert_error(
        &out,
        &[&format!("{}", checkpoint.join("model.mpk").display())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("0.14"), "{stderr}");
}

fn lock_holder(out: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(out.join("train.lock")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["pid"].as_u64().map(|p| p as u32)
}

/// A second run on a directory in use is refused (even with `overwrite_output_dir`, it deletes
/// nothing); the lock of a killed run is taken over; Ctrl-C releases it.
#[test]
fn a_second_run_on_the_same_output_dir_is_refused_and_a_dead_runs_lock_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let long = write_config(
        tmp.path(),
        &small_config(
            &dir,
            json!({"max_steps": 100_000, "save_steps": 1, "do_eval": false}),
        ),
    );
    let mut first = spawn(&long);
    let pid = first.id();
    let saved = wait_until(&mut first, &dir, |o| {
        lock_holder(o) == Some(pid) && !checkpoints(o).0.is_empty()
    });
    assert!(saved, "the first run ended early");

    let second = tmp.path().join("second.json");
    let config = small_config(&dir, json!({"overwrite_output_dir": true, "max_steps": 2}));
    std::fs::write(&second, config.to_string()).unwrap();
    let out = train(&second);
    assert_error(
        &out,
        &["in use by another run", &format!("pid {pid} on host ")],
    );
    assert!(first.try_wait().unwrap().is_none(), "the first run goes on");
    assert!(!checkpoints(&dir).0.is_empty(), "nothing was deleted");
    assert_eq!(lock_holder(&dir), Some(pid));

    first.kill().unwrap();
    first.wait().unwrap();
    let mut third = Command::new(env!("CARGO_BIN_EXE_native"))
        .args(["train", long.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let third_pid = third.id();
    let newest = checkpoints(&dir).0.into_iter().max().unwrap();
    let going = wait_until(&mut third, &dir, |o| {
        lock_holder(o) == Some(third_pid) && checkpoints(o).0.iter().any(|&s| s > newest)
    });
    assert!(going, "the third run did not take over");
    let status = Command::new("kill")
        .args(["-INT", &third_pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = third.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "taking over the lock of a run that is gone (pid {pid} on host"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("interrupted: saved"), "{stderr}");
    assert!(
        !dir.join("train.lock").exists(),
        "Ctrl-C left the lock file"
    );
}
