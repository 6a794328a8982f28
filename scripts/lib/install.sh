# Shared steps of scripts/install-edge and scripts/install-central (sourced, not run).
# Every step is idempotent: it compares what is there with what should be and changes only the difference.

ROOT_DIR="/"
PREFIX_OPT="opt/xueliang"
PREFIX_ETC="etc/xueliang"
PREFIX_VAR="var/lib/xueliang"
SERVICE_USER="xueliang"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-}"
# The units run as $SERVICE_USER with ProtectHome=yes: these folders do not exist for the service, so
# its venv's interpreter must not live there (pyenv, conda, a user's own build).
HIDDEN_DIRS="${HIDDEN_DIRS:-/root /home /run/user}"

say() { printf '  %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
p() { printf '%s/%s' "${ROOT_DIR%/}" "$1"; }     # path under the install root
is_real_root() { [ "$ROOT_DIR" = "/" ]; }

ensure_user() {
  if ! is_real_root; then say "user: skipped (test root $ROOT_DIR)"; return; fi
  if id "$SERVICE_USER" >/dev/null 2>&1; then say "user: $SERVICE_USER exists"; return; fi
  [ "$(id -u)" -eq 0 ] || die "creating the service user needs root"
  useradd --system --home-dir "/$PREFIX_VAR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
  say "user: created $SERVICE_USER"
}

ensure_dirs() {
  local d
  for d in "$PREFIX_OPT" "$PREFIX_ETC" "$@"; do
    install -d -m 0755 "$(p "$d")"
  done
}

own_data() {
  # Data belongs to the service user; config stays root-owned and readable by the service group.
  is_real_root || return 0
  chown -R "$SERVICE_USER:$SERVICE_USER" "$(p "$PREFIX_VAR")"
  chgrp -R "$SERVICE_USER" "$(p "$PREFIX_ETC")"
  chmod 0750 "$(p "$PREFIX_ETC")"
}

# The source tree: tracked files when this is a git checkout, else the folder minus build outputs.
source_files() {
  if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$SRC" ls-files -z --cached --others --exclude-standard
  else
    (cd "$SRC" && find . -type f ! -path './.venv/*' ! -path './var/*' ! -path './.git/*' -print0 | sed -z 's#^\./##')
  fi
}

install_app() {
  local app stage want have
  app="$(p "$PREFIX_OPT/app")"
  stage="$(mktemp -d)"
  (cd "$SRC" && source_files | LC_ALL=C sort -z | tar --null --no-recursion -cf - -T -) | tar -xf - -C "$stage"
  want="$(cd "$stage" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)"
  have="$(cat "$app/.source-sha256" 2>/dev/null || true)"
  if [ "$want" = "$have" ]; then
    say "app: up to date ($app)"
    rm -rf "$stage"
    return
  fi
  rm -rf "$app.new"
  mv "$stage" "$app.new"
  chmod -R u=rwX,go=rX "$app.new"
  printf '%s\n' "$want" > "$app.new/.source-sha256"
  rm -rf "$app"
  mv "$app.new" "$app"
  say "app: installed ($app)"
}

# pick_python: $PYTHON if given; on a real install the system's python3 when it is >= 3.11 (the one
# the service can run), else python3 from PATH. Exported for install-os-deps (python3-venv).
pick_python() {
  if [ -z "$PYTHON" ]; then
    if is_real_root && [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PYTHON=/usr/bin/python3
    else
      PYTHON=python3
    fi
  fi
  export PYTHON
}

# check_python: >= 3.11, and on a real install one the service user can see (not under HIDDEN_DIRS).
check_python() {
  local home dir
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")' || exit 1
  is_real_root || return 0
  home="$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.base_prefix))')"
  for dir in $HIDDEN_DIRS; do
    case "$home/" in
      "${dir%/}/"*) die "$PYTHON is installed in $home, which the service (User=$SERVICE_USER, ProtectHome=yes) cannot see. Install a system Python >= 3.11 (Debian 12: apt install python3 python3-venv; Ubuntu 24.04 has it) or name one outside $HIDDEN_DIRS with PYTHON=/usr/bin/python3.X" ;;
    esac
  done
}

install_venv() {
  local venv app want have
  venv="$(p "$PREFIX_OPT/venv")"
  app="$(p "$PREFIX_OPT/app")"
  pick_python
  check_python
  # The interpreter is part of the venv: another one (a Python upgrade, PYTHON=...) rebuilds it.
  want="$( (cat "$app/requirements.lock" "$app/pyproject.toml" "$app/.source-sha256"; "$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable), sys.version)') | sha256sum | cut -c1-64)"
  have="$(cat "$venv/.xueliang-sha256" 2>/dev/null || true)"
  if [ "$want" = "$have" ]; then say "venv: up to date ($venv)"; return; fi
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  # (grep drops pip's notes about find-links folders that some machines configure but lack)
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$app/requirements.lock" \
    2> >(grep -v "^WARNING: Location" >&2)
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$app"
  if is_real_root; then  # what systemd will do: run the venv's Python as the service user
    runuser -u "$SERVICE_USER" -- "$venv/bin/python" -c 'import edge, central' \
      || die "the service user $SERVICE_USER cannot run $venv/bin/python (see above); fix its permissions or pick another PYTHON"
  fi
  printf '%s\n' "$want" > "$venv/.xueliang-sha256"
  say "venv: built ($venv, $("$venv/bin/python" -c 'import sys; print("Python", sys.version.split()[0])'))"
}

# install_file SRC DEST MODE: copy when different (never touches an identical file).
install_file() {
  if [ -f "$2" ] && cmp -s "$1" "$2"; then return 0; fi
  install -D -m "$3" "$1" "$2"
  say "file: $2"
}

# install_config SRC DEST: a config the operator edits is written only when absent.
install_config() {
  if [ -f "$2" ]; then say "config: kept $2"; return; fi
  install -D -m 0640 "$1" "$2"
  say "config: $2 (edit it, then restart the service)"
}

install_unit() {
  local name="$1"
  install_file "$SRC/deploy/systemd/$name" "$(p "etc/systemd/system/$name")" 0644
  if is_real_root && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable "$name" >/dev/null 2>&1
    say "systemd: $name enabled (start it with: systemctl start $name)"
  else
    say "systemd: $name installed (not enabled: no running systemd for this root)"
  fi
}

remove_install() {
  local name="$1" purge="$2"
  if is_real_root && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now "$name" >/dev/null 2>&1 || true
  fi
  rm -f "$(p "etc/systemd/system/$name")"
  rm -rf "$(p "$PREFIX_OPT")"
  if [ "$purge" = 1 ]; then
    rm -rf "$(p "$PREFIX_ETC")" "$(p "$PREFIX_VAR")"
    say "removed program, config and data"
  else
    say "removed program; kept config $(p "$PREFIX_ETC") and data $(p "$PREFIX_VAR") (use --purge to delete them)"
  fi
}
