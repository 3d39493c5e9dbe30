//! The fuzz targets on stable, in seconds: each target gets its seeds (`fuzz/corpus/<target>/`,
//! whose `ok-*` files it must accept and `no-*` files refuse), every input that once crashed it
//! (`fuzz/regressions/<target>/`), and then seeded random mutations of the seeds
//! (`t5_fuzz::mutate`), the same ones on every run. A panic fails the test and leaves the input
//! in the system's temporary folder. `T5_FUZZ_SMOKE=N` runs N mutations per seed instead of
//! [`MUTATIONS`]; the long runs are libFuzzer's (`scripts/fuzz`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use t5_core::rng::{derive_seed, SplitMix64};
use t5_fuzz::mutate::mutate;
use t5_fuzz::{target, Outcome, Target, TARGETS};

/// Mutations per seed in a plain `cargo test`.
const MUTATIONS: usize = 100;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of `dir`, sorted by name (none when it does not exist).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<(String, Vec<u8>)> = entries
        .map(|e| {
            let path = e.expect("a directory entry").path();
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("readable"))
        })
        .collect();
    files.sort();
    files
}

/// `target` on `data`; a panic fails the test, naming `what` and where the input was saved.
fn run(target: &Target, what: &str, data: &[u8]) -> Outcome {
    match catch_unwind(AssertUnwindSafe(|| (target.run)(data))) {
        Ok(outcome) => outcome,
        Err(_) => {
            let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            let path = std::env::temp_dir().join(format!("t5-fuzz-{}-{hash:016x}", target.name));
            std::fs::write(&path, data).expect("saving the input");
            panic!(
                "target `{}` panicked on {what}; the input is {} (copy it to \
                 fuzz/regressions/{}/ once fixed)",
                target.name,
                path.display(),
                target.name
            );
        }
    }
}

fn smoke(name: &str) {
    let target = target(name).expect("a target");
    let seeds = files(&root().join("corpus").join(name));
    assert!(!seeds.is_empty(), "fuzz/corpus/{name}/ has no seeds");
    for (file, data) in &seeds {
        let outcome = run(target, file, data);
        if file.starts_with("ok-") {
            assert!(
                outcome.is_ok(),
                "{name}: seed {file} is refused: {outcome:?}"
            );
        } else if file.starts_with("no-") {
            assert!(outcome.is_err(), "{name}: seed {file} is accepted");
        }
    }
    for (file, data) in files(&root().join("regressions").join(name)) {
        let _ = run(target, &format!("regression {file}"), &data);
    }
    let per_seed = std::env::var("T5_FUZZ_SMOKE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(MUTATIONS);
    let index = TARGETS.iter().position(|t| t.name == name).expect("listed");
    let mut rng = SplitMix64::new(derive_seed(14, index as u64));
    for i in 0..per_seed * seeds.len() {
        let (file, data) = &seeds[i % seeds.len()];
        let other = &seeds[rng.below(seeds.len() as u64) as usize].1;
        let input = mutate(&mut rng, data, other);
        let _ = run(target, &format!("mutation {i} (of {file})"), &input);
    }
}

macro_rules! smoke_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                smoke(stringify!($name));
            }
        )*

        #[test]
        fn every_target_has_a_smoke_test() {
            let tested = [$(stringify!($name)),*];
            for t in TARGETS {
                assert!(tested.contains(&t.name), "no smoke test for `{}`", t.name);
            }
        }
    };
}

smoke_tests!(
    run_config,
    model_config,
    jsonl,
    tsv,
    parquet,
    safetensors,
    torch_bin,
    shard_index,
    adapter,
    hypernetwork,
    npy,
    tokenizer,
    tokenizer_json,
);

/// Rewrites `fuzz/corpus/` from `t5_fuzz::seeds` when `T5_FUZZ_WRITE_SEEDS` is set; otherwise
/// checks that every seed it would write is there.
#[test]
fn write_seeds() {
    let corpus = root().join("corpus");
    if std::env::var_os("T5_FUZZ_WRITE_SEEDS").is_some() {
        t5_fuzz::seeds::write(&corpus).expect("writing fuzz/corpus/");
    }
    for s in t5_fuzz::seeds::all() {
        let path = corpus.join(s.target).join(&s.name);
        assert!(
            path.is_file(),
            "{} is missing: T5_FUZZ_WRITE_SEEDS=1 cargo test -p t5-fuzz --test smoke write_seeds",
            path.display()
        );
    }
}

#[test]
fn parts_undo_join() {
    use t5_fuzz::input::{join, parts};
    let files: [&[u8]; 3] = [b"{\"a\": 1}", b"\x01\x00\x02", b"rest\x00"];
    assert_eq!(parts(&join(&files), 3), files);
    assert_eq!(parts(&join(&files[..2]), 2), files[..2]);
    assert_eq!(parts(b"no nul", 3), [&b"no nul"[..], b"", b""]);
    assert_eq!(
        parts(b"a\0\xff\xff\xff\xffshort", 3),
        [&b"a"[..], b"short", b""]
    );
    assert_eq!(parts(b"", 1), [&b""[..]]);
}

#[test]
fn the_same_seed_gives_the_same_mutations() {
    let run = |seed| {
        let mut rng = SplitMix64::new(seed);
        (0..200)
            .map(|_| mutate(&mut rng, b"{\"d_model\": 512}", b"other"))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
    assert!(run(7).iter().any(|m| m.as_slice() != b"{\"d_model\": 512}"));
}
