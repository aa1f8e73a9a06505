package io.stepstream.gpu;

import com.aparapi.Kernel;
import com.aparapi.device.OpenCLDevice;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class KernelLauncherTest {
    @Test
    void aKernelRunsOnTheAskedDeviceAndNotInAJavaFallback() {
        OpenCLDevice device = OpenClTestSupport.device();
        AxpyKernel k = new AxpyKernel();
        Random random = new Random(3);
        k.a = 1.5f;
        k.x = new float[1000];
        k.y = new float[1000];
        float[] expected = new float[1000];
        for (int i = 0; i < 1000; i++) {
            k.x[i] = random.nextFloat() - 0.5f;
            k.y[i] = random.nextFloat() - 0.5f;
            expected[i] = k.y[i] + 3 * (1.5f * k.x[i]); // three passes
        }
        KernelLauncher launcher = new KernelLauncher(k, device);
        try {
            launcher.put(k.x);
            launcher.put(k.y);
            launcher.launch(launcher.range(1024, 64), 3);
            launcher.get(k.y);
            assertSame(device, launcher.device());
            assertSame(device, k.getTargetDevice());
            assertTrue(k.isRunningCL());
            assertTrue(k.getExecutionMode() == null || k.getExecutionMode() == Kernel.EXECUTION_MODE.AUTO
                    || k.getExecutionMode().isOpenCL(), "execution mode " + k.getExecutionMode());
            assertEquals(1, launcher.launches());
            assertTrue(OpenClTestSupport.relativeError(k.y, expected) <= 1e-6);
        } finally {
            launcher.dispose();
        }
    }

    @Test
    void aKernelAparapiCannotTranslateFailsInsteadOfFallingBackToJava() {
        UntranslatableKernel k = new UntranslatableKernel();
        k.out = new long[64];
        KernelLauncher launcher = new KernelLauncher(k, OpenClTestSupport.device());
        try {
            OpenClException e = assertThrows(OpenClException.class, () -> launcher.launch(launcher.range(64, 64), 1));
            assertTrue(e.getMessage().contains("UntranslatableKernel"), e.getMessage());
            assertEquals(0, launcher.launches());
            assertEquals(0L, k.out[0], "the Java body must not have run");
        } finally {
            launcher.dispose();
        }
    }
}
