//! Untrusted names never become paths: every command refuses a bad lab
//! name with one clear line before it touches the file system, bpffs, a
//! namespace or netlink (issue: `lab down --name /tmp/x` used to remove
//! /tmp/x recursively). Sentinel directories where a bad name would lead
//! must survive every command.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A directory with a file in it, removed at the end of the test.
struct Sentinel(PathBuf);

impl Sentinel {
    fn new(path: PathBuf) -> Self {
        std::fs::create_dir_all(&path).expect("create sentinel");
        // bpffs holds no regular files; a subdirectory proves contents.
        std::fs::create_dir_all(path.join("keep")).expect("sentinel contents");
        Sentinel(path)
    }

    #[track_caller]
    fn assert_intact(&self, after: &str) {
        assert!(
            self.0.join("keep").is_dir(),
            "{} was removed by {after}",
            self.0.display()
        );
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(self.0.join("keep"));
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Every command that takes a lab name, with that name.
fn commands(name: &str, out: &Path) -> Vec<Vec<String>> {
    let out = out.to_string_lossy().into_owned();
    let c = |args: &[&str]| args.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    vec![
        c(&["lab", "up", "--name", name]),
        c(&["lab", "up", "--force", "--name", name]),
        c(&["lab", "down", "--name", name]),
        c(&["lab", "status", "--name", name]),
        c(&["lab", "status", "--json", "--name", name]),
        c(&["lab", "exec", "--name", name, "node-a", "--", "true"]),
        c(&["lab", "check", "--name", name]),
        c(&["mode", "--name", name]),
        c(&["mode", "--name", name, "peer"]),
        c(&["mode", "--name", name, "bridge"]),
        c(&[
            "bench",
            "--name",
            name,
            "--duration",
            "0.1",
            "--rounds",
            "1",
        ]),
        c(&["trace", "--name", name, "--packets", "1"]),
        c(&["report", "--name", name, "--out", &out]),
    ]
}

#[test]
fn every_command_refuses_bad_lab_names_with_one_line_and_touches_nothing() {
    root_or_skip!();
    let leaf = format!("sp-sentinel-{}", std::process::id());
    let tmp = tempfile::Builder::new()
        .prefix("sp-sentinel-")
        .tempdir_in("/tmp")
        .unwrap();
    let tmp_sentinel = Sentinel::new(tmp.path().join("lab"));
    let run_sentinel = Sentinel::new(Path::new("/run").join(&leaf));
    let bpf_sentinel = Sentinel::new(Path::new("/sys/fs/bpf").join(&leaf));
    let out = tmp.path().join("report");
    let names = [
        "/".to_owned(),
        "..".to_owned(),
        "../x".to_owned(),
        tmp_sentinel.0.to_string_lossy().into_owned(),
        format!("../{leaf}"),
        run_sentinel.0.to_string_lossy().into_owned(),
        bpf_sentinel.0.to_string_lossy().into_owned(),
        "a/b".to_owned(),
        String::new(),
        "a".repeat(25),
        "läb".to_owned(),
    ];
    let mut ran = 0;
    for name in &names {
        for args in commands(name, &out) {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = shortpath(&args);
            let err = stderr(&o);
            let what = format!("`shortpath {}`", args.join(" "));
            assert!(!o.status.success(), "{what} succeeded");
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{what}: not one line:\n{err}"
            );
            assert!(
                err.starts_with(&format!("error: invalid lab name {name:?}: use 1 to 24")),
                "{what}: {err}"
            );
            for s in [&tmp_sentinel, &run_sentinel, &bpf_sentinel] {
                s.assert_intact(&what);
            }
            assert!(!out.exists(), "{what} wrote a report");
            ran += 1;
        }
    }
    assert_eq!(ran, names.len() * 13);
}

#[test]
fn bad_node_and_pod_names_in_a_config_create_nothing() {
    root_or_skip!();
    let name = unique_name("bn");
    for (cfg, needle) in [
        (
            "[[node]]\nname = \"../../tmp\"\n[[node]]\nname = \"b\"\n",
            "invalid node name \"../../tmp\"",
        ),
        (
            "[[node]]\nname = \"a\"\npods = [\"/etc\"]\n[[node]]\nname = \"b\"\n",
            "invalid pod name \"/etc\"",
        ),
        (
            "[[node]]\nname = \"a\"\npods = [\"b\"]\n[[node]]\nname = \"a-b\"\n",
            "would share the namespace <lab>-a-b",
        ),
        (
            "[[node]]\nname = \"a\"\n[[node]]\nname = \"b\"\npod_ipv4 = \"172.17.1.0/24\"\n",
            "overlaps a's default pod_ipv4",
        ),
    ] {
        let f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(f.path(), cfg).unwrap();
        let path = f.path().to_string_lossy().into_owned();
        let o = shortpath(&["lab", "up", "--name", &name, "--config", &path]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{cfg}");
        assert!(err.contains(needle), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(namespaces_of(&name).is_empty(), "{cfg}: namespaces created");
        assert!(
            !Path::new("/run/shortpath").join(&name).exists(),
            "{cfg}: runtime directory created"
        );
        assert!(
            !shortpath::dataplane::PinRoot::shortpath()
                .path()
                .join(&name)
                .exists(),
            "{cfg}: pins created"
        );
    }
}
