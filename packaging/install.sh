#!/usr/bin/env bash
# Install or upgrade helpdesk-escalations as a systemd service. Idempotent: run it again for
# an upgrade, with the new wheel or source tree; what an admin owns (mappings, env, token) is
# never overwritten. `packaging/install.sh --help` says what it does, step by step.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: packaging/install.sh [options] [SOURCE]

Installs helpdesk-escalations from SOURCE (a wheel file, or a source tree holding
pyproject.toml; default: the source tree this script is in) and runs it as the
systemd service helpdesk-escalations. Run as root, from a checkout or release tree
(it uses packaging/ and settings.example.env next to it). Safe to run again: that is
how to upgrade.

Steps:
  1. /opt/helpdesk-escalations/venv: created if missing; SOURCE installed into it
     with -c packaging/constraints.txt (the tested versions of the dependencies).
  2. /etc/helpdesk-escalations (root, 0755).
  3. /etc/helpdesk-escalations/mappings: the package's shipped defaults, copied only
     if the directory does not exist. Never overwritten: on an upgrade the script
     prints where the new defaults are, to diff against yours.
  4. /etc/helpdesk-escalations/env (0600): settings.example.env, only if absent.
  5. /etc/helpdesk-escalations/token (root, 0600): only if absent, read from
     --token-file or standard input (asked for on a terminal).
  6. escalations --env-file /etc/helpdesk-escalations/env check --live --allow-unverified
     (after `escalations provision`, docs/admins.md), with the token
     as the systemd credential helpdesk-token, the unit's WatchdogSec= and its
     Environment= settings, which the env file overrides (as under systemd). If it fails
     the script stops here and the service is not enabled (or restarted).
  7. /etc/systemd/system/helpdesk-escalations.service; systemctl daemon-reload,
     enable --now (restart when it was already running).

Options:
  --token-file FILE  read the helpdesk API token from FILE (step 5)
  --python PYTHON    the Python (3.11 or later) for a new venv (default: python3)
  --root DIR         install under DIR instead of / (for tests and packaging; implies
                     --no-systemctl, and root is not required)
  --no-systemctl     skip step 7's systemctl commands, with a notice (also skipped,
                     with a notice, when systemd is not running as PID 1)
  --dry-run          print every step and command, change nothing, read no token
  -h, --help         this text

Exit 0 when installed (and started), the check's exit code (78: fix the env file, token
or mappings; 1: anything else) when step 6 fails, 2 on a usage problem.
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 2
}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
source_path=""
token_file=""
python=python3
root=""
dry_run=0
no_systemctl=0

while [ $# -gt 0 ]; do
  case "$1" in
    --token-file) [ $# -ge 2 ] || die "--token-file needs a FILE"; token_file=$2; shift 2 ;;
    --token-file=*) token_file=${1#*=}; shift ;;
    --python) [ $# -ge 2 ] || die "--python needs a PYTHON"; python=$2; shift 2 ;;
    --python=*) python=${1#*=}; shift ;;
    --root) [ $# -ge 2 ] || die "--root needs a DIR"; root=$2; shift 2 ;;
    --root=*) root=${1#*=}; shift ;;
    --no-systemctl) no_systemctl=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) [ -z "$source_path" ] || die "one SOURCE only (got $source_path and $1)"; source_path=$1; shift ;;
  esac
done

if [ -n "$root" ]; then
  [ -d "$root" ] || die "--root $root: not a directory"
  root=$(cd "$root" && pwd)
  [ "$root" != / ] || root=""
fi
source_path=${source_path:-$repo}
[ -e "$source_path" ] || die "$source_path: no such wheel or source tree"
source_path=$(cd "$(dirname "$source_path")" && pwd)/$(basename "$source_path")
if [ -d "$source_path" ]; then
  [ -f "$source_path/pyproject.toml" ] || die "$source_path: not a source tree (no pyproject.toml)"
