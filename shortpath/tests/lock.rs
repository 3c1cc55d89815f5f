//! One writer per lab: every command that changes a lab takes its lock, a
//! second writer waits (saying what for) or fails at once with --no-wait,
//! and `lab up --force` never tears down a lab another process is still
//! building.

mod common;

use std::time::{Duration, Instant};

use common::{kernel, *};
use serde_json::Value;

#[test]
fn parallel_mode_switches_leave_state_file_and_kernel_in_agreement() {
    root_or_skip!();
    let lab = TestLab::up("lp");
    let nss: Vec<String> = lab.plan().nodes.iter().map(|n| n.netns.clone()).collect();
    let ports = 4;
    for i in 0..50 {
        let (first, second) = if i % 2 == 0 {
            ("peer", "bridge")
        } else {
            ("bridge", "peer")
        };
        let attach = if i % 3 == 0 { "tc" } else { "tcx" };
        let a = spawn_shortpath(
            &["mode", "--name", &lab.name, first, "--attach", attach],
            &[],
        );
        // Staggered starts: the second often arrives while the first is
        // half-way (without the lock, it then records its mode last while
        // the kernel keeps the first one's programs).
        std::thread::sleep(Duration::from_millis((i * 37) % 150));
        let b = spawn_shortpath(
            &["mode", "--name", &lab.name, second, "--attach", attach],
            &[],
        );
        for c in [a, b] {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "round {i}: {}", stderr(&o));
        }
        let v = lab.status();
        assert_eq!(v["drift"], Value::Null, "round {i}: {v}");
        let recorded = v["dataplane"]["recorded"]["mode"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(v["mode"], recorded.as_str(), "round {i}");
        let seen = kernel::attached_in(&nss);
        match recorded.as_str() {
            "bridge" => assert!(seen.is_empty(), "round {i}: {seen:?}"),
            "peer" => {
                assert_eq!(seen.len(), ports, "round {i}: {seen:?}");
                assert!(
                    seen.iter().all(|(_, (_, kind, _, _))| *kind == attach),
                    "round {i}: {seen:?}"
                );
            }
            other => panic!("round {i}: recorded {other}"),
        }
    }
}

#[test]
fn a_second_writer_waits_or_fails_at_once_and_force_never_tears_down_a_build() {
    root_or_skip!();
    let name = unique_name("lw");
    let builder = spawn_shortpath(
        &["lab", "up", "--name", &name],
        &[("SHORTPATH_FAULT", "stall:pods:3000")],
    );
    std::thread::sleep(Duration::from_millis(800));

    // --no-wait: refused at once, naming who holds the lab.
    for args in [
        vec!["lab", "up", "--force", "--no-wait", "--name", &name],
        vec!["lab", "down", "--no-wait", "--name", &name],
        vec!["mode", "--no-wait", "--name", &name, "peer"],
    ] {
        let t = Instant::now();
        let o = shortpath(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?}");
        assert!(t.elapsed() < Duration::from_secs(1), "{args:?} waited");
        assert!(
            err.contains(&format!("lab {name} is busy: pid {}", builder.id())),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("lab up --name"),
            "{args:?} names the command: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // Nothing of the build was torn down.
    assert_eq!(namespaces_of(&name).len(), 4);

    // Without --no-wait, --force waits for the build, says so, then rebuilds.
    let forcer = spawn_shortpath(&["lab", "up", "--force", "--name", &name], &[]);
    let built = builder.wait_with_output().unwrap();
    assert!(
        built.status.success(),
        "the first build: {}",
        stderr(&built)
    );
    let forced = forcer.wait_with_output().unwrap();
    let err = stderr(&forced);
    assert!(forced.status.success(), "{err}");
    assert!(
        err.contains(&format!("waiting for lab {name}: pid")),
        "{err}"
    );
    ok(shortpath(&["lab", "check", "--name", &name]));
    ok(shortpath(&["lab", "down", "--name", &name]));
    assert!(namespaces_of(&name).is_empty());
    assert!(!std::path::Path::new("/run/shortpath").join(&name).exists());
}

#[test]
fn commands_on_a_missing_lab_leave_no_runtime_directory() {
    root_or_skip!();
    let name = unique_name("lm");
    let o = shortpath(&["mode", "--name", &name, "peer"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no lab named"), "{}", stderr(&o));
    ok(shortpath(&["lab", "down", "--name", &name]));
    assert!(!std::path::Path::new("/run/shortpath").join(&name).exists());
}
