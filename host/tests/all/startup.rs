//! What the shipped Deployment needs to start: the compile cache on the
//! kubelet's `emptyDir`, used by the non-root user the image runs as.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use wasmpipe_test_guests::FLAT_IDENTITY;

/// The image's user and the `fsGroup` of `k8s/base`.
const UID: u32 = 65532;

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The binary and a plugin, copied where another user can run and read
/// them, and an `emptyDir` as the kubelet makes it: root's, group the
/// pod's `fsGroup`, mode 2777.
struct Pod {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    plugin: PathBuf,
    cache: PathBuf,
}

fn pod() -> Pod {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("wasmpipe");
    std::fs::copy(env!("CARGO_BIN_EXE_wasmpipe"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = dir.path().join("identity.wasm");
    std::fs::copy(FLAT_IDENTITY, &plugin).unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::os::unix::fs::chown(&cache, Some(0), Some(UID)).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o2777)).unwrap();
    Pod {
        _dir: dir,
        bin,
        plugin,
        cache,
    }
}

/// `wasmpipe --cache-dir <cache> plugin check <plugin>` as uid 65532.
fn check_as_user(pod: &Pod) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            &UID.to_string(),
            "--regid",
            &UID.to_string(),
            "--clear-groups",
        ])
        .arg(&pod.bin)
        .arg("--cache-dir")
        .arg(&pod.cache)
        .args(["plugin", "check"])
        .arg(&pod.plugin)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn the_compile_cache_works_on_a_kubelet_empty_dir_as_a_non_root_user() {
    if !is_root() {
        eprintln!("skipped: reproducing the kubelet's emptyDir needs root (chown)");
        return;
    }
    let pod = pod();
    for run in ["compiles", "loads from the cache"] {
        let out = check_as_user(&pod);
        assert!(
            out.status.success(),
            "{run}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains("loads    yes"));
    }
    let private = pod.cache.join(format!("wasmpipe-{UID}"));
    let meta = std::fs::symlink_metadata(&private).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.uid(), UID);
    assert_eq!(meta.mode() & 0o777, 0o700);
    let compiled = entries(&private);
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    assert_eq!(std::fs::metadata(&compiled[0]).unwrap().uid(), UID);
    // The emptyDir itself is left as the kubelet made it.
    let meta = std::fs::metadata(&pod.cache).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o2777));
}

#[test]
fn a_cache_directory_another_user_planted_is_refused_by_name() {
    if !is_root() {
        eprintln!("skipped: planting another user's directory needs root (chown)");
        return;
    }
    let pod = pod();
    let private = pod.cache.join(format!("wasmpipe-{UID}"));
    // Another user got there first: a directory of theirs, then a link.
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = check_as_user(&pod);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "compile cache {} is not a directory of this process's user (uid {UID}; it is a directory of uid 0)",
            private.display()
        )),
        "{stderr}"
    );
    std::fs::remove_dir(&private).unwrap();
    std::os::unix::fs::symlink("/tmp", &private).unwrap();
    let out = check_as_user(&pod);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("it is a symbolic link of uid 0"),
        "{}",
        text(&out.stderr)
    );
}