else
  case "$source_path" in
    *.whl) ;;
    *) die "$source_path: neither a wheel (*.whl) nor a source tree" ;;
  esac
fi

constraints="$here/constraints.txt"
unit_file="$here/helpdesk-escalations.service"
example_env="$repo/settings.example.env"
for shipped in "$constraints" "$unit_file" "$example_env"; do
  [ -f "$shipped" ] || die "$shipped is missing: run the script from a checkout or release tree"
done
if [ -n "$token_file" ] && [ ! -f "$token_file" ]; then
  die "--token-file $token_file: no such file"
fi

# Everything written must be readable by the service's dynamic user (the venv, the
# mappings, the unit); the env file and the token are made 0600 explicitly.
umask 0022

if [ "$(id -u)" -ne 0 ] && [ -z "$root" ] && [ "$dry_run" -eq 0 ]; then
  die "run as root (or with --root DIR / --dry-run to try it out)"
fi
as_root=0
[ "$(id -u)" -ne 0 ] || as_root=1
owner=()
[ "$as_root" -eq 0 ] || owner=(-o root -g root)

opt="$root/opt/helpdesk-escalations"
venv="$opt/venv"
etc="$root/etc/helpdesk-escalations"
mappings="$etc/mappings"
env_file="$etc/env"
token="$etc/token"
unit_dir="$root/etc/systemd/system"
unit_name=helpdesk-escalations.service

step_number=0
step() {
  step_number=$((step_number + 1))
  echo "==> $step_number. $*"
}
note() {
  echo "    $*"
}
# Print a command, then run it unless this is a dry run.
run() {
  local quoted
  quoted=$(printf '%q ' "$@")
  echo "    + ${quoted% }"
  [ "$dry_run" -eq 1 ] || "$@"
}

[ "$dry_run" -eq 0 ] || echo "install.sh: dry run: nothing is changed"

# -- 1. the venv and the package --------------------------------------------------------
step "venv $venv and the package from $source_path"
if [ -x "$venv/bin/python" ]; then
  note "the venv exists: reused"
else
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
    die "$python: Python 3.11 or later is needed (pass --python)"
  run install -d -m 0755 "$opt"
  run "$python" -m venv "$venv"
fi
# The package itself first, replaced even at the same version (pip would keep a build it
# already has of the same version number), then what it needs, at the tested versions.
run "$venv/bin/python" -I -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$source_path"
run "$venv/bin/python" -I -m pip install --quiet --disable-pip-version-check -c "$constraints" "$source_path"
if [ "$dry_run" -eq 0 ]; then
  note "installed: $("$venv/bin/escalations" --version)"
fi

# -- 2. the configuration directory ----------------------------------------------------
step "configuration directory $etc (root, 0755)"
run install -d -m 0755 "${owner[@]}" "$etc"

# -- 3. the mappings: the admin's, never overwritten ------------------------------------
shipped_mappings=""
if [ -x "$venv/bin/python" ]; then
  # -I: the installed package, not one in the current directory.
  shipped_mappings=$("$venv/bin/python" -I -c \
    'import helpdesk_escalations; from escalations.settings import shipped_mappings_dir; print(shipped_mappings_dir())' \
    2>/dev/null || true)
fi
if [ -n "$shipped_mappings" ]; then
  :
elif [ -d "$source_path" ]; then
  shipped_mappings="$source_path/mappings"
else
  shipped_mappings="(the wheel's mappings/, once installed)"
fi
step "mappings $mappings"
if [ -e "$mappings" ]; then
  note "kept as they are (an install never overwrites them)."
  if [ -d "$shipped_mappings" ] && ! diff -r -q -x __pycache__ "$shipped_mappings" "$mappings" >/dev/null 2>&1; then
    note "They differ from this version's defaults, which are in $shipped_mappings:"
    note "  diff -ru $shipped_mappings $mappings"
    note "Merge what you want from them, then run install.sh again: it checks them before the restart."
  else
    note "This version's defaults, the same as yours, are in $shipped_mappings."
  fi
