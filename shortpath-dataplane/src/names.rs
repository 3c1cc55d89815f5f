//! Names that end up in paths, namespace names and bpffs pins: the
//! checked-name machinery ([`name_type!`](crate::name_type)) and the names
//! the dataplane itself takes. Callers define their own (the lab's
//! `LabName`, `PodName`) with the same macro.
//!
//! A name from a user, a config file or a state file is untrusted input:
//! it becomes one of these types before it touches the file system, bpffs,
//! a namespace or netlink, and only these types are accepted by the
//! functions that build paths (for example [`crate::NodePins`]). Every one of them is a single, harmless
//! path component: ASCII letters, digits, `-` and `_`, not starting with
//! `-`, so never empty, `.`, `..`, absolute or containing `/`.

/// Why a name was refused; the message says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: use 1 to {max} ASCII letters, digits, '-' or '_', not starting with '-'")]
pub struct NameError {
    pub kind: &'static str,
    pub name: String,
    pub max: usize,
}

#[doc(hidden)]
pub fn check(kind: &'static str, max: usize, s: &str) -> Result<(), NameError> {
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

#[macro_export]
macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            pub const MAX_LEN: usize = $max;

            pub fn new(s: &str) -> Result<Self, $crate::names::NameError> {
                $crate::names::check($kind, $max, s).map(|()| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::names::NameError;
            fn from_str(s: &str) -> Result<Self, $crate::names::NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::names::NameError;
            fn try_from(s: String) -> Result<Self, $crate::names::NameError> {
                $crate::names::check($kind, $max, &s).map(|()| Self(s))
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
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
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
    /// A node's identity: the last component of its pin directory
    /// (`<pin root>/<node>/`), and in a lab the suffix of its namespace.
    NodeName,
    "node",
    40
);

name_type!(
    /// One component of a pin root below `/sys/fs/bpf`.
    PinName,
    "pin directory",
    40
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_single_harmless_components() {
        for bad in [
            "",
            "/",
            ".",
            "..",
            "a/b",
            "-x",
            "a.b",
            "x\n",
            &"n".repeat(41),
        ] {
            assert!(NodeName::new(bad).is_err(), "{bad:?}");
            assert!(PinName::new(bad).is_err(), "{bad:?}");
        }
        assert!(NodeName::new(&"n".repeat(40)).is_ok());
        let e = serde_json::from_str::<NodeName>("\"../../etc\"").unwrap_err();
        assert!(e.to_string().contains("invalid node name"), "{e}");
    }
}
