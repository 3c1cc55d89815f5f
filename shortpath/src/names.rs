//! The lab's names. Built with the dataplane's checked-name machinery
//! ([`shortpath_dataplane::name_type!`]): each is a single, harmless path
//! component before it touches the file system, bpffs, a namespace or
//! netlink.

use shortpath_dataplane::name_type;
pub use shortpath_dataplane::names::{NameError, NodeName};

name_type!(
    /// A lab's name: the prefix of its namespaces, its runtime directory
    /// `/run/shortpath/<lab>/` and its pin directory.
    LabName,
    "lab",
    24
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
