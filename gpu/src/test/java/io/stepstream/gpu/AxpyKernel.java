package io.stepstream.gpu;

import com.aparapi.Kernel;

/** y += a * x, once per pass: a minimal kernel for the launcher tests. */
public final class AxpyKernel extends Kernel {
    float a;
    float[] x;
    float[] y;

    @Override
    public void run() {
        int i = getGlobalId(0);
        if (i < x.length) {
            y[i] += a * x[i];
        }
    }
}
