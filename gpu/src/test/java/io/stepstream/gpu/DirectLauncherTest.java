package io.stepstream.gpu;

import com.aparapi.device.OpenCLDevice;
import io.stepstream.gpu.cl.ClDevice;
import io.stepstream.gpu.cl.ClQueue;
import io.stepstream.gpu.cl.ClRuntime;
import org.junit.jupiter.api.Test;

import java.lang.reflect.Modifier;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Function;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The FFM OpenCL binding, the generated-source argument parsing and the direct launcher on their own. */
class DirectLauncherTest {
    static ClDevice clDevice() {
        OpenCLDevice d = OpenClTestSupport.device();
        return ClRuntime.byHandle(d.getDeviceId(), d.getName());
    }

    @Test
    void selectorsPickTheDeviceAparapiPicks() {
        List<ClDevice> ours = ClRuntime.devices();
        List<OpenCLDevice> aparapi = OpenClDevices.list();
        assertEquals(aparapi.size(), ours.size(), "device lists: " + ours + " vs " + aparapi);
        for (int i = 0; i < ours.size(); i++) {
            assertEquals(aparapi.get(i).getName().strip(), ours.get(i).name().strip(), "device " + i);
            assertEquals(aparapi.get(i).getDeviceId(), ours.get(i).id().address(), "device " + i + " handle");
            assertEquals(aparapi.get(i).getMaxWorkGroupSize(), ours.get(i).maxWorkGroupSize());
            assertEquals(aparapi.get(i).getLocalMemSize(), ours.get(i).localMemBytes());
        }
        String first = aparapi.getFirst().getName().strip();
        for (String selector : List.of("auto", "", "0", aparapi.getFirst().getType().name().toLowerCase(),
                first.substring(0, Math.min(6, first.length())).toUpperCase(), OpenClTestSupport.SELECTOR)) {
            assertEquals(OpenClDevices.select(selector).getName().strip(), ClRuntime.select(selector).name().strip(),
                    "selector '" + selector + "'");
        }
        assertEquals(OpenClTestSupport.device().getName().strip(), clDevice().name().strip());
    }

    @Test
    void noSuchDeviceAndABuildFailureAreClearOpenClExceptions() {
        OpenClException e = assertThrows(OpenClException.class, () -> ClRuntime.select("no-such-device-xyz"));
        assertTrue(e.getMessage().contains("no-such-device-xyz") && e.getMessage().contains(clDevice().name().strip()),
                e.getMessage());
        assertThrows(OpenClException.class, () -> ClRuntime.select(Integer.toString(ClRuntime.devices().size())));
        try (ClQueue q = new ClQueue(clDevice())) {
            e = assertThrows(OpenClException.class,
                    () -> q.buildProgram("__kernel void run(__global float *x) { x[0] = undefined_name; }"));
            assertTrue(e.getMessage().contains("clBuildProgram") && e.getMessage().contains("CL_BUILD_PROGRAM_FAILURE")
                    && e.getMessage().contains("undefined_name"), e.getMessage());
            var program = q.buildProgram("__kernel void run(__global float *x) { x[get_global_id(0)] = 1.0f; }");
            e = assertThrows(OpenClException.class, () -> q.createKernel(program, "nope"));
            assertTrue(e.getMessage().contains("clCreateKernel(nope)") && e.getMessage().contains("CL_INVALID_KERNEL_NAME"),
                    e.getMessage());
            var kernel = q.createKernel(program, "run");
            var buffer = q.createBuffer(64 * Float.BYTES);
            q.setArgBuffer(kernel, 0, buffer);
            // 64 work items in groups of 48 is not a valid NDRange: the error names the call and the reason.
            e = assertThrows(OpenClException.class, () -> q.enqueue(kernel, 64, 48, java.lang.foreign.MemorySegment.NULL));
            assertTrue(e.getMessage().contains("clEnqueueNDRangeKernel") && e.getMessage().contains("CL_INVALID_"),
                    e.getMessage());
        }
        assertEquals("CL_OUT_OF_RESOURCES", ClRuntime.errorName(-5));
        // A kernel Aparapi cannot translate never reaches the device.
        UntranslatableKernel bad = new UntranslatableKernel();
        bad.out = new long[64];
        e = assertThrows(OpenClException.class, () -> new DirectLauncher(bad, clDevice()));
        assertTrue(e.getMessage().contains("UntranslatableKernel"), e.getMessage());
    }

