package io.stepstream.gpu.cl;

import java.lang.foreign.MemorySegment;

/**
 * One OpenCL device as the driver describes it: its native platform and device handles, name, platform vendor,
 * kind, and the limits a dispatcher needs (work-group size, local and global memory, largest allocation).
 */
public record ClDevice(MemorySegment platform, MemorySegment id, String name, String platformVendor, Kind kind,
                       int computeUnits, long maxWorkGroupSize, long localMemBytes, long globalMemBytes,
                       long maxAllocBytes) {
    /** The device kinds Aparapi distinguishes. */
    public enum Kind { CPU, GPU, ACC, UNKNOWN }

    @Override
    public String toString() {
        return name.strip() + " (" + kind + ", " + platformVendor.strip() + ", " + computeUnits + " compute units, "
                + (globalMemBytes >> 20) + " MiB)";
    }
}
