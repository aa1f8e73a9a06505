#!/usr/bin/env bash
# Builds .gpu/bundle.tar.xz for the GPU machine (see ../shared/gpu/README.md): the engine and gpu jars with
# their runtime dependencies and a jlink JRE. Then prints the one device command that runs, within the
# device tool's 10-minute limit: a smoke run (build + logits check on stories260k), then GpuBench on the
# synthetic 1.1B model with Aparapi's and the direct dispatch side by side; and a second command for the full
# table (F32, F16, Q8_0 at batch 1/8/32/64, direct dispatch) with tools/pytorch_bench.py.
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

Device command (carry [".gpu/bundle.tar.xz"]): smoke on stories260k, then Aparapi's vs the direct dispatch side by
side on the synthetic 1.1B model (F32 and Q8_0, batch 1/8/32; GpuBench runs both dispatches by default):
tar -xJf .gpu/bundle.tar.xz -C /tmp && export JAVA_OPTS=-Xmx80g && R=/tmp/bundle/device-run.sh && M=io.stepstream.gpu.bench.GpuBench && nvidia-smi -L > $OUT/gpu.txt 2>&1; $R $M --shape stories260k --batches 1,8 --steps 8 --dtype f32,f16,q8_0 --out $OUT/smoke.json > $OUT/smoke.txt 2>&1; tail -16 $OUT/smoke.txt; timeout 420 $R $M --shape llama-1.1b --dtype f32,q8_0 --dispatch both --batches 1,8,32 --steps 64 --out $OUT/bench-1.1b.json --csv $OUT/bench-1.1b.csv > $OUT/bench-1.1b.txt 2>&1; tail -16 $OUT/bench-1.1b.txt

The full table with PyTorch alongside (one dispatch, so it fits the 10-minute limit):
tar -xJf .gpu/bundle.tar.xz -C /tmp && export JAVA_OPTS=-Xmx80g && R=/tmp/bundle/device-run.sh && M=io.stepstream.gpu.bench.GpuBench && timeout 300 $R $M --shape llama-1.1b --dtype f32,f16,q8_0 --dispatch direct --batches 1,8,32,64 --steps 128 --out $OUT/bench-1.1b.json --csv $OUT/bench-1.1b.csv > $OUT/bench-1.1b.txt 2>&1; timeout 220 python3 tools/pytorch_bench.py --shape llama-1.1b --modes compile,eager --batches 1,32,8,64 --budget 170 --out $OUT/pytorch.jsonl > $OUT/pytorch.txt 2>&1; tail -25 $OUT/bench-1.1b.txt; tail -20 $OUT/pytorch.txt
CMD