    @Test
    void timestampsSwitchQueuesInOrderAndOnlyTheTimedQueueTimesEvents() {
        String src = "__kernel void affine(__global int *x, int a, int b) { int i = get_global_id(0);"
                + " x[i] = x[i] * a + b; }";
        try (ClQueue q = new ClQueue(clDevice()); java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            var kernel = q.createKernel(q.buildProgram(src), "affine");
            int n = 1 << 16;
            var buffer = q.createBuffer((long) n * Integer.BYTES);
            int[] host = new Random(81).ints(n).toArray();
            q.writeBlocking(buffer, java.lang.foreign.MemorySegment.ofArray(host), (long) n * Integer.BYTES);
            q.setArgBuffer(kernel, 0, buffer);
            var event = arena.allocate(java.lang.foreign.ValueLayout.ADDRESS);
            assertEquals(ClQueue.ALWAYS_TIMESTAMPS, q.timestamps(), "a new queue records timestamps only when told to");
            // Non-commuting steps (x * a + b, int arithmetic: exact, wrapping) alternate between the queues without
            // waits in between: only the order kept across each switch gives the host's result.
            int[] expected = host.clone();
            for (int round = 0; round < 6; round++) {
                int a = 3 + 2 * round;
                int b = round % 2 == 0 ? 7 : -11;
                q.setArgInt(kernel, 1, a);
                q.setArgInt(kernel, 2, b);
                boolean timed = round % 2 == 1;
                q.timestamps(timed);
                assertEquals(timed || ClQueue.ALWAYS_TIMESTAMPS, q.timestamps());
                q.enqueue(kernel, n, 64, timed ? event : java.lang.foreign.MemorySegment.NULL);
                if (timed) {
                    q.finish();
                    var e = event.get(java.lang.foreign.ValueLayout.ADDRESS, 0);
                    long[] se = q.eventStartEnd(e);
                    q.releaseEvent(e);
                    assertTrue(se[0] > 0 && se[1] >= se[0], "event start/end " + se[0] + " / " + se[1]);
                }
                for (int i = 0; i < n; i++) {
                    expected[i] = expected[i] * a + b;
                }
            }
            if (!ClQueue.ALWAYS_TIMESTAMPS) {
                q.timestamps(false);
                q.enqueue(kernel, n, 64, event);
                q.finish();
                var e = event.get(java.lang.foreign.ValueLayout.ADDRESS, 0);
                OpenClException noTimes = assertThrows(OpenClException.class, () -> q.eventStartEnd(e));
                assertTrue(noTimes.getMessage().contains("CL_PROFILING_INFO_NOT_AVAILABLE"), noTimes.getMessage());
                q.releaseEvent(e);
                for (int i = 0; i < n; i++) {
                    expected[i] = expected[i] * 13 + -11;
                }
            }
            int[] got = new int[n];
            q.readBlocking(buffer, java.lang.foreign.MemorySegment.ofArray(got), (long) n * Integer.BYTES);
            assertArrayEquals(expected, got);
        }
    }

    @Test
    void llama2KernelArgumentsAreParsedAndEachHasAFieldOfItsType() {
        Llama2Kernel k = new Llama2Kernel();
        String source = AparapiSource.generate(k);
        List<AparapiSource.Arg> args = AparapiSource.parseRunArgs(source);
        Map<String, AparapiSource.Arg> byName = args.stream().collect(Collectors.toMap(AparapiSource.Arg::name,
                Function.identity()));
        assertEquals(args.size(), byName.size(), "argument names are unique");
        for (int i = 0; i < args.size(); i++) {
            assertEquals(i, args.get(i).index());
        }
        AparapiSource.Arg pass = byName.get("passid");
        assertNotNull(pass, "passid argument");
        assertEquals(new AparapiSource.Arg(pass.index(), AparapiSource.Space.PRIVATE, "int", false, "passid"), pass);
        assertEquals(AparapiSource.Space.LOCAL, byName.get("red").space());
        assertEquals("float", byName.get("red").type());
        assertEquals(new AparapiSource.Arg(byName.get("wqH").index(), AparapiSource.Space.GLOBAL, "unsigned short",
                true, "wqH"), byName.get("wqH"));
        assertEquals("char", byName.get("wqQ").type());
        assertEquals(new AparapiSource.Arg(byName.get("eps").index(), AparapiSource.Space.PRIVATE, "float", false,
                "eps"), byName.get("eps"));
        assertTrue(byName.get("passOp").pointer() && byName.get("passOp").type().equals("int"));
        // Every argument but passid is an instance field of the kernel (Aparapi passes the fields run() reaches;
        // static finals are inlined), and the fields the step kernel must see are among them.
        var fields = java.util.Arrays.stream(Llama2Kernel.class.getDeclaredFields())
                .filter(f -> !Modifier.isStatic(f.getModifiers())).map(java.lang.reflect.Field::getName)
                .collect(Collectors.toSet());
        for (AparapiSource.Arg a : args) {
            assertTrue(a.name().equals("passid") || fields.contains(a.name()), a.name() + " is not a field");
        }
        for (String needed : List.of("passOp", "passLayer", "tokens", "logitRows", "logitRow", "entryLen", "x", "kv",
                "logits", "wq", "red")) {
            assertTrue(byName.containsKey(needed), needed + " is not an argument");
        }
        assertThrows(OpenClException.class, () -> AparapiSource.parseRunArgs("__kernel void other(int a){}"));
        assertThrows(OpenClException.class, () -> AparapiSource.parseRunArgs("__kernel void run(int *a){}"));
    }

