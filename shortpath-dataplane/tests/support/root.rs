//! `root_or_skip!()`, shared by the dataplane's and the lab's integration
//! tests (included by path).

/// The first statement of every test that needs root (namespaces, eBPF,
/// bpffs): for any other user it returns from the test with one line on
/// stderr, `skipped <test>: needs root (CI runs it as root)`, instead of
/// failing, so `cargo test` as a user runs the unit tests and skips these.
///
/// The line is written to stderr itself: `eprintln!` is captured by the test
/// harness and shown only for failed tests.
macro_rules! root_or_skip {
    () => {
        if !nix::unistd::geteuid().is_root() {
            fn here() {}
            let test = std::any::type_name_of_val(&here);
            let test = test.strip_suffix("::here").unwrap_or(test);
            let line = format!("skipped {test}: needs root (CI runs it as root)\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            return;
        }
    };
}
#[allow(unused_imports)]
pub(crate) use root_or_skip;
