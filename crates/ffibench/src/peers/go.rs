//! The Go peers (`bench/peers/go/<dir>`), built offline with the
//! machine's Go into `target/peers/`.

use super::{Peer, repo_root};
use std::process::Command;

/// Builds the Go peer with the machine's Go (offline: it has no imports
/// beyond the standard library).
pub(crate) fn go_peer(scale: f64) -> Peer {
    go_build("runtime", "go-runtime", &[], scale.to_string())
}

/// The cgo peer (`bench/peers/go/cgo`, linked against `libplusone.so`),
/// run as `go-cgo <mode> <n>`.
pub(crate) fn cgo_peer(mode: &str, n: usize) -> Peer {
    let libdir = env!("FFIBENCH_LIBDIR");
    let cgo_env = [("CGO_LDFLAGS", format!("-L{libdir} -Wl,-rpath,{libdir}")), ("CGO_ENABLED", "1".to_string())];
    let mut go = go_build("cgo", "go-cgo", &cgo_env, mode.into());
    if let Ok(c) = go.cmd.as_mut() {
        c.arg(n.to_string());
    }
    go
}

/// Builds `bench/peers/go/<dir>` into `target/peers/<bin>`; the run gets `arg`.
pub(crate) fn go_build(dir: &str, bin: &str, env: &[(&str, String)], arg: String) -> Peer {
    let version = Command::new("go").arg("version").output().ok();
    let Some(version) = version.filter(|o| o.status.success()) else {
        return Peer {
            name: "Go".into(),
            cmd: Err("not installed — apt-get install golang-go".into()),
            counted: false,
        };
    };
    let v = String::from_utf8_lossy(&version.stdout);
    let name = v.split_whitespace().nth(2).unwrap_or("go").replacen("go", "Go ", 1);
    let src = repo_root().join("bench/peers/go").join(dir);
    let out = repo_root().join("target/peers").join(bin);
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output();
    match built {
        Ok(o) if o.status.success() => {
            let mut c = Command::new(out);
            c.arg(arg);
            Peer { name, cmd: Ok(c), counted: false }
        }
        Ok(o) => Peer {
            name,
            cmd: Err(format!("build failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
            counted: false,
        },
        Err(e) => Peer { name, cmd: Err(format!("build failed: {e}")), counted: false },
    }
}
