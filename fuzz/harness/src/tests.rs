//! Replays what the fuzzers found and kept: every file of
//! `fuzz/regressions/<target>/` (inputs that once crashed a target, kept
//! after the fix) and of the checked-in corpus `fuzz/corpus/<target>/`.

use super::{TARGETS, target};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs every file under `root/<target>/`; returns how many ran.
fn replay(root: &Path) -> usize {
    let mut failures = vec![];
    let mut n = 0;
    let Ok(dirs) = std::fs::read_dir(root) else {
        return 0;
    };
    for dir in dirs {
        let dir = dir.expect("a directory entry").path();
        let name = dir
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if !dir.is_dir() {
            continue;
        }
        let body = target(&name)
            .unwrap_or_else(|| panic!("{} is not a fuzz target's directory", dir.display()));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("a readable directory")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).expect("a readable file");
            n += 1;
            if std::panic::catch_unwind(|| body(&data)).is_err() {
                failures.push(file.display().to_string());
            }
        }
    }
    assert!(failures.is_empty(), "inputs that fail again: {failures:#?}");
    n
}

#[test]
fn every_crash_found_stays_fixed() {
    let n = replay(&fuzz_dir().join("regressions"));
    println!("{n} regression inputs replayed");
}

#[test]
fn the_corpus_replays_clean() {
    let n = replay(&fuzz_dir().join("corpus"));
    println!("{n} corpus inputs replayed");
}

#[test]
fn every_target_has_a_binary_and_a_corpus() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
        let bin = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(bin.is_file(), "{} is missing", bin.display());
    }
}
