# Shared by the scripts: where cargo builds, and a busybox bundle maker.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/runlet-target}"
# .cargo/config.toml names the target explicitly (runlet is linked
# statically), so cargo puts what it builds one level down.
export RUNLET_BUILD_DIR="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu"

# make_busybox_bundle DIR ARGS...: a bundle whose rootfs is busybox-static
# and whose process runs ARGS (config.json from `runlet spec`).
make_busybox_bundle() {
  local dir=$1; shift
  local runlet=$1; shift
  rm -rf "$dir"
  mkdir -p "$dir/rootfs/bin" "$dir"/rootfs/{proc,sys,dev,tmp,etc,root}
  cp /bin/busybox "$dir/rootfs/bin/busybox"
  for applet in sh echo cat ls sleep hostname id uname true; do
    ln -sf busybox "$dir/rootfs/bin/$applet"
  done
  "$runlet" spec --bundle "$dir"
  python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
c["hostname"] = "runlet-demo"
json.dump(c, open(path, "w"), indent=2)
PY
}