else
  note "copied from this version's defaults in $shipped_mappings"
  staging="$mappings.installing"
  run rm -rf "$staging"
  run install -d -m 0755 "${owner[@]}" "$staging"
  if [ "$dry_run" -eq 1 ]; then
    note "+ install -m 0644 $shipped_mappings/* $staging/"
  else
    for file in "$shipped_mappings"/*; do
      [ -f "$file" ] || continue
      note "+ install -m 0644 $file $staging/"
      install -m 0644 "${owner[@]}" "$file" "$staging/"
    done
  fi
  run mv "$staging" "$mappings"
fi

# -- 4. the env file ---------------------------------------------------------------------
step "settings $env_file (0600)"
if [ -e "$env_file" ]; then
  note "kept as it is."
else
  run install -m 0600 "${owner[@]}" "$example_env" "$env_file"
  note "set ESCALATIONS_HELPDESK_URL in it before the check in step 6 can pass."
fi

# -- 5. the token ------------------------------------------------------------------------
step "token $token (root, 0600)"
if [ -e "$token" ]; then
  note "kept as it is (to rotate it, replace the file and restart the service)."
  [ -z "$token_file" ] || note "--token-file $token_file ignored: a token is already installed."
elif [ "$dry_run" -eq 1 ]; then
  note "would be read from ${token_file:-standard input} and written with mode 0600"
else
  if [ -n "$token_file" ]; then
    value=$(head -n 1 "$token_file")
  elif [ -t 0 ]; then
    read -r -s -p "Helpdesk API token of the escalation bot (not shown): " value
    echo
  else
    value=$(head -n 1 || true)
  fi
  value=$(printf '%s' "$value" | tr -d '[:space:]')
  [ -n "$value" ] || die "no token given (--token-file FILE, or the token on standard input)"
  (umask 0077 && printf '%s\n' "$value" >"$token.installing")
  unset value
  [ "$as_root" -eq 0 ] || chown root:root "$token.installing"
  chmod 0600 "$token.installing"
  mv "$token.installing" "$token"
  note "written."
fi

# -- 6. the live check, as the service would see its settings ----------------------------
# The environment systemd gives the service, in systemd's order of precedence (systemd.exec(5),
# "Environment Variables in Spawned Processes": a later source wins): the variables the
# service manager sets itself ($CREDENTIALS_DIRECTORY, $STATE_DIRECTORY, $WATCHDOG_USEC), then
# the unit's Environment= lines, then EnvironmentFile= ("Settings from these files override
# settings made with Environment="). `escalations --env-file F` lets the process environment
# win over F, so the check gets no ESCALATIONS_* variable in its environment; it reads one
# file made of the unit's Environment= lines followed by the admin's env file (in an env file
# the later line wins): the admin's settings win over the unit's, as under systemd. Nothing is
# inherited from this shell (env -i).
step "escalations --env-file $env_file check --live --allow-unverified"
# --allow-unverified: the worker's agent token cannot read every admin list (overviews, the
# attributes' options); check lists what it could not verify, and a real problem still fails.
# (Provision first, with the admin token: docs/admins.md.)
check=("$venv/bin/escalations" --env-file "$env_file" check --live --allow-unverified)
# WatchdogSec= as systemd passes it ($WATCHDOG_USEC): check refuses HTTP timeouts that do not
# fit in half of it, as run does.
watchdog=$(sed -n 's/^WatchdogSec=\([0-9][0-9]*\)s\{0,1\}$/\1/p' "$unit_file" | tail -n 1)
watchdog_usec=""
[ -z "$watchdog" ] || watchdog_usec=$((watchdog * 1000000))
if [ "$dry_run" -eq 1 ]; then
  note "+ ${check[*]}"
  note "  (environment: CREDENTIALS_DIRECTORY=<temporary copy of the token as helpdesk-token>,"
  note "   STATE_DIRECTORY=<temporary directory>, WATCHDOG_USEC=${watchdog_usec:-unset};"
  note "   settings: the unit's Environment= lines, then $env_file, which wins)"
else
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  install -d -m 0700 "$scratch/credentials"
  install -m 0600 "$token" "$scratch/credentials/helpdesk-token"
  # The unit's Environment= values (its /etc/helpdesk-escalations is $etc under --root),
  # then the admin's file.
  sed -n 's/^Environment=//p' "$unit_file" | sed "s#/etc/helpdesk-escalations#$etc#g" >"$scratch/env"
  offset=$(wc -l <"$scratch/env")
  [ ! -f "$env_file" ] || cat "$env_file" >>"$scratch/env"
  check[2]="$scratch/env"
  # The state directory is a scratch one ($STATE_DIRECTORY, as systemd sets it, so an
  # ESCALATIONS_STATE_DIR in the env file still wins): the service's own
  # (/var/lib/private/helpdesk-escalations) is systemd's to create, and a running worker
  # holds its lock during an upgrade. check creates nothing in it.
  set +e
  env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME="$scratch" \
    CREDENTIALS_DIRECTORY="$scratch/credentials" \
    STATE_DIRECTORY="$scratch/state" \
    ${watchdog_usec:+WATCHDOG_USEC="$watchdog_usec"} \
    "${check[@]}" 2>&1 | awk -v made="$scratch/env" -v file="$env_file" -v offset="$offset" '
      # the check names the file it read: name the admin'"'"'s, and its own line numbers
      {
        out = ""
        while ((at = index($0, made)) > 0) {
          out = out substr($0, 1, at - 1) file
          $0 = substr($0, at + length(made))
          if (match($0, /^:[0-9]+/)) {
            out = out ":" (substr($0, 2, RLENGTH - 1) - offset)
            $0 = substr($0, RLENGTH + 1)
          }
        }
        print "    " out $0
      }'

  status=${PIPESTATUS[0]}
  set -e
  rm -rf "$scratch"
  trap - EXIT
  if [ "$status" -ne 0 ]; then
    echo "install.sh: the check failed (exit $status): the service was not enabled or restarted." >&2
    echo "install.sh: fix what it names ($env_file, $token or $mappings), then run install.sh again." >&2
    exit "$status"
  fi
fi

# -- 7. the unit and systemd -------------------------------------------------------------
step "unit $unit_dir/$unit_name"
run install -d -m 0755 "$unit_dir"
if [ -f "$unit_dir/$unit_name" ] && cmp -s "$unit_file" "$unit_dir/$unit_name"; then
  note "unchanged."
else
  run install -m 0644 "$unit_file" "$unit_dir/$unit_name"
fi
skip=""
if [ "$no_systemctl" -eq 1 ]; then
  skip="--no-systemctl"
elif [ -n "$root" ]; then
  skip="--root $root"
elif [ ! -d /run/systemd/system ]; then
  skip="systemd is not running as PID 1 here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown))"
fi
if [ -n "$skip" ]; then
  note "NOTICE: systemctl skipped ($skip). On the real host run:"
  note "  systemctl daemon-reload && systemctl enable --now helpdesk-escalations"
  note "  (or, for an upgrade of a running service: systemctl restart helpdesk-escalations)"
else
  was_active=0
  systemctl is-active --quiet "$unit_name" && was_active=1
  run systemctl daemon-reload
  run systemctl enable --now "$unit_name"
  [ "$was_active" -eq 0 ] || run systemctl restart "$unit_name"
  [ "$dry_run" -eq 1 ] || note "service: $(systemctl is-active "$unit_name" || true); logs: journalctl -u helpdesk-escalations"
fi

if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  echo "install.sh: note: DejaVu Sans is missing; the archive's PDF needs it (apt-get install fonts-dejavu-core)" >&2
fi
if [ "$dry_run" -eq 1 ]; then
  echo "install.sh: dry run done: nothing was changed"
else
  echo "install.sh: done"
fi
