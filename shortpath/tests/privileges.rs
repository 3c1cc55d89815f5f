//! Privileges and bpffs: every command checks privileges up front with the
//! same message; bpffs is mounted private (0700); pin directories that are
//! not root's, that others can write, or that contain symlinks are refused.

mod common;

use std::{
    os::unix::fs::{symlink, PermissionsExt as _},
    path::Path,
    process::Command,
};

use common::*;

fn as_nobody(args: &[&str]) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(BIN)
        .args(args)
        .output()
        .expect("setpriv (util-linux) runs")
}

#[test]
fn every_command_checks_privileges_first_with_one_message() {
    root_or_skip!();
    let commands: &[&[&str]] = &[
        &["lab", "up"],
        &["lab", "up", "--force"],
        &["lab", "down"],
        &["lab", "status"],
        &["lab", "exec", "node-a", "--", "true"],
        &["lab", "check"],
        &["mode"],
        &["mode", "peer"],
        &["bench", "--duration", "0.1"],
        &["trace", "--packets", "1"],
        &["report", "--out", "/nonexistent/never-written"],
    ];
    let mut messages = std::collections::BTreeSet::new();
    for args in commands {
        let o = as_nobody(args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded without privileges");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: shortpath needs root"),
            "{args:?}: {err}"
        );
        messages.insert(err);
    }
    assert_eq!(
        messages.len(),
        1,
        "the same message everywhere: {messages:?}"
    );
    // Printing the default config needs nothing.
    let o = as_nobody(&["lab", "config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("[[node]]"));
}

#[test]
fn bpffs_is_mounted_private_when_shortpath_mounts_it() {
    root_or_skip!();
    let name = unique_name("bm");
    // A private mount namespace without bpffs on /sys/fs/bpf: the lab's
    // namespaces, pins and mount live and die inside it.
    let script = format!(
        "set -e; umount /sys/fs/bpf; \
         {BIN} lab up --name {name} --mode peer; \
         stat -c 'mode=%a uid=%u' /sys/fs/bpf; \
         stat -f -c 'fs=%T' /sys/fs/bpf; \
         {BIN} lab down --name {name}"
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux)");
    let out = stdout(&o);
    assert!(o.status.success(), "{}\n{out}", stderr(&o));
    // bpffs always adds the sticky bit to its root; what counts is 0700.
    let mode = out
        .split_whitespace()
        .find_map(|w| w.strip_prefix("mode="))
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .expect("stat printed the mode");
    assert_eq!(mode & 0o777, 0o700, "{out}");
    assert!(out.contains("uid=0"), "{out}");
    assert!(out.contains("fs=bpf_fs"), "{out}");
    assert!(namespaces_of(&name).is_empty());
}

fn pin_dir(lab: &str) -> std::path::PathBuf {
    shortpath::dataplane::PinRoot::shortpath().path().join(lab)
}

#[test]
fn pin_directories_others_can_write_or_do_not_own_are_refused() {
    root_or_skip!();
    let lab = TestLab::up_with("pd", None, &["--mode", "peer"]);
    let dir = pin_dir(&lab.name);
    let set_mode = |m: u32| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m));

    set_mode(0o777).unwrap();
    let o = shortpath(&["mode", "--name", &lab.name, "redirect"]);
    set_mode(0o700).unwrap();
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!(
            "refusing pin directory {}: mode 777 lets others write",
            dir.display()
        )),
        "{err}"
    );

    let node = dir.join("node-a");
    nix::unistd::chown(&node, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let o = shortpath(&["mode", "--name", &lab.name, "redirect"]);
    nix::unistd::chown(&node, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("owned by uid 65534, not root"), "{err}");

    // Fixed, it works again.
    ok(shortpath(&["mode", "--name", &lab.name, "redirect"]));
}

#[test]
fn symlinks_inside_pin_paths_are_never_followed() {
    root_or_skip!();
    let lab = TestLab::up_with("sy", None, &["--mode", "peer"]);
    let sentinel = Path::new("/sys/fs/bpf").join(format!("sp-symlink-{}", std::process::id()));
    std::fs::create_dir_all(sentinel.join("keep")).unwrap();
    let links = pin_dir(&lab.name).join("node-a/links");
    // Replace the node's links directory by a symlink to the sentinel.
    ok(shortpath(&["mode", "--name", &lab.name, "bridge"]));
    std::fs::remove_dir_all(&links).unwrap();
    symlink(&sentinel, &links).unwrap();

    let o = shortpath(&["mode", "--name", &lab.name, "peer"]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains(&format!(
            "refusing pin directory {}: it is a symlink",
            links.display()
        )),
        "{err}"
    );
    // Nothing was pinned through it, and removing the lab removes the
    // symlink, not what it points to.
    assert_eq!(
        std::fs::read_dir(&sentinel).unwrap().count(),
        1,
        "something was written through the symlink"
    );
    ok(shortpath(&["lab", "down", "--name", &lab.name]));
    assert!(
        sentinel.join("keep").is_dir(),
        "lab down followed the symlink"
    );
    assert!(!pin_dir(&lab.name).exists());
    std::fs::remove_dir(sentinel.join("keep")).unwrap();
    std::fs::remove_dir(&sentinel).unwrap();
}
