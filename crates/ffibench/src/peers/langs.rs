//! The foreign-call peers in other languages (`bench/peers/<language>/`),
//! built on the spot from their sources with the machine's toolchains. A
//! toolchain that is missing makes a peer that reports how to install it.

use super::{Peer, repo_root};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where `libplusone.so` (and the C peer) were built.
pub fn libdir() -> PathBuf {
    PathBuf::from(env!("FFIBENCH_LIBDIR"))
}

fn missing(name: &str, install: &str) -> Peer {
    Peer { name: name.into(), cmd: Err(format!("not installed — {install}")), counted: false }
}

fn failed(name: &str, what: &str, out: std::io::Result<std::process::Output>) -> Option<Peer> {
    match out {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(Peer {
            name: name.into(),
            cmd: Err(format!("{what} failed: {}", String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or(""))),
            counted: false,
        }),
        Err(e) => Some(Peer { name: name.into(), cmd: Err(format!("{what} failed: {e}")), counted: false }),
    }
}

/// Whether `tool` is on PATH and runs (`tool flag` exits successfully).
fn have(tool: &str, flag: &str) -> bool {
    Command::new(tool).arg(flag).output().is_ok_and(|o| o.status.success())
}

fn out_dir(name: &str) -> PathBuf {
    let d = repo_root().join("target/peers").join(name);
    let _ = std::fs::create_dir_all(&d);
    d
}

/// C: the talk's baseline, built by build.rs with the system C compiler.
pub fn c(count: usize) -> Peer {
    let mut c = Command::new(env!("FFIBENCH_C_BENCH"));
    c.arg(count.to_string());
    Peer { name: "C".into(), cmd: Ok(c), counted: true }
}

/// Python: ctypes and (if installed) cffi.
pub fn python(count: usize) -> Peer {
    if !have("python3", "--version") {
        return missing("Python", "apt-get install python3 python3-cffi");
    }
    let v = Command::new("python3")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let mut c = Command::new("python3");
    c.arg(repo_root().join("bench/peers/python/bench.py")).arg(libdir().join("libplusone.so")).arg(count.to_string());
    Peer { name: v.unwrap_or_else(|_| "Python".into()), cmd: Ok(c), counted: true }
}

/// The JDK home of the `javac` on PATH, or of one under /usr/lib/jvm with
/// at least `min` as its feature version.
fn jdk(min: u32) -> Option<PathBuf> {
    let mut homes: Vec<PathBuf> = Vec::new();
    if let Ok(p) = Command::new("sh").args(["-c", "readlink -f \"$(command -v javac)\""]).output() {
        let p = PathBuf::from(String::from_utf8_lossy(&p.stdout).trim());
        if let Some(home) = p.parent().and_then(Path::parent) {
            homes.push(home.to_path_buf());
        }
    }
    if let Ok(rd) = std::fs::read_dir("/usr/lib/jvm") {
        let mut more: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
        more.sort();
        homes.extend(more);
    }
    homes.into_iter().find(|h| h.join("bin/javac").exists() && jdk_version(h).is_some_and(|v| v >= min))
}

fn jdk_version(home: &Path) -> Option<u32> {
    let release = std::fs::read_to_string(home.join("release")).ok()?;
    let line = release.lines().find(|l| l.starts_with("JAVA_VERSION="))?;
    let v = line.trim_start_matches("JAVA_VERSION=").trim_matches('"');
    let major = v.split('.').next()?;
    major.parse().ok()
}

/// Java JNI: javac + the JNI glue compiled with the system C compiler.
pub fn java_jni(count: usize) -> Peer {
    let Some(home) = jdk(8) else { return missing("Java JNI", "apt-get install default-jdk") };
    let name = format!("Java {} JNI", jdk_version(&home).unwrap_or(0));
    let dir = out_dir("java");
    let src = repo_root().join("bench/peers/java");
    let javac = Command::new(home.join("bin/javac")).arg("-d").arg(&dir).arg(src.join("PlusOne.java")).output();
    if let Some(p) = failed(&name, "javac", javac) {
        return p;
    }
    let lib = libdir();
    let cc = Command::new(env!("FFIBENCH_CC"))
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(dir.join("libplusone_jni.so"))
        .arg(src.join("plusone_jni.c"))
        .arg(format!("-I{}", home.join("include").display()))
        .arg(format!("-I{}", home.join("include/linux").display()))
        .arg(format!("-L{}", lib.display()))
        .args(["-lplusone", &format!("-Wl,-rpath,{}", lib.display())])
        .output();
    if let Some(p) = failed(&name, "compiling the JNI glue", cc) {
        return p;
    }
    let mut c = Command::new(home.join("bin/java"));
    c.arg(format!("-Djava.library.path={}", dir.display())).arg("-cp").arg(&dir).arg("PlusOne").arg(count.to_string());
    Peer { name, cmd: Ok(c), counted: true }
}

/// Java FFM (Panama), where a JDK >= 22 is installed.
pub fn java_ffm(count: usize) -> Peer {
    let Some(home) = jdk(22) else {
        return missing("Java FFM", "install a JDK >= 22 (e.g. apt-get install openjdk-25-jdk)");
    };
    let name = format!("Java {} FFM", jdk_version(&home).unwrap_or(0));
    let dir = out_dir("java-ffm");
    let javac = Command::new(home.join("bin/javac"))
        .arg("-d")
        .arg(&dir)
        .arg(repo_root().join("bench/peers/java/PlusOneFFM.java"))
        .output();
    if let Some(p) = failed(&name, "javac", javac) {
        return p;
    }
    let mut c = Command::new(home.join("bin/java"));
    c.arg("--enable-native-access=ALL-UNNAMED")
        .arg("-cp")
        .arg(&dir)
        .arg("PlusOneFFM")
        .arg(libdir().join("libplusone.so"))
        .arg(count.to_string());
    Peer { name, cmd: Ok(c), counted: true }
}

/// Node.js: a Node-API addon compiled with the system C compiler.
pub fn node(count: usize) -> Peer {
    if !have("node", "--version") {
        return missing("Node.js", "apt-get install nodejs libnode-dev");
    }
    let v =
        Command::new("node").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let name = format!("Node.js {}", v.unwrap_or_default());
    let inc = ["/usr/include/node", "/usr/local/include/node"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("node_api.h").exists());
    let Some(inc) = inc else { return missing(&name, "apt-get install libnode-dev (Node-API headers)") };
    let dir = out_dir("node");
    let lib = libdir();
    let addon = dir.join("plusone.node");
    let cc = Command::new(env!("FFIBENCH_CC"))
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&addon)
        .arg(repo_root().join("bench/peers/node/addon.c"))
        .arg(format!("-I{}", inc.display()))
        .arg(format!("-L{}", lib.display()))
        .args(["-lplusone", &format!("-Wl,-rpath,{}", lib.display())])
        .output();
    if let Some(p) = failed(&name, "compiling the Node-API addon", cc) {
        return p;
    }
    let mut c = Command::new("node");
    c.arg(repo_root().join("bench/peers/node/bench.js")).arg(&addon).arg(count.to_string());
    Peer { name, cmd: Ok(c), counted: true }
}

/// LuaJIT's FFI.
pub fn luajit(count: usize) -> Peer {
    if !have("luajit", "-v") {
        return missing("LuaJIT", "apt-get install luajit");
    }
    let mut c = Command::new("luajit");
    c.arg(repo_root().join("bench/peers/luajit/bench.lua")).arg(libdir().join("libplusone.so")).arg(count.to_string());
    Peer { name: "LuaJIT".into(), cmd: Ok(c), counted: true }
}
