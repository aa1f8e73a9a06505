package io.stepstream.gpu;

import com.aparapi.device.Device;
import com.aparapi.device.OpenCLDevice;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The OpenCL devices Aparapi sees, and the choice of one by a {@code --device} style selector:
 * <ul>
 *   <li>empty, null or {@code auto}: the first GPU, else the first device of any kind;</li>
 *   <li>{@code cpu}, {@code gpu} or {@code accelerator}: the first device of that kind;</li>
 *   <li>a number: the device at that index in {@link #list()};</li>
 *   <li>anything else: the first device whose name or vendor contains it, ignoring case.</li>
 * </ul>
 */
public final class OpenClDevices {
    static final String INSTALL_HINT = "install an OpenCL driver, e.g. PoCL on Debian/Ubuntu: "
            + "apt-get install pocl-opencl-icd ocl-icd-libopencl1";

    private OpenClDevices() {
    }

    /** Every OpenCL device of every platform, in Aparapi's order (the index a selector may name). */
    public static List<OpenCLDevice> list() {
        List<OpenCLDevice> devices;
        try {
            devices = OpenCLDevice.listDevices(null);
        } catch (LinkageError | RuntimeException e) {
            throw new OpenClException("cannot list OpenCL devices (" + e + "); " + INSTALL_HINT, e);
        }
        return devices == null ? List.of() : List.copyOf(devices);
    }

    /** Picks a device by selector; a clear error when none is found or none matches. */
    public static OpenCLDevice select(String selector) {
        List<OpenCLDevice> devices = list();
        if (devices.isEmpty()) {
            throw new OpenClException("no OpenCL device found; " + INSTALL_HINT);
        }
        String s = selector == null ? "" : selector.strip().toLowerCase(Locale.ROOT);
        OpenCLDevice chosen = switch (s) {
            case "", "auto" -> {
                OpenCLDevice gpu = firstOfType(devices, Device.TYPE.GPU);
                yield gpu != null ? gpu : devices.getFirst();
            }
            case "cpu" -> firstOfType(devices, Device.TYPE.CPU);
            case "gpu" -> firstOfType(devices, Device.TYPE.GPU);
            case "accelerator", "acc" -> firstOfType(devices, Device.TYPE.ACC);
            default -> s.chars().allMatch(Character::isDigit) ? byIndex(devices, s) : byName(devices, s);
        };
        if (chosen == null) {
            throw new OpenClException("no OpenCL device matches --device '" + selector + "'; devices: "
                    + describeAll(devices));
        }
        return chosen;
    }

    /** One line: name, kind, vendor, compute units, global memory. */
    public static String describe(OpenCLDevice d) {
        return d.getName().strip() + " (" + d.getType() + ", " + d.getOpenCLPlatform().getVendor().strip() + ", "
                + d.getMaxComputeUnits() + " compute units, " + (d.getGlobalMemSize() >> 20) + " MiB)";
    }

    private static String describeAll(List<OpenCLDevice> devices) {
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < devices.size(); i++) {
            lines.add(i + ": " + describe(devices.get(i)));
        }
        return String.join("; ", lines);
    }

    private static OpenCLDevice firstOfType(List<OpenCLDevice> devices, Device.TYPE type) {
        return devices.stream().filter(d -> d.getType() == type).findFirst().orElse(null);
    }

    private static OpenCLDevice byIndex(List<OpenCLDevice> devices, String digits) {
        int index;
        try {
            index = Integer.parseInt(digits);
        } catch (NumberFormatException e) {
            return null;
        }
        return index < devices.size() ? devices.get(index) : null;
    }

    private static OpenCLDevice byName(List<OpenCLDevice> devices, String needle) {
        for (OpenCLDevice d : devices) {
            String vendor = d.getOpenCLPlatform().getVendor();
            if (d.getName().toLowerCase(Locale.ROOT).contains(needle)
                    || (vendor != null && vendor.toLowerCase(Locale.ROOT).contains(needle))) {
                return d;
            }
        }
        return null;
    }
}
