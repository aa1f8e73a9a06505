package io.stepstream.gpu;

import com.aparapi.Kernel;

/** Calls a native JDK method, which Aparapi cannot turn into OpenCL: it would only run as a Java fallback. */
public final class UntranslatableKernel extends Kernel {
    long[] out;

    @Override
    public void run() {
        out[getGlobalId(0)] = System.nanoTime();
    }
}