    @Test
    void anAxpyRunsItsPassesOnTheDeviceWithArrayLengthsAndNewArrays() {
        AxpyKernel k = new AxpyKernel();
        Random random = new Random(5);
        k.a = 0.75f;
        k.x = new float[1000];
        k.y = new float[1000];
        for (int i = 0; i < 1000; i++) {
            k.x[i] = random.nextFloat() - 0.5f;
            k.y[i] = random.nextFloat() - 0.5f;
        }
        DirectLauncher launcher = new DirectLauncher(k, clDevice());
        try {
            assertTrue(launcher.args().stream().anyMatch(a -> a.name().equals("x__javaArrayLength")),
                    launcher.source());
            float[] expected = new float[1000];
            for (int i = 0; i < 1000; i++) {
                expected[i] = k.y[i];
                for (int p = 0; p < 3; p++) {
                    expected[i] += 0.75f * k.x[i];
                }
            }
            launcher.put(k.y);
            launcher.launch(1024, 64, 3);
            launcher.get(k.y);
            assertArrayEquals(expected, k.y, 1e-6f); // the device may fuse a*x+y
            assertEquals(1, launcher.launches());
            assertEquals(3, launcher.passes());
            // A changed primitive and a new, shorter array on the next launch (the length argument follows it).
            k.a = -2f;
            k.x = new float[100];
            k.y = new float[100];
            for (int i = 0; i < 100; i++) {
                k.x[i] = random.nextFloat();
                k.y[i] = random.nextFloat();
                expected[i] = k.y[i] + -2f * k.x[i];
            }
            launcher.launch(128, 64, 1);
            launcher.get(k.y);
            assertArrayEquals(java.util.Arrays.copyOf(expected, 100), k.y, 1e-6f);
            // Explicit mode: host changes reach the device only through put.
            float before = k.y[0];
            k.y[0] = 1000f;
            launcher.launch(128, 64, 1);
            launcher.get(k.y);
            assertEquals(before + -2f * k.x[0], k.y[0], 1e-6f);
            assertThrows(IllegalArgumentException.class, () -> launcher.launch(100, 64, 1));
        } finally {
            launcher.dispose();
        }
    }

    @Test
    void profilingTimesEveryPass() {
        AxpyKernel k = new AxpyKernel();
        k.a = 1f;
        k.x = new float[4096];
        k.y = new float[4096];
        DirectLauncher launcher = new DirectLauncher(k, clDevice());
        try {
            launcher.profile(true);
            // Passes 0, 2, 4 under label 3, passes 1, 3 under label 7: the labels split the kernel sum.
            launcher.passLabels(p -> p % 2 == 0 ? 3 : 7);
            launcher.launch(4096, 64, 5);
            launcher.get(k.y);
            long[] t = launcher.profiledNanos();
            assertEquals(5, t[2]);
            assertTrue(t[0] > 0 && t[1] > 0, java.util.Arrays.toString(t));
            long[] byLabel = launcher.profiledLabelNanos();
            assertTrue(byLabel[3] > 0 && byLabel[7] > 0, java.util.Arrays.toString(byLabel));
            assertEquals(t[0], byLabel[3] + byLabel[7], java.util.Arrays.toString(byLabel));
            launcher.profile(false);
            launcher.launch(4096, 64, 2);
            launcher.get(k.y);
            assertEquals(5, launcher.profiledNanos()[2]);
        } finally {
            launcher.dispose();
        }
    }
}
