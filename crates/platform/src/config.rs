//! Typed configuration from environment variables.
//!
//! A service builds its configuration with an [`EnvReader`]: each `read*` call parses one
//! variable, and a bad value is recorded instead of aborting, so [`EnvReader::finish`] can report
//! every bad variable in one message. The reader takes its variables from a map so tests can
//! build configurations without touching the process environment.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

/// Every configuration problem found while loading, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// One line per bad variable, naming it.
    pub problems: Vec<String>,
}

/// Reads typed values out of a set of environment variables, collecting errors.
#[derive(Debug)]
pub struct EnvReader {
    vars: HashMap<String, String>,
    problems: Vec<String>,
}

impl EnvReader {
    /// A reader over the process environment.
    pub fn from_process() -> Self {
        Self::from_map(std::env::vars().collect())
    }

    /// A reader over an explicit map (tests, or a file loaded by the caller).
    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Self {
            vars,
            problems: Vec::new(),
        }
    }

    /// The raw value of `name`, if set and not empty.
    pub fn raw(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// `name` parsed as `T`, or `default` when unset. A value that does not parse is recorded.
    pub fn read<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: Display,
    {
        self.read_opt(name).unwrap_or(default)
    }

    /// `name` parsed as `T` when set. A value that does not parse is recorded and `None` returned.
    pub fn read_opt<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.raw(name)?;
        match raw.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(format!("{name}={raw:?}: {e}"));
                None
            }
        }
    }

    /// A boolean (`true/false/1/0/yes/no/on/off`), or `default` when unset.
    pub fn read_bool(&mut self, name: &str, default: bool) -> bool {
        let Some(raw) = self.raw(name) else {
            return default;
        };
        match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => {
                self.problems
                    .push(format!("{name}={raw:?}: expected true or false"));
                default
            }
        }
    }

    /// A string, or `default` when unset.
    pub fn read_string(&mut self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_owned())
    }

    /// Records a problem found by the caller's own cross-field checks.
    pub fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    /// `Ok(())` when every variable read so far was valid, else all problems at once.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(pairs: &[(&str, &str)]) -> EnvReader {
        EnvReader::from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn every_bad_variable_is_reported_at_once() {
        let mut r = reader(&[("A_PORT", "eighty"), ("B_FLAG", "maybe"), ("C", "7")]);
        let a: u16 = r.read("A_PORT", 1);
        let b = r.read_bool("B_FLAG", false);
        let c: u32 = r.read("C", 0);
        assert_eq!((a, b, c), (1, false, 7));
        let err = r.finish().unwrap_err();
        assert_eq!(err.problems.len(), 2);
        let text = err.to_string();
        assert!(text.contains("A_PORT") && text.contains("B_FLAG"), "{text}");
    }

    #[test]
    fn unset_and_empty_values_fall_back_to_defaults() {
        let mut r = reader(&[("EMPTY", "  ")]);
        assert_eq!(r.read::<u16>("EMPTY", 5), 5);
        assert_eq!(r.read::<u16>("MISSING", 6), 6);
        assert!(r.finish().is_ok());
    }
}
