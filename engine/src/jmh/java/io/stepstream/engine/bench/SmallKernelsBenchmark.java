package io.stepstream.engine.bench;

import io.stepstream.engine.cpu.Kernels;
import io.stepstream.engine.cpu.VectorKernels;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

import java.util.Random;
import java.util.concurrent.TimeUnit;

/** Plain loops against the Vector API kernels of {@link VectorKernels}, at a head size and a model width. */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class SmallKernelsBenchmark {
    @Param({"64", "2048"})
    public int size;

    private float[] a;
    private float[] b;
    private float[] w;
    private float[] out;

    @Setup
    public void setUp() {
        Random rnd = new Random(7);
        a = new float[size];
        b = new float[size];
        w = new float[size];
        out = new float[size];
        for (int i = 0; i < size; i++) {
            a[i] = (float) rnd.nextGaussian();
            b[i] = (float) rnd.nextGaussian();
            w[i] = (float) rnd.nextGaussian();
        }
    }

    @Benchmark
    public float dotPlain() {
        float s = 0f;
        for (int i = 0; i < size; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    @Benchmark
    public float dotVector() {
        return VectorKernels.dot(a, 0, b, 0, size);
    }

    @Benchmark
    public float[] rmsnormPlain() {
        Kernels.rmsnorm(out, 0, a, 0, w, size, 1e-5f);
        return out;
    }

    @Benchmark
    public float[] rmsnormVector() {
        VectorKernels.rmsnorm(out, 0, a, 0, w, size, 1e-5f);
        return out;
    }
}
