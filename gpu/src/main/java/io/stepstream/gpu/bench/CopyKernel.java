package io.stepstream.gpu.bench;

import com.aparapi.Kernel;

/** dst = src, a work item per element: the device's copy bandwidth, the ceiling a weight-streaming step has. */
final class CopyKernel extends Kernel {
    float[] src;
    float[] dst;

    @Override
    public void run() {
        int i = getGlobalId(0);
        dst[i] = src[i];
    }
}
