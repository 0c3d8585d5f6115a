//! The SDKs this binary carries (see `host/build.rs`): every language's
//! SDK and the WIT package, written into a new plugin project.

use super::Lang;
use std::path::{Path, PathBuf};

/// (path as in a checkout, contents, executable) of every bundled file.
static FILES: &[(&str, &[u8], bool)] = include!(concat!(env!("OUT_DIR"), "/sdks.rs"));

/// Where a project keeps its bundled SDK.
const FOLDER: &str = "wasmpipe";

/// Writes `lang`'s SDK and the WIT package under `root/wasmpipe/`, laid
/// out as in a checkout; returns the SDK's folder relative to `root`.
pub fn write(root: &Path, lang: Lang) -> std::io::Result<PathBuf> {
    let (sdk, _) = lang.sdk_dir();
    let prefix = format!("{sdk}/");
    for (path, contents, executable) in files(&prefix) {
        let to = root.join(FOLDER).join(path);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&to, contents)?;
        #[cfg(unix)]
        if executable {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))?;
        }
        #[cfg(not(unix))]
        let _ = executable;
    }
    Ok(Path::new(".").join(FOLDER).join(sdk))
}

/// The files of the SDK under `prefix`, and the WIT package.
fn files(prefix: &str) -> impl Iterator<Item = (&'static str, &'static [u8], bool)> + '_ {
    FILES
        .iter()
        .copied()
        .filter(move |(path, ..)| path.starts_with(prefix) || path.starts_with("wit/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_bundles_its_sdk_and_the_wit_package() {
        for (lang, marker) in [
            (Lang::Rust, "sdk/rust/src/lib.rs"),
            (Lang::Python, "sdk/python/wasmpipe/__init__.py"),
            (Lang::Js, "sdk/js/wasmpipe.js"),
            (Lang::Go, "sdk/go/wasmpipe.go"),
            (Lang::C, "sdk/c/wasmpipe.h"),
        ] {
            let prefix = format!("{}/", lang.sdk_dir().0);
            let paths: Vec<&str> = files(&prefix).map(|(p, ..)| p).collect();
            assert!(paths.contains(&marker), "{lang:?}: {paths:?}");
            assert!(paths.contains(&"wit/transform.wit"), "{lang:?}");
            assert!(
                paths
                    .iter()
                    .all(|p| p.starts_with(&prefix) || p.starts_with("wit/")),
                "{lang:?} carries another language's files: {paths:?}"
            );
            assert!(
                !paths
                    .iter()
                    .any(|p| p.contains("node_modules") || p.contains("__pycache__")),
                "{paths:?}"
            );
        }
    }

    fn manifest(path: &str) -> (String, toml::Table) {
        let (_, manifest, _) = FILES.iter().find(|(p, ..)| *p == path).unwrap();
        let text = std::str::from_utf8(manifest).unwrap().to_owned();
        assert!(!text.contains("workspace"), "{text}");
        let parsed = toml::from_str(&text).unwrap();
        (text, parsed)
    }

    #[test]
    fn the_rust_sdk_manifests_stand_alone_outside_the_workspace() {
        let (text, sdk) = manifest("sdk/rust/Cargo.toml");
        assert_eq!(
            sdk["package"]["version"].as_str(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        let wit_bindgen =
            &sdk["target"]["cfg(target_arch = \"wasm32\")"]["dependencies"]["wit-bindgen"];
        assert!(wit_bindgen["version"].as_str().is_some(), "{text}");
        let abi = &sdk["dependencies"]["wasmpipe-abi"];
        assert_eq!(abi["path"].as_str(), Some("abi"), "{text}");
        assert!(
            FILES.iter().any(|(p, ..)| *p == "sdk/rust/abi/src/lib.rs"),
            "the ABI crate travels with the SDK"
        );
        let (text, abi_crate) = manifest("sdk/rust/abi/Cargo.toml");
        assert_eq!(
            abi_crate["package"]["version"].as_str(),
            abi["version"].as_str(),
            "{text}"
        );
        assert!(abi_crate["package"]["license"].as_str().is_some(), "{text}");
    }

    #[test]
    fn the_abi_crate_is_versioned_with_the_wit_package() {
        let (_, abi) = manifest("sdk/rust/abi/Cargo.toml");
        let version = abi["package"]["version"].as_str().unwrap();
        let wit = FILES
            .iter()
            .find(|(p, ..)| *p == "wit/transform.wit")
            .unwrap()
            .1;
        let wit = std::str::from_utf8(wit).unwrap();
        assert!(
            wit.contains(&format!("package {};", wasmpipe_abi::WIT_PACKAGE)),
            "wit/transform.wit declares another package than {}",
            wasmpipe_abi::WIT_PACKAGE
        );
        assert!(wasmpipe_abi::WIT_PACKAGE.ends_with(&format!("@{version}")));
    }

    #[test]
    fn every_sdk_carries_a_version_of_the_wit_package_as_it_is() {
        let contents = |path: &str| FILES.iter().find(|(p, ..)| *p == path).unwrap().1;
        let current = contents("wit/transform.wit");
        let previous = contents("wit/v0.1.0/transform.wit");
        let copies: Vec<&str> = FILES
            .iter()
            .map(|(p, ..)| *p)
            .filter(|p| p.starts_with("sdk/") && p.ends_with("/wit/transform.wit"))
            .collect();
        // Each SDK is published on its own, with its own copy: the current
        // package, or 0.1.0's for an SDK that offers no state yet.
        assert_eq!(copies.len(), 5, "{copies:?}");
        for copy in copies {
            assert!(
                contents(copy) == current || contents(copy) == previous,
                "{copy} differs from wit/transform.wit and wit/v0.1.0/transform.wit: copy one over"
            );
        }
        assert!(
            contents("sdk/rust/wit/transform.wit") == current,
            "the Rust SDK is on the current package"
        );
    }

    #[test]
    fn the_build_scripts_stay_executable() {
        for script in ["sdk/go/build", "sdk/c/build"] {
            let (.., executable) = FILES.iter().find(|(p, ..)| *p == script).unwrap();
            assert!(executable, "{script}");
        }
    }
}
