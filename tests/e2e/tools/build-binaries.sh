#!/usr/bin/env bash
# Builds the binaries the e2e suite runs (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, helm, kubeconform, kstatus) from their Go modules, pinned by the wrapper modules
# under tests/e2e/tools/go/, into a cache directory outside the repository.
#
# Why: the e2e tests need a real API server, etcd, garbage collector and scheduler, and
# the kubectl/helm they drive must match it, not whatever is on PATH. No container
# engine or release download is available in CI, only the Go module proxy.
#
# Usage: tests/e2e/tools/build-binaries.sh
#   Prints the bin directory on its last line (KUBEBUILDER_ASSETS itself when it provides
#   every binary); progress goes to stderr.
#   PIPESYNC_E2E_CACHE  cache root (default ~/.cache/pipesync-e2e); bin/ holds the binaries,
#                       gomod/ and gocache/ the Go module and build caches.
#   KUBEBUILDER_ASSETS  envtest convention: binaries found there are not built.
#   GO                  the go command (default: go on PATH, must be >= 1.26).
#
# Idempotent: a binary is rebuilt only when it is missing or the stamp of its group
# (wrapper go.mod + go.sum + go version + this script's flags) changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PIPESYNC_E2E_CACHE:-$HOME/.cache/pipesync-e2e}"
bin="$cache/bin"
go="${GO:-go}"

# Bump when the build flags below change so existing binaries are rebuilt.
flags_revision=1

export CGO_ENABLED=0
export GOTOOLCHAIN=local          # never download another toolchain; pins declare go 1.26
export GOWORK=off
export GOFLAGS="-mod=readonly -buildvcs=false"   # go.sum is committed and must be complete
export GOMODCACHE="$cache/gomod"
export GOCACHE="$cache/gocache"

# group -> binaries it provides; the kube commands share one go build so they share work.
declare -A group_bins=(
  [kubernetes]="kube-apiserver kube-controller-manager kube-scheduler kubectl"
  [etcd]="etcd"
  [helm]="helm"
  [kubeconform]="kubeconform"   # validates the chart's renders (test_chart.py)
  [kstatus]="kstatus"   # our own checker: kstatus (Flux) + gopher-lua (Argo CD health)
)

log() { printf 'build-binaries: %s\n' "$*" >&2; }

# True when KUBEBUILDER_ASSETS provides this binary, so we do not need to build it.
from_assets() { [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$1" ]]; }

stamp_of() {
  local group="$1"
  {
    echo "flags_revision=$flags_revision"
    "$go" env GOVERSION
    cat "$here/go/$group/go.mod" "$here/go/$group/go.sum"
    # A group whose wrapper module is itself the program (kstatus) rebuilds on source change.
    cat "$here/go/$group"/*.go 2>/dev/null || true
  } | sha256sum | cut -d' ' -f1
}

# Prints the names in the group that must be (re)built.
missing_in() {
  local group="$1" name need=()
  local stamp_file="$bin/.stamp-$group"
  local current=""
  [[ -f "$stamp_file" ]] && current="$(cat "$stamp_file")"
  for name in ${group_bins[$group]}; do
    from_assets "$name" && continue
    if [[ ! -x "$bin/$name" || "$current" != "$(stamp_of "$group")" ]]; then
      need+=("$name")
    fi
  done
  echo "${need[*]-}"
}

module_version() {  # module_version <group> <module path>
  (cd "$here/go/$1" && "$go" list -m -f '{{.Version}}' "$2")
}

module_time() {
  (cd "$here/go/$1" && "$go" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "$2")
}

ldflags_for() {
  local group="$1" v
  case "$group" in
    kubernetes)
      v="$(module_version kubernetes k8s.io/kubernetes)"          # e.g. v1.36.4
      local major="${v#v}"; major="${major%%.*}"
      local minor="${v#v*.}"; minor="${minor%%.*}"
      local date; date="$(module_time kubernetes k8s.io/kubernetes)"
      local f="-s -w" pkg
      # The same variables hack/lib/version.sh sets, so /version and kubectl tell the truth.
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        f+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
        f+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date:-1970-01-01T00:00:00Z}"
      done
      echo "$f" ;;
    etcd)
      # etcd's version is a constant in go.etcd.io/etcd/api/v3/version; only the SHA is ldflags.
      echo "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$(module_version etcd go.etcd.io/etcd/server/v3)" ;;
    helm)
      v="$(module_version helm helm.sh/helm/v4)"
      echo "-s -w -X helm.sh/helm/v4/internal/version.version=$v -X helm.sh/helm/v4/internal/version.gitTreeState=clean" ;;
    kubeconform)
      echo "-s -w -X main.version=$(module_version kubeconform github.com/yannh/kubeconform)" ;;
    kstatus) echo "-s -w" ;;
  esac
}

package_of() {  # the Go package that builds a binary
  case "$1" in
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    helm) echo helm.sh/helm/v4/cmd/helm ;;
    kubeconform) echo github.com/yannh/kubeconform/cmd/kubeconform ;;
    kstatus) echo . ;;   # the wrapper module is the program itself
    *) echo "k8s.io/kubernetes/cmd/$1" ;;
  esac
}

build_group() {
  local group="$1"; shift
  local names=("$@") pkgs=() name
  for name in "${names[@]}"; do pkgs+=("$(package_of "$name")"); done
  # Build into a scratch dir and move into place, so an interrupted build never leaves a
  # truncated binary that a later run would take for a good one.
  local tmp="$bin/.tmp-$group"
  rm -rf "$tmp"; mkdir -p "$tmp"
  log "building ${names[*]} (group $group) ..."
  local start=$SECONDS
  (cd "$here/go/$group" && "$go" build -p "${PIPESYNC_E2E_BUILD_JOBS:-2}" -trimpath \
      -ldflags "$(ldflags_for "$group")" -o "$tmp/" "${pkgs[@]}")
  # go build names a binary after its import path, skipping a major-version suffix:
  # go.etcd.io/etcd/server/v3 -> "server".
  if [[ "$group" == etcd ]]; then mv "$tmp/server" "$tmp/etcd"; fi
  for name in "${names[@]}"; do mv -f "$tmp/$name" "$bin/$name"; done
  rmdir "$tmp"
  stamp_of "$group" > "$bin/.stamp-$group"
  log "built ${names[*]} in $((SECONDS - start)) s"
}

main() {
  if ! "$go" version >/dev/null 2>&1; then
    log "no Go toolchain found (set GO=/path/to/go or install Go >= 1.26)"; exit 1
  fi
  local group need name all_from_assets=1
  for group in "${!group_bins[@]}"; do
    for name in ${group_bins[$group]}; do from_assets "$name" || all_from_assets=0; done
  done
  if ((all_from_assets)); then
    log "every binary comes from KUBEBUILDER_ASSETS; nothing to build"
    echo "$KUBEBUILDER_ASSETS"
    return
  fi
  mkdir -p "$bin"
  for group in etcd kubernetes helm kubeconform kstatus; do
    need="$(missing_in "$group")"
    if [[ -n "$need" ]]; then
      # shellcheck disable=SC2086  # word splitting of the name list is intended
      build_group "$group" $need
    fi
  done
  echo "$bin"
}

main "$@"; exit  # on one line: bash must not read on if the file changes meanwhile
