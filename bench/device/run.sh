#!/usr/bin/env bash
# The GPU-day benchmark on a bare NVIDIA device machine (see bench/README.md, "GPU day"). Run from the
# repository root with the pack of bench/device/pack.ts carried in .device/:
#   bash bench/device/run.sh [--dry-run] [--budget-s 420]
# Unpacks the pack into /tmp/muse-device, uses the machine's node if it is 20 or newer (else the carried one),
# finds the Vulkan loader and NVIDIA's Vulkan driver (unpacking the carried loader libraries only where the
# machine lacks them), prints what it found, then runs bench/device/main.ts's bundle. Results: $OUT/device.json,
# $OUT/environment.txt and $OUT/log.txt ($OUT unset: bench/results/).
set -uo pipefail
PACK=.device/muse-device.tar.xz
DIR=/tmp/muse-device
OUTDIR=${OUT:-bench/results}
mkdir -p "$OUTDIR"
if [ ! -f "$PACK" ]; then
  echo "$PACK is missing: run 'node --import tsx bench/device/pack.ts' here and carry .device" >&2
  exit 2
fi
rm -rf "$DIR" && mkdir -p "$DIR"
# python3's tarfile reads xz where the xz tool is missing.
tar -xJf "$PACK" -C "$DIR" 2>/dev/null || python3 -m tarfile -e "$PACK" "$DIR" || { echo "cannot unpack $PACK" >&2; exit 2; }

NODE=$(command -v node || true)
if [ -z "$NODE" ] || [ "$("$NODE" -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then NODE=$DIR/node; chmod +x "$NODE"; fi

# Vulkan: the loader (libvulkan.so.1) and glvnd's libGLdispatch (NVIDIA's Vulkan ICD is libGLX_nvidia.so.0,
# which links it) from the carried Debian packages, unpacked beside the pack, never into /.
if ! ldconfig -p | grep -q 'libvulkan.so.1 ' || ! ldconfig -p | grep -q 'libGLdispatch.so.0 '; then
  for f in "$DIR"/debs/*.deb; do dpkg -x "$f" "$DIR/sys"; done
  export LD_LIBRARY_PATH="$DIR/sys/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# NVIDIA's ICD file: where the loader looks by default, else the driver folder the device machines mount.
ICDS=$(ls /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json 2>/dev/null || true)
if [ -z "$ICDS" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi

{
  echo "node: $NODE $("$NODE" --version)"
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
  echo "vulkan loader: $(ldconfig -p | grep 'libvulkan.so.1 ' | head -1 | sed 's/.*=> //')${LD_LIBRARY_PATH:+ (LD_LIBRARY_PATH=$LD_LIBRARY_PATH)}"
  echo "vulkan ICD files: ${VK_DRIVER_FILES:-$(ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null | tr '\n' ' ')}"
  [ -n "${VK_DRIVER_FILES:-}" ] && echo "nvidia ICD: $(tr -d '\n ' < "$VK_DRIVER_FILES")"
  echo "cpus: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUTDIR/environment.txt"

timeout 470 "$NODE" "$DIR/app/main.mjs" --out "$OUTDIR" "$@" 2>&1 | grep -v '^Warning: maxDynamic' | tee "$OUTDIR/log.txt"
