# Shared steps of scripts/install-edge and scripts/install-central (sourced, not run).
# Every step is idempotent: it compares what is there with what should be and changes only the difference.

ROOT_DIR="/"
PREFIX_OPT="opt/xueliang"
PREFIX_ETC="etc/xueliang"
PREFIX_VAR="var/lib/xueliang"
SERVICE_USER="xueliang"
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-python3}"

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

install_venv() {
  local venv app want have
  venv="$(p "$PREFIX_OPT/venv")"
  app="$(p "$PREFIX_OPT/app")"
  want="$(cat "$app/requirements.lock" "$app/pyproject.toml" "$app/.source-sha256" | sha256sum | cut -c1-64)"
  have="$(cat "$venv/.xueliang-sha256" 2>/dev/null || true)"
  if [ "$want" = "$have" ]; then say "venv: up to date ($venv)"; return; fi
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  # (grep drops pip's notes about find-links folders that some machines configure but lack)
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$app/requirements.lock" \
    2> >(grep -v "^WARNING: Location" >&2)
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$app"
  printf '%s\n' "$want" > "$venv/.xueliang-sha256"
  say "venv: built ($venv)"
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
