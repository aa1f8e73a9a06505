package io.stepstream.gpu.bench;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.stepstream.gpu.OpenClDevices;
import org.junit.jupiter.api.Test;

/** Both of the probe's paths really compute W x on the OpenCL device (PoCL here) before anyone times them. */
class BindingProbeTest {
    @Test
    void kernelAndBindingBothMatchThePlainLoop() {
        var result = BindingProbe.run(OpenClDevices.select(System.getProperty("stepstream.test.device", "auto")),
                67, 300, 3);
        assertTrue(result.kernelError() < 1e-5, result.toString());
        assertTrue(result.bindingError() < 1e-5, result.toString());
        assertTrue(result.kernelMs() > 0 && result.bindingMs() > 0, result.toString());
    }
}
