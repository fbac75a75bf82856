# Shared by scripts/quickstart.sh and scripts/test.sh (sourced, not run): the project's environment, made once.
#
# The virtual environment is .venv in the repository. torch==2.13.0 goes in first: an unpinned torch would
# pull several GB of CUDA packages. A stamp records which extras and which pyproject.toml the environment
# was made for, so a second run skips pip entirely.

step() { printf '\n==> %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

# The CPU build of torch on Linux: the default PyPI build for Linux bundles CUDA (several GB). Where PyTorch's
# CPU index cannot be reached (an offline mirror, a pip configured with local wheels), plain pip is used.
TORCH_CPU_INDEX="${SDEPLOY_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"

install_torch() {
    if [ "$(uname -s)" != Linux ]; then
        python -m pip install --quiet torch==2.13.0
    elif [ -n "$TORCH_CPU_INDEX" ] && reachable "$TORCH_CPU_INDEX"; then
        python -m pip install --quiet torch==2.13.0 --index-url "$TORCH_CPU_INDEX"
    else
        echo "warning: PyTorch's CPU index ${TORCH_CPU_INDEX:-(none)} cannot be reached; installing torch 2.13.0 from" \
             "your pip index instead. Unless it holds a CPU wheel, that is PyPI's CUDA build (several GB);" \
             "stop with Ctrl-C and set SDEPLOY_TORCH_INDEX to a reachable CPU index to avoid it." >&2
        python -m pip install --quiet torch==2.13.0
    fi
}

reachable() {
    python - "$1" <<'PY'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5).close()
except Exception:
    sys.exit(1)
PY
}

# ensure_venv EXTRAS: .venv with torch and the package installed editable with these extras, then activated.
ensure_venv() {
    local extras="$1" stamp=".venv/.sdeploy-setup"
    local want
    want="$extras $(sha256sum pyproject.toml | cut -c1-16)"
    # activate, not python: a venv made without ensurepip (Debian's python3-venv missing) has python only.
    if [ ! -f .venv/bin/activate ]; then
        step "creating the virtual environment .venv"
        if ! python3 -m venv --clear .venv; then
            rm -rf .venv
            echo "Error: python3 -m venv failed; install Python's venv module (Debian/Ubuntu: apt-get install python3-venv) and run this again" >&2
            exit 1
        fi
    fi
    # shellcheck disable=SC1091
    . .venv/bin/activate
    if [ -f "$stamp" ] && grep -qxF "$want" "$stamp"; then
        step "environment is up to date (.venv, extras: $extras)"
        return
    fi
    step "installing torch 2.13.0 first, then shufflenet-deploy[$extras] (a few minutes the first time)"
    python -m pip install --quiet --upgrade pip
    install_torch
    python -m pip install --quiet -e ".[$extras]"
    printf '%s\n' "$want" > "$stamp"
}
