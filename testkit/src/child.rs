//! Running one test again in a child process of its own, for the rare test that needs
//! process-wide state (an environment variable the code under test must not pass on): every
//! other test shares the integration binary's process, where changing the environment is a race.

use std::process::Command;

/// Set in the child to the name of the test it runs.
const CHILD: &str = "COUNTERSIGN_TESTKIT_CHILD";

/// In the test process: runs the test `name` (its path in the test binary, e.g.
/// `execute::command_gets_only_its_own_environment`) again in a child process whose environment
/// also holds `vars`, fails if it fails, and returns `true` (the caller returns). In that child:
/// returns `false`, and the caller runs the test's body.
pub fn rerun_with_env(name: &str, vars: &[(&str, &str)]) -> bool {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        return false;
    }
    let out = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, name)
        .envs(vars.iter().copied())
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed in its child process:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child process did not run {name}:\n{stdout}"
    );
    true
}
