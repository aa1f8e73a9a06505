package io.stepstream.gpu;

import com.aparapi.Kernel;
import com.aparapi.Range;
import com.aparapi.device.OpenCLDevice;
import com.aparapi.internal.kernel.KernelManager;
import com.aparapi.internal.kernel.KernelProfile;

import java.util.LinkedHashSet;
import java.util.List;

/**
 * Runs one Aparapi kernel instance on one OpenCL device and nowhere else. Aparapi, when a kernel fails to
 * translate, compile or launch, quietly tries other devices and finally Java threads; here any of that is an
 * {@link OpenClException}: the kernel is pinned to the device, every range is created by that device, and
 * after each launch Aparapi's own profile must show that the device ran it. Buffers are explicit: an array
 * goes to the device on the first launch that sees it and afterwards only on {@code put}.
 * Counts launches (one {@code execute}, however many passes, is one launch).
 */
public final class KernelLauncher implements PassLauncher {
    private final Kernel kernel;
    private final OpenCLDevice device;
    private long launches;
    private long passes;

    public KernelLauncher(Kernel kernel, OpenCLDevice device) {
        this.kernel = kernel;
        this.device = device;
        kernel.setExplicit(true);
        KernelManager.instance().setPreferredDevices(kernel, new LinkedHashSet<>(List.of(device)));
    }

    public OpenCLDevice device() {
        return device;
    }

    /** A 1D range of {@code globalSize} work items in groups of {@code localSize}, bound to this device. */
    public Range range(int globalSize, int localSize) {
        return device.createRange(globalSize, localSize);
    }

    /** Runs {@code passes} passes of the kernel in one execute; pass p sees getPassId() == p. */
    public void launch(Range range, int passes) {
        if (range.getDevice() != device) {
            throw new IllegalArgumentException("range is bound to " + range.getDevice() + ", not to " + device.getName());
        }
        try {
            kernel.execute(range, passes);
        } catch (Throwable e) { // Aparapi reports a failed device fallback as an AssertionError
            throw new OpenClException(kernel.getClass().getSimpleName() + " failed on OpenCL device "
                    + device.getName().strip() + ": " + e, e);
        }
        launches++;
        this.passes += passes;
        checkRanOnDevice();
    }

    /** {@link #launch(Range, int)} on a range of this device. */
    @Override
    public void launch(int globalSize, int localSize, int passes) {
        launch(range(globalSize, localSize), passes);
    }

    /** Nothing to wait for: Aparapi's execute and transfers return when the device is done. */
    @Override
    public void finish() {
    }

    @Override
    public String dispatchName() {
        return Dispatch.APARAPI.label();
    }

    /** Fails unless Aparapi's profile says the last execution of this kernel class was on our device. */
    void checkRanOnDevice() {
        KernelProfile profile = KernelManager.instance().getProfile(kernel.getClass());
        var failed = KernelManager.instance().getPreferences(kernel).getFailedDevices();
        if (profile.getLastDeviceProfile() != profile.getDeviceProfile(device) || !failed.isEmpty()
                || !(kernel.getTargetDevice() instanceof OpenCLDevice)) {
            throw new OpenClException(kernel.getClass().getSimpleName() + " did not run on OpenCL device "
                    + device.getName().strip() + " (Aparapi fell back; devices used: " + profile.getDevices()
                    + ", failed: " + failed + ")");
        }
    }

    @Override
    public long launches() {
        return launches;
    }

    @Override
    public long passes() {
        return passes;
    }

    public Kernel kernel() {
        return kernel;
    }

    @Override
    public void put(float[] a) {
        guard(() -> kernel.put(a), "put");
    }

    @Override
    public void put(int[] a) {
        guard(() -> kernel.put(a), "put");
    }

    @Override
    public void put(char[] a) {
        guard(() -> kernel.put(a), "put");
    }

    @Override
    public void put(byte[] a) {
        guard(() -> kernel.put(a), "put");
    }

    @Override
    public void get(float[] a) {
        guard(() -> kernel.get(a), "get");
    }

    /** A transfer that fails is a device failure too: the same exception as a failed launch. */
    private void guard(Runnable transfer, String what) {
        try {
            transfer.run();
        } catch (OpenClException e) {
            throw e;
        } catch (RuntimeException | AssertionError e) {
            throw new OpenClException(kernel.getClass().getSimpleName() + ": " + what + " failed on OpenCL device "
                    + device.getName().strip() + ": " + e, e);
        }
    }

    @Override
    public void dispose() {
        kernel.dispose();
    }
}
