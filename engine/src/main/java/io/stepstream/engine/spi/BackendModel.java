package io.stepstream.engine.spi;

import io.stepstream.engine.Model;

/**
 * A model that knows where it runs, for ListModels' backend and device fields. May change over its life
 * (a failover model reports the CPU once it has failed over), so read it when reporting, not once.
 */
public interface BackendModel extends Model {
    /** The provider's name: "cpu", "opencl". */
    String backendName();

    /** The device in words, e.g. "NVIDIA H200 (GPU, NVIDIA Corporation, 132 compute units, 143 GiB)" or "cpu". */
    String deviceName();
}
