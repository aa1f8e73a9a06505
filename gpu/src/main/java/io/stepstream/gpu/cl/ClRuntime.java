package io.stepstream.gpu.cl;

import io.stepstream.gpu.OpenClException;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The OpenCL C API calls stepstream needs, bound with the Java 25 foreign function API to the ICD loader
 * ({@code libOpenCL.so.1}); nothing else is native. Every status other than CL_SUCCESS becomes an
 * {@link OpenClException} naming the call and the error ({@link #check}). The library is looked up on first
 * use, so a machine without OpenCL fails with the same install hint as {@code OpenClDevices}.
 *
 * <p>Device listing follows Aparapi's: platforms in clGetPlatformIDs order, each platform's CPU, GPU and
 * accelerator devices in clGetDeviceIDs order; {@link #select} applies {@code OpenClDevices}' selector rules
 * to that list.
 */
public final class ClRuntime {
    static final int CL_SUCCESS = 0;
    static final long CL_DEVICE_TYPE_CPU = 1L << 1;
    static final long CL_DEVICE_TYPE_GPU = 1L << 2;
    static final long CL_DEVICE_TYPE_ACCELERATOR = 1L << 3;
    static final int CL_PLATFORM_VENDOR = 0x0903;
    static final int CL_DEVICE_TYPE = 0x1000;
    static final int CL_DEVICE_MAX_COMPUTE_UNITS = 0x1002;
    static final int CL_DEVICE_MAX_WORK_GROUP_SIZE = 0x1004;
    static final int CL_DEVICE_MAX_MEM_ALLOC_SIZE = 0x1010;
    static final int CL_DEVICE_GLOBAL_MEM_SIZE = 0x101F;
    static final int CL_DEVICE_LOCAL_MEM_SIZE = 0x1023;
    static final int CL_DEVICE_NAME = 0x102B;
    static final int CL_DEVICE_EXTENSIONS = 0x1030;
    /** cl_nv_device_attribute_query: the CUDA compute capability of an NVIDIA device. */
    static final int CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV = 0x4000;
    static final int CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV = 0x4001;
    static final long CL_CONTEXT_PLATFORM = 0x1084;
    static final long CL_QUEUE_PROFILING_ENABLE = 1L << 1;
    static final long CL_MEM_READ_WRITE = 1L;
    static final int CL_PROGRAM_BUILD_LOG = 0x1183;
    static final int CL_PROFILING_COMMAND_START = 0x1282;
    static final int CL_PROFILING_COMMAND_END = 0x1283;

    private static final String INSTALL_HINT = "install an OpenCL driver, e.g. PoCL on Debian/Ubuntu: "
            + "apt-get install pocl-opencl-icd ocl-icd-libopencl1";

    private ClRuntime() {
    }

    /** The bound functions; built on first use (a missing libOpenCL is an OpenClException then, not at class load). */
    static final class Fn {
        private static final Fn INSTANCE = new Fn();
        final MethodHandle getPlatformIDs;
        final MethodHandle getPlatformInfo;
        final MethodHandle getDeviceIDs;
        final MethodHandle getDeviceInfo;
        final MethodHandle createContext;
        final MethodHandle createCommandQueue;
        final MethodHandle createProgramWithSource;
        final MethodHandle buildProgram;
        final MethodHandle getProgramBuildInfo;
        final MethodHandle createKernel;
        final MethodHandle setKernelArg;
        final MethodHandle createBuffer;
        final MethodHandle enqueueWriteBuffer;
        final MethodHandle enqueueReadBuffer;
        /** Blocking transfers straight from/to a Java array (heap segment), like JNI's critical array access. */
        final MethodHandle enqueueWriteBufferHeap;
        final MethodHandle enqueueReadBufferHeap;
        final MethodHandle enqueueNDRangeKernel;
        final MethodHandle flush;
        final MethodHandle finish;
        final MethodHandle getEventProfilingInfo;
        final MethodHandle releaseEvent;
        final MethodHandle releaseMemObject;
        final MethodHandle releaseKernel;
        final MethodHandle releaseProgram;
        final MethodHandle releaseCommandQueue;
        final MethodHandle releaseContext;

        private Fn() {
            Linker linker = Linker.nativeLinker();
            SymbolLookup lib;
            try {
                lib = SymbolLookup.libraryLookup("libOpenCL.so.1", Arena.global());
            } catch (IllegalArgumentException e) {
                throw new OpenClException("cannot load libOpenCL.so.1 (" + e.getMessage() + "); " + INSTALL_HINT, e);
            }
            Binder b = new Binder(linker, lib);
            getPlatformIDs = b.fn("clGetPlatformIDs", JAVA_INT, JAVA_INT, ADDRESS, ADDRESS);
            getPlatformInfo = b.fn("clGetPlatformInfo", JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS);
            getDeviceIDs = b.fn("clGetDeviceIDs", JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS);
            getDeviceInfo = b.fn("clGetDeviceInfo", JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS);
            createContext = b.fn("clCreateContext", ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
            createCommandQueue = b.fn("clCreateCommandQueue", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS);
            createProgramWithSource = b.fn("clCreateProgramWithSource", ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS,
                    ADDRESS);
            buildProgram = b.fn("clBuildProgram", JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
            getProgramBuildInfo = b.fn("clGetProgramBuildInfo", JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS,
                    ADDRESS);
            createKernel = b.fn("clCreateKernel", ADDRESS, ADDRESS, ADDRESS, ADDRESS);
            // Called once per pass on the hot path; it only records the value, so no thread state transition.
            setKernelArg = b.critical("clSetKernelArg", false, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS);
            createBuffer = b.fn("clCreateBuffer", ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS);
            ValueLayout[] transfer = {ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT, ADDRESS,
                    ADDRESS};
            enqueueWriteBuffer = b.fn("clEnqueueWriteBuffer", JAVA_INT, transfer);
            enqueueReadBuffer = b.fn("clEnqueueReadBuffer", JAVA_INT, transfer);
            enqueueWriteBufferHeap = b.critical("clEnqueueWriteBuffer", true, JAVA_INT, transfer);
            enqueueReadBufferHeap = b.critical("clEnqueueReadBuffer", true, JAVA_INT, transfer);
            enqueueNDRangeKernel = b.fn("clEnqueueNDRangeKernel", JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS,
                    ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
            flush = b.fn("clFlush", JAVA_INT, ADDRESS);
            finish = b.fn("clFinish", JAVA_INT, ADDRESS);
            getEventProfilingInfo = b.fn("clGetEventProfilingInfo", JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS,
                    ADDRESS);
            releaseEvent = b.fn("clReleaseEvent", JAVA_INT, ADDRESS);
            releaseMemObject = b.fn("clReleaseMemObject", JAVA_INT, ADDRESS);
            releaseKernel = b.fn("clReleaseKernel", JAVA_INT, ADDRESS);
            releaseProgram = b.fn("clReleaseProgram", JAVA_INT, ADDRESS);
            releaseCommandQueue = b.fn("clReleaseCommandQueue", JAVA_INT, ADDRESS);
            releaseContext = b.fn("clReleaseContext", JAVA_INT, ADDRESS);
        }
    }

    private record Binder(Linker linker, SymbolLookup lib) {
        MethodHandle fn(String name, ValueLayout result, ValueLayout... args) {
            return linker.downcallHandle(symbol(name), FunctionDescriptor.of(result, args));
        }

        MethodHandle critical(String name, boolean heapAccess, ValueLayout result, ValueLayout... args) {
            return linker.downcallHandle(symbol(name), FunctionDescriptor.of(result, args),
                    Linker.Option.critical(heapAccess));
        }

        private MemorySegment symbol(String name) {
            return lib.find(name).orElseThrow(() -> new OpenClException("libOpenCL.so.1 has no " + name
                    + " (an OpenCL 1.2 ICD loader is needed)"));
        }
    }

    static Fn fn() {
        try {
            return Fn.INSTANCE;
        } catch (ExceptionInInitializerError e) {
            throw e.getCause() instanceof OpenClException o ? o : new OpenClException("cannot bind OpenCL: " + e, e);
        } catch (NoClassDefFoundError e) {
            throw new OpenClException("OpenCL is not available (an earlier attempt to load libOpenCL.so.1 failed); "
                    + INSTALL_HINT, e);
        }
    }

    /** Throws unless {@code status} is CL_SUCCESS; the message names the call and the error. */
    public static void check(int status, String call) {
        if (status != CL_SUCCESS) {
            throw new OpenClException(call + " failed: " + errorName(status) + " (" + status + ")");
        }
    }

    /** Invokes a bound function returning a cl_int status; a Throwable from the call itself is wrapped. */
    static int call(MethodHandle h, Object... args) {
        try {
            return (int) h.invokeWithArguments(args);
        } catch (OpenClException e) {
            throw e;
        } catch (Throwable t) {
            throw new OpenClException("OpenCL call failed: " + t, t);
        }
    }

    /** The CL_ name of an OpenCL error code. */
    public static String errorName(int status) {
        String n = ERRORS.get(status);
        return n != null ? n : "unknown OpenCL error";
    }

    private static final Map<Integer, String> ERRORS = Map.ofEntries(
            Map.entry(0, "CL_SUCCESS"), Map.entry(-1, "CL_DEVICE_NOT_FOUND"), Map.entry(-2, "CL_DEVICE_NOT_AVAILABLE"),
            Map.entry(-3, "CL_COMPILER_NOT_AVAILABLE"), Map.entry(-4, "CL_MEM_OBJECT_ALLOCATION_FAILURE"),
            Map.entry(-5, "CL_OUT_OF_RESOURCES"), Map.entry(-6, "CL_OUT_OF_HOST_MEMORY"),
            Map.entry(-7, "CL_PROFILING_INFO_NOT_AVAILABLE"), Map.entry(-8, "CL_MEM_COPY_OVERLAP"),
            Map.entry(-9, "CL_IMAGE_FORMAT_MISMATCH"), Map.entry(-10, "CL_IMAGE_FORMAT_NOT_SUPPORTED"),
            Map.entry(-11, "CL_BUILD_PROGRAM_FAILURE"), Map.entry(-12, "CL_MAP_FAILURE"),
            Map.entry(-13, "CL_MISALIGNED_SUB_BUFFER_OFFSET"),
            Map.entry(-14, "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST"),
            Map.entry(-15, "CL_COMPILE_PROGRAM_FAILURE"), Map.entry(-16, "CL_LINKER_NOT_AVAILABLE"),
            Map.entry(-17, "CL_LINK_PROGRAM_FAILURE"), Map.entry(-18, "CL_DEVICE_PARTITION_FAILED"),
            Map.entry(-19, "CL_KERNEL_ARG_INFO_NOT_AVAILABLE"), Map.entry(-30, "CL_INVALID_VALUE"),
            Map.entry(-31, "CL_INVALID_DEVICE_TYPE"), Map.entry(-32, "CL_INVALID_PLATFORM"),
            Map.entry(-33, "CL_INVALID_DEVICE"), Map.entry(-34, "CL_INVALID_CONTEXT"),
            Map.entry(-35, "CL_INVALID_QUEUE_PROPERTIES"), Map.entry(-36, "CL_INVALID_COMMAND_QUEUE"),
            Map.entry(-37, "CL_INVALID_HOST_PTR"), Map.entry(-38, "CL_INVALID_MEM_OBJECT"),
            Map.entry(-39, "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR"), Map.entry(-40, "CL_INVALID_IMAGE_SIZE"),
            Map.entry(-41, "CL_INVALID_SAMPLER"), Map.entry(-42, "CL_INVALID_BINARY"),
            Map.entry(-43, "CL_INVALID_BUILD_OPTIONS"), Map.entry(-44, "CL_INVALID_PROGRAM"),
            Map.entry(-45, "CL_INVALID_PROGRAM_EXECUTABLE"), Map.entry(-46, "CL_INVALID_KERNEL_NAME"),
            Map.entry(-47, "CL_INVALID_KERNEL_DEFINITION"), Map.entry(-48, "CL_INVALID_KERNEL"),
            Map.entry(-49, "CL_INVALID_ARG_INDEX"), Map.entry(-50, "CL_INVALID_ARG_VALUE"),
            Map.entry(-51, "CL_INVALID_ARG_SIZE"), Map.entry(-52, "CL_INVALID_KERNEL_ARGS"),
            Map.entry(-53, "CL_INVALID_WORK_DIMENSION"), Map.entry(-54, "CL_INVALID_WORK_GROUP_SIZE"),
            Map.entry(-55, "CL_INVALID_WORK_ITEM_SIZE"), Map.entry(-56, "CL_INVALID_GLOBAL_OFFSET"),
            Map.entry(-57, "CL_INVALID_EVENT_WAIT_LIST"), Map.entry(-58, "CL_INVALID_EVENT"),
            Map.entry(-59, "CL_INVALID_OPERATION"), Map.entry(-60, "CL_INVALID_GL_OBJECT"),
            Map.entry(-61, "CL_INVALID_BUFFER_SIZE"), Map.entry(-62, "CL_INVALID_MIP_LEVEL"),
            Map.entry(-63, "CL_INVALID_GLOBAL_WORK_SIZE"), Map.entry(-64, "CL_INVALID_PROPERTY"),
            Map.entry(-65, "CL_INVALID_IMAGE_DESCRIPTOR"), Map.entry(-66, "CL_INVALID_COMPILER_OPTIONS"),
            Map.entry(-67, "CL_INVALID_LINKER_OPTIONS"), Map.entry(-68, "CL_INVALID_DEVICE_PARTITION_COUNT"),
            Map.entry(-1001, "CL_PLATFORM_NOT_FOUND_KHR"));

    /** Every CPU, GPU and accelerator device of every platform, in Aparapi's order. */
    public static List<ClDevice> devices() {
        Fn f = fn();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment count = arena.allocate(JAVA_INT);
            int status = call(f.getPlatformIDs, 0, MemorySegment.NULL, count);
            if (status == -1001 || (status == CL_SUCCESS && count.get(JAVA_INT, 0) == 0)) {
                return List.of(); // the ICD loader found no platform
            }
            check(status, "clGetPlatformIDs");
            int n = count.get(JAVA_INT, 0);
            MemorySegment platforms = arena.allocate(ADDRESS, n);
            check(call(f.getPlatformIDs, n, platforms, MemorySegment.NULL), "clGetPlatformIDs");
            List<ClDevice> out = new ArrayList<>();
            long types = CL_DEVICE_TYPE_CPU | CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR;
            for (int p = 0; p < n; p++) {
                MemorySegment platform = platforms.getAtIndex(ADDRESS, p);
                String vendor = platformString(f, platform, CL_PLATFORM_VENDOR);
                status = call(f.getDeviceIDs, platform, types, 0, MemorySegment.NULL, count);
                if (status == -1) { // CL_DEVICE_NOT_FOUND: a platform without such devices
                    continue;
                }
                check(status, "clGetDeviceIDs");
                int m = count.get(JAVA_INT, 0);
                MemorySegment ids = arena.allocate(ADDRESS, m);
                check(call(f.getDeviceIDs, platform, types, m, ids, MemorySegment.NULL), "clGetDeviceIDs");
                for (int d = 0; d < m; d++) {
                    out.add(describe(f, platform, vendor, ids.getAtIndex(ADDRESS, d)));
                }
            }
            return List.copyOf(out);
        }
    }

    private static ClDevice describe(Fn f, MemorySegment platform, String vendor, MemorySegment id) {
        long type = deviceLong(f, id, CL_DEVICE_TYPE, 8);
        ClDevice.Kind kind = (type & CL_DEVICE_TYPE_GPU) != 0 ? ClDevice.Kind.GPU
                : (type & CL_DEVICE_TYPE_ACCELERATOR) != 0 ? ClDevice.Kind.ACC
                : (type & CL_DEVICE_TYPE_CPU) != 0 ? ClDevice.Kind.CPU : ClDevice.Kind.UNKNOWN;
        return new ClDevice(platform, id, deviceString(f, id, CL_DEVICE_NAME), vendor, kind,
                (int) deviceLong(f, id, CL_DEVICE_MAX_COMPUTE_UNITS, 4),
                deviceLong(f, id, CL_DEVICE_MAX_WORK_GROUP_SIZE, 8),
                deviceLong(f, id, CL_DEVICE_LOCAL_MEM_SIZE, 8),
                deviceLong(f, id, CL_DEVICE_GLOBAL_MEM_SIZE, 8),
                deviceLong(f, id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, 8));
    }

    /**
     * The CUDA compute capability of an NVIDIA device as major * 10 + minor (90 on an H200), or -1 when the
     * device is not NVIDIA's or its driver does not answer cl_nv_device_attribute_query.
     */
    public static int nvComputeCapability(ClDevice device) {
        if (device.platformVendor() == null || !device.platformVendor().toUpperCase(Locale.ROOT).contains("NVIDIA")) {
            return -1;
        }
        Fn f = fn();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(8);
            if (call(f.getDeviceInfo, device.id(), CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV, 4L, v, MemorySegment.NULL)
                    != CL_SUCCESS) {
                return -1;
            }
            int major = v.get(JAVA_INT, 0);
            if (call(f.getDeviceInfo, device.id(), CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV, 4L, v, MemorySegment.NULL)
                    != CL_SUCCESS) {
                return -1;
            }
            return major * 10 + v.get(JAVA_INT, 0);
        }
    }

    /** A device info value of {@code bytes} (4: cl_uint, 8: cl_ulong / size_t / bitfield). */
    private static long deviceLong(Fn f, MemorySegment device, int param, int bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(8);
            check(call(f.getDeviceInfo, device, param, (long) bytes, v, MemorySegment.NULL),
                    "clGetDeviceInfo(0x" + Integer.toHexString(param) + ")");
            return bytes == 4 ? Integer.toUnsignedLong(v.get(JAVA_INT, 0)) : v.get(JAVA_LONG, 0);
        }
    }

    /** The device's extensions as the driver lists them (space-separated names such as cl_khr_fp64). */
    public static String extensions(ClDevice device) {
        return deviceString(fn(), device.id(), CL_DEVICE_EXTENSIONS);
    }

    /** Whether the device lists {@code extension} (e.g. cl_khr_fp64) among its extensions. */
    public static boolean hasExtension(ClDevice device, String extension) {
        return java.util.Arrays.asList(extensions(device).strip().split("\\s+")).contains(extension);
    }

    private static String deviceString(Fn f, MemorySegment device, int param) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment size = arena.allocate(JAVA_LONG);
            check(call(f.getDeviceInfo, device, param, 0L, MemorySegment.NULL, size), "clGetDeviceInfo");
            MemorySegment s = arena.allocate(size.get(JAVA_LONG, 0) + 1);
            check(call(f.getDeviceInfo, device, param, size.get(JAVA_LONG, 0), s, MemorySegment.NULL),
                    "clGetDeviceInfo");
            return s.getString(0, StandardCharsets.UTF_8);
        }
    }

    private static String platformString(Fn f, MemorySegment platform, int param) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment size = arena.allocate(JAVA_LONG);
            check(call(f.getPlatformInfo, platform, param, 0L, MemorySegment.NULL, size), "clGetPlatformInfo");
            MemorySegment s = arena.allocate(size.get(JAVA_LONG, 0) + 1);
            check(call(f.getPlatformInfo, platform, param, size.get(JAVA_LONG, 0), s, MemorySegment.NULL),
                    "clGetPlatformInfo");
            return s.getString(0, StandardCharsets.UTF_8);
        }
    }

    /**
     * A device by the selector rules of {@code OpenClDevices.select}: empty/{@code auto} the first GPU else the
     * first device; {@code cpu}/{@code gpu}/{@code accelerator} the first of that kind; digits an index; anything
     * else the first device whose name or platform vendor contains it, ignoring case.
     */
    public static ClDevice select(String selector) {
        List<ClDevice> devices = devices();
        if (devices.isEmpty()) {
            throw new OpenClException("no OpenCL device found; " + INSTALL_HINT);
        }
        String s = selector == null ? "" : selector.strip().toLowerCase(Locale.ROOT);
        ClDevice chosen = switch (s) {
            case "", "auto" -> {
                ClDevice gpu = first(devices, ClDevice.Kind.GPU);
                yield gpu != null ? gpu : devices.getFirst();
            }
            case "cpu" -> first(devices, ClDevice.Kind.CPU);
            case "gpu" -> first(devices, ClDevice.Kind.GPU);
            case "accelerator", "acc" -> first(devices, ClDevice.Kind.ACC);
            default -> s.chars().allMatch(Character::isDigit) ? byIndex(devices, s) : byName(devices, s);
        };
        if (chosen == null) {
            List<String> all = new ArrayList<>();
            for (int i = 0; i < devices.size(); i++) {
                all.add(i + ": " + devices.get(i));
            }
            throw new OpenClException("no OpenCL device matches --device '" + selector + "'; devices: "
                    + String.join("; ", all));
        }
        return chosen;
    }

    /**
     * The device with this native cl_device_id (Aparapi's {@code OpenCLDevice.getDeviceId()} holds it), else
     * the one at the same place in the list with the same name.
     */
    public static ClDevice byHandle(long deviceId, String name) {
        List<ClDevice> devices = devices();
        for (ClDevice d : devices) {
            if (d.id().address() == deviceId) {
                return d;
            }
        }
        for (ClDevice d : devices) {
            if (d.name().strip().equals(name.strip())) {
                return d;
            }
        }
        throw new OpenClException("no OpenCL device with id 0x" + Long.toHexString(deviceId) + " or name '" + name
                + "'; devices: " + devices);
    }

    private static ClDevice first(List<ClDevice> devices, ClDevice.Kind kind) {
        return devices.stream().filter(d -> d.kind() == kind).findFirst().orElse(null);
    }

    private static ClDevice byIndex(List<ClDevice> devices, String digits) {
        try {
            int index = Integer.parseInt(digits);
            return index < devices.size() ? devices.get(index) : null;
        } catch (NumberFormatException e) {
            return null;
        }
    }

    private static ClDevice byName(List<ClDevice> devices, String needle) {
        for (ClDevice d : devices) {
            if (d.name().toLowerCase(Locale.ROOT).contains(needle)
                    || (d.platformVendor() != null && d.platformVendor().toLowerCase(Locale.ROOT).contains(needle))) {
                return d;
            }
        }
        return null;
    }
}
