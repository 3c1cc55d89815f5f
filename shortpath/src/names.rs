//! Names that end up in paths, namespace names and bpffs pins.
//!
//! A name from a user, a config file or a state file is untrusted input:
//! it becomes one of these types before it touches the file system, bpffs,
//! a namespace or netlink, and only these types are accepted by the
//! functions that build paths ([`crate::runtime::lab_dir`],
//! [`crate::dataplane::NodePins`]). Every one of them is a single, harmless
//! path component: ASCII letters, digits, `-` and `_`, not starting with
//! `-`, so never empty, `.`, `..`, absolute or containing `/`.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// Why a name was refused; the message says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: use 1 to {max} ASCII letters, digits, '-' or '_', not starting with '-'")]
pub struct NameError {
    pub kind: &'static str,
    pub name: String,
    pub max: usize,
}

fn check(kind: &'static str, max: usize, s: &str) -> Result<(), NameError> {
    let ok = !s.is_empty()
        && s.len() <= max
        && !s.starts_with('-')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError {
            kind,
            name: s.to_owned(),
            max,
        })
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            pub const MAX_LEN: usize = $max;

            pub fn new(s: &str) -> Result<Self, NameError> {
                check($kind, $max, s).map(|()| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                check($kind, $max, &s).map(|()| Self(s))
            }
        }

        impl From<$ty> for String {
            fn from(n: $ty) -> String {
                n.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        /// Shown as the string it is, quoted.
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

name_type!(
    /// A lab's name: the prefix of its namespaces, its runtime directory
    /// `/run/shortpath/<lab>/` and its pin directory.
    LabName,
    "lab",
    24
);

name_type!(
    /// A node's name (namespace `<lab>-<node>`, pins `…/<lab>/<node>/`).
    NodeName,
    "node",
    40
);

name_type!(
    /// A pod's name (namespace `<lab>-<node>-<pod>`).
    PodName,
    "pod",
    40
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_single_harmless_path_components_pass() {
        for bad in [
            "",
            "/",
            ".",
            "..",
            "../x",
            "/tmp/sentinel",
            "a/b",
            "a b",
            "-x",
            "läb",
            "a\0b",
            "a.b",
            "x\n",
            &"a".repeat(25),
        ] {
            let e = LabName::new(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid lab name"), "{e}");
            assert!(bad.parse::<LabName>().is_err());
        }
        for good in ["sp", "a", "lab_1", "x-y", "A9", &"a".repeat(24)] {
            assert_eq!(LabName::new(good).unwrap().as_str(), good);
        }
        assert!(NodeName::new(&"n".repeat(40)).is_ok());
        assert!(NodeName::new(&"n".repeat(41)).is_err());
        assert!(PodName::new("pod-a").is_ok());
    }

    #[test]
    fn names_are_checked_when_read_back_from_a_file() {
        let ok: LabName = serde_json::from_str("\"sp\"").unwrap();
        assert_eq!(ok, "sp");
        let e = serde_json::from_str::<NodeName>("\"../../etc\"").unwrap_err();
        assert!(e.to_string().contains("invalid node name"), "{e}");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"sp\"");
        assert_eq!(format!("{ok:?}"), "\"sp\"");
    }
}
