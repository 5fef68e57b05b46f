#!/usr/bin/env bash
# Installs every peer's toolchain for ffibench from the ordinary registries
# (Debian packages, and pip for cffi when the Debian package is missing).
# ffibench works without any of them: a missing peer prints
# "not installed — <how to install>". Run as root (or with sudo).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

$SUDO apt-get update
# C compiler (the baseline and every glue library), Go (cgo), LuaJIT,
# a JDK (JNI; Panama/FFM needs a JDK >= 22, used when one is installed),
# Node.js with its Node-API headers, Python with cffi.
$SUDO apt-get install -y --no-install-recommends \
    build-essential pkg-config golang-go luajit default-jdk-headless \
    nodejs libnode-dev python3 python3-cffi \
    wrk libsqlite3-dev

python3 -c 'import cffi' 2>/dev/null || python3 -m pip install --user cffi

# The server table's Go peer uses github.com/mattn/go-sqlite3: fetch it into
# the module cache now; ffibench builds offline.
for d in server sqlite; do (cd "$(dirname "$0")/go/$d" && go mod download); done

echo "peers installed; run: cargo run --release"
