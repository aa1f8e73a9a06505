#!/usr/bin/env bash
# Builds .gpu/bundle.tar.xz for the GPU machine (see ../shared/gpu/README.md): the engine and gpu jars with
# their runtime dependencies and a jlink JRE. Then prints the device commands, each within the device tool's
# 10-minute limit: a smoke run (logits vs the CPU on stories260k), the synthetic 1.1B table (F32, F16, Q8_0 at
# batch 1/8/32/64) and DlmBatchBench; MatmulProbe for kernel variants; tools/pytorch_bench.py for PyTorch.
#   tools/gpu-bench.sh            # then call the device tool with carry [".gpu/bundle.tar.xz"] and the command
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=../bin/lib/jdk.sh
. bin/lib/jdk.sh
stepstream_find_jdk
shared=${STEPSTREAM_SHARED:-$root/../shared}
[ -x "$shared/gpu/make-bundle.sh" ] || { echo "no $shared/gpu/make-bundle.sh (set STEPSTREAM_SHARED)" >&2; exit 2; }
git check-ignore -q .gpu/x || { echo "/.gpu/ must be ignored by git (it is in .gitignore on main)" >&2; exit 2; }
rm -rf .gpu/jars
mkdir -p .gpu/jars
./mvnw -q -B -ntp -DskipTests package dependency:copy-dependencies -DincludeScope=runtime \
  -DoutputDirectory="$root/.gpu/jars" -pl gpu -am
for m in engine gpu; do
  find "$m/target" -maxdepth 1 -name "stepstream-$m-*.jar" ! -name '*-sources.jar' ! -name '*-javadoc.jar' \
    ! -name '*-tests.jar' -exec cp {} .gpu/jars/ \;
done
# Only what GpuBench runs travels (the device tool carries 64 MiB): Aparapi's Linux x86_64 native library
# (not its Windows/macOS/ARM ones, 17 MiB) and the engine without the embedded diffusion model (15 MiB).
command -v zip >/dev/null || { echo "needs zip to trim the jars" >&2; exit 2; }
zip -q -d .gpu/jars/aparapi-jni-*.jar 'win/*' 'osx/*' 'linux/libaparapi_aarch64.so' 'linux/libaparapi_armhf.so' \
  'linux/libaparapi_x86.so'
zip -q -d .gpu/jars/stepstream-engine-*.jar 'io/stepstream/engine/models/tinystories-dlm/*'
# make-bundle.sh reads jdeps' stdout as the module list, and jdeps prints a "split package" warning there for
# jackson-annotations (an engine dependency); a JDK view whose jdeps drops those lines keeps the list clean.
# It also drops java.desktop and java.sql, which only Jackson's optional java.beans/java.sql support wants
# (GpuBench never parses JSON) and which would double the bundle past the 64 MiB the device tool carries.
shim=.gpu/jdk-shim
rm -rf "$shim"
mkdir -p "$shim/bin"
ln -s "$JAVA_HOME/bin/java" "$shim/bin/java"
ln -s "$JAVA_HOME/bin/jlink" "$shim/bin/jlink"
printf '#!/bin/sh\n"%s/bin/jdeps" "$@" | grep -v "^Warning" | sed -e "s/,\\?java.desktop//; s/,\\?java.sql//"\n' \
  "$JAVA_HOME" > "$shim/bin/jdeps"
chmod +x "$shim/bin/jdeps"
JAVA_HOME="$root/$shim" "$shared/gpu/make-bundle.sh" .gpu .gpu/jars
rm -rf .gpu/jars "$shim"
cat <<'CMD'

Device command (carry [".gpu/bundle.tar.xz"]): smoke on stories260k (logits vs the CPU, hand path and Aparapi's
matmul), then the synthetic 1.1B table (every pass hand-written, per-op kernel split) and diffusion step batching:
tar -xJf .gpu/bundle.tar.xz -C /tmp && export JAVA_OPTS=-Xmx80g && R=/tmp/bundle/device-run.sh && nvidia-smi -L > $OUT/gpu.txt 2>&1; timeout 90 $R io.stepstream.gpu.bench.GpuBench --shape stories260k --batches 1,8 --steps 8 --dtype f32,f16,q8_0 --dispatch direct --matmul both > $OUT/smoke.txt 2>&1; tail -12 $OUT/smoke.txt; timeout 240 $R io.stepstream.gpu.bench.GpuBench --shape llama-1.1b --dtype f32,f16,q8_0 --dispatch direct --batches 1,8,32,64 --steps 64 --out $OUT/b.json --csv $OUT/b.csv > $OUT/b.txt 2>&1; grep "^opencl\|^ops" $OUT/b.txt; timeout 150 $R io.stepstream.gpu.bench.DlmBatchBench --shape llada-110m --backend opencl,cpu --requests 1,8,32 --cpu-max-requests 1 > $OUT/dlm.txt 2>&1; tail -8 $OUT/dlm.txt

Kernel variants alone (tile macros, see gpu/README.md):
tar -xJf .gpu/bundle.tar.xz -C /tmp && /tmp/bundle/device-run.sh io.stepstream.gpu.bench.MatmulProbe --dtype f32,f16,q8_0 --tokens 1,8,32,64 --variants "default;tm=64,rm=4,rn=4;mv_lpr=64,mv_unroll=2" > $OUT/probe.txt 2>&1; tail -120 $OUT/probe.txt

PyTorch on the same GPU (eager and static cache + compile):
timeout 220 python3 tools/pytorch_bench.py --shape llama-1.1b --modes compile,eager --batches 1,32,8,64 --budget 170 --out $OUT/pytorch.jsonl > $OUT/pytorch.txt 2>&1; tail -20 $OUT/pytorch.txt
CMD
