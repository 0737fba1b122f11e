//! The maintained bank and branch table of the zengin-code project
//! (github.com/zengin-code/source-data, the data the `zengin` crate embeds),
//! read at run time from a checkout of its `data` directory: `banks.json`
//! and `branches/<bank code>.json`, each an object keyed by code whose
//! values carry a `kana` name. Loading it at run time keeps 16 MB of JSON
//! out of the binary and lets an operator update it without a new build.

use crate::economy::zengin::{BankCode, BankDirectory, BranchCode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why the bank data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BankDataError {
    /// A file could not be read.
    #[error("cannot read bank data {path} (give the zengin-code source-data `data` directory)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not in the expected form.
    #[error("bank data {path} is not zengin-code JSON: {detail}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// The zengin-code table, loaded from JSON files.
#[derive(Clone, Debug, Default)]
pub struct JsonBankDirectory {
    banks: HashMap<String, (String, HashMap<String, String>)>,
}

fn read_names(path: &Path, digits: usize) -> Result<HashMap<String, String>, BankDataError> {
    let text = std::fs::read(path).map_err(|source| BankDataError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_names(&text, digits).map_err(|detail| BankDataError::Format {
        path: path.to_owned(),
        detail,
    })
}

/// The entries of one zengin-code file (`banks.json` with `digits` 4, a
/// branch file with 3): code → katakana name, or what is wrong with it.
/// A code is exactly `digits` ASCII digits: anything else cannot be looked
/// up, and a bank code names the branch file to read, so it must not be a path.
pub fn parse_names(json: &[u8], digits: usize) -> Result<HashMap<String, String>, String> {
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let obj = v.as_object().ok_or("not an object")?;
    let mut out = HashMap::with_capacity(obj.len());
    for (code, entry) in obj {
        if code.len() != digits || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("entry {code:?} is not a {digits}-digit code"));
        }
        let kana = entry
            .get("kana")
            .and_then(|k| k.as_str())
            .ok_or_else(|| format!("entry {code} has no kana name"))?;
        out.insert(code.clone(), kana.to_owned());
    }
    Ok(out)
}

impl JsonBankDirectory {
    /// Loads `dir/banks.json` and every bank's `dir/branches/<code>.json`
    /// (a bank without a branch file has no branches).
    pub fn load(dir: &Path) -> Result<JsonBankDirectory, BankDataError> {
        let mut banks = HashMap::new();
        for (code, name) in read_names(&dir.join("banks.json"), 4)? {
            let path = dir.join("branches").join(format!("{code}.json"));
            let branches = if path.exists() {
                read_names(&path, 3)?
            } else {
                HashMap::new()
            };
            banks.insert(code, (name, branches));
        }
        Ok(JsonBankDirectory { banks })
    }

    /// A directory of parsed entries ([`parse_names`]): bank code → (name,
    /// branch code → name).
    pub fn from_names(banks: HashMap<String, (String, HashMap<String, String>)>) -> Self {
        JsonBankDirectory { banks }
    }

    /// How many banks it holds.
    pub fn n_banks(&self) -> usize {
        self.banks.len()
    }
}

impl BankDirectory for JsonBankDirectory {
    fn bank_name(&self, bank: &BankCode) -> Option<String> {
        self.banks.get(&bank.to_string()).map(|b| b.0.clone())
    }
    fn branch_name(&self, bank: &BankCode, branch: &BranchCode) -> Option<String> {
        self.banks
            .get(&bank.to_string())?
            .1
            .get(&branch.to_string())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_zengin_code_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("branches")).unwrap();
        std::fs::write(
            dir.path().join("banks.json"),
            r#"{"0009":{"code":"0009","name":"三井住友","kana":"ミツイスミトモ","hira":"みついすみとも","roma":"mitsuisumitomo"}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("branches/0009.json"),
            r#"{"001":{"code":"001","name":"神保町","kana":"ジンボウチヨウ","hira":"じんぼうちよう","roma":"jinboucho"}}"#,
        )
        .unwrap();
        let d = JsonBankDirectory::load(dir.path()).unwrap();
        assert_eq!(d.n_banks(), 1);
        let bank = BankCode::parse("0009").unwrap();
        assert_eq!(d.bank_name(&bank).as_deref(), Some("ミツイスミトモ"));
        assert_eq!(
            d.branch_name(&bank, &BranchCode::parse("001").unwrap())
                .as_deref(),
            Some("ジンボウチヨウ")
        );
        assert!(
            d.branch_name(&bank, &BranchCode::parse("002").unwrap())
                .is_none()
        );
        std::fs::write(
            dir.path().join("banks.json"),
            r#"{"../../etc/passwd":{"kana":"ア"}}"#,
        )
        .unwrap();
        let err = JsonBankDirectory::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a 4-digit code"), "{err}");
        std::fs::write(dir.path().join("banks.json"), "[]").unwrap();
        assert!(matches!(
            JsonBankDirectory::load(dir.path()),
            Err(BankDataError::Format { .. })
        ));
    }
}
