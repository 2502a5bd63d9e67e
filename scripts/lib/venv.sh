# Sourced by scripts/*: make .venv with Python >= 3.11 and install the project with the named
# extras (comma-separated; empty: the embedded default only), again only when pyproject.toml
# changed since the last install.
ensure_venv() {
  local extras="$1" python="${PYTHON:-python3}"
  if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; install Python 3.11 or newer (apt-get install python3 python3-venv)" >&2
    exit 1
  fi
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: Python 3.11 or newer is needed; $python is $("$python" --version 2>&1)" >&2
    exit 1
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  local stamp=".venv/.installed-${extras:-default}" want target="."
  [ -z "$extras" ] || target=".[$extras]"
  want="$(cat pyproject.toml | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== installing the project into .venv (${extras:-the embedded default})"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e "$target"
    echo "$want" > "$stamp"
  fi
}

# The extras that the backends selected by BALANCE_EVENT_STORE and BALANCE_READ_MODEL need
# (comma-separated, empty for the embedded default).
backend_extras() {
  local extras=() name
  for name in "${BALANCE_EVENT_STORE:-}" "${BALANCE_READ_MODEL:-}"; do
    case "$name" in
      kafka|mongo) [[ " ${extras[*]} " == *" $name "* ]] || extras+=("$name") ;;
    esac
  done
  local IFS=,
  echo "${extras[*]}"
}
