package io.stepstream.gpu;

import com.aparapi.Kernel;
import com.aparapi.internal.model.ClassModel;
import com.aparapi.internal.writer.KernelWriter;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The OpenCL C that Aparapi writes for a kernel class (the same translator Aparapi's own dispatch compiles),
 * and the argument list of its {@code __kernel void run(...)}: Aparapi passes every field {@code run()}
 * reaches, one argument each, in an order of its own, plus {@code passid} and, for arrays whose
 * {@code .length} the kernel reads, a {@code <name>__javaArrayLength} int. Set
 * {@code -Dstepstream.opencl.showSource=true} to print the source when a direct launcher is built.
 */
public final class AparapiSource {
    /** How an argument reaches the kernel. */
    public enum Space { GLOBAL, LOCAL, CONSTANT, PRIVATE }

    /** One parameter of {@code run}: its address space, C element type, whether a pointer, and name. */
    public record Arg(int index, Space space, String type, boolean pointer, String name) {
        /** The Java field this argument comes from ({@code x} for {@code x__javaArrayLength}); null for passid. */
        public String fieldName() {
            if (name.equals("passid")) {
                return null;
            }
            int at = name.indexOf("__java");
            return at < 0 ? name : name.substring(0, at);
        }

        public boolean isArrayLength() {
            return name.endsWith("__javaArrayLength");
        }
    }

    private static final Pattern RUN = Pattern.compile("__kernel\\s+void\\s+run\\s*\\(([^)]*)\\)");
    private static final Pattern PARAM = Pattern.compile(
            "^(?:(__global|__local|__constant)\\s+)?(?:const\\s+)?([A-Za-z_][A-Za-z0-9_ ]*?)\\s*(\\*)?\\s*"
                    + "(?:restrict\\s+)?([A-Za-z_][A-Za-z0-9_]*)$");

    private AparapiSource() {
    }

    /** The OpenCL C Aparapi generates for this kernel object's class (its fields' current values shape it). */
    public static String generate(Kernel kernel) {
        try {
            ClassModel model = ClassModel.createClassModel(kernel.getClass());
            return KernelWriter.writeToString(model.getEntrypoint("run", kernel));
        } catch (Exception | LinkageError e) {
            throw new OpenClException("Aparapi cannot translate " + kernel.getClass().getSimpleName()
                    + " to OpenCL: " + e, e);
        }
    }

    /** The parameters of {@code __kernel void run(...)} in {@code source}, in order. */
    public static List<Arg> parseRunArgs(String source) {
        Matcher m = RUN.matcher(source);
        if (!m.find()) {
            throw new OpenClException("no '__kernel void run(...)' in the generated OpenCL source");
        }
        List<Arg> args = new ArrayList<>();
        String list = m.group(1).strip();
        if (list.isEmpty()) {
            return args;
        }
        for (String raw : list.split(",")) {
            String p = raw.strip().replaceAll("\\s+", " ");
            Matcher pm = PARAM.matcher(p);
            if (!pm.matches()) {
                throw new OpenClException("cannot parse kernel parameter '" + p + "' of the generated run()");
            }
            Space space = pm.group(1) == null ? Space.PRIVATE : switch (pm.group(1)) {
                case "__global" -> Space.GLOBAL;
                case "__local" -> Space.LOCAL;
                default -> Space.CONSTANT;
            };
            boolean pointer = pm.group(3) != null;
            if (pointer == (space == Space.PRIVATE)) {
                throw new OpenClException("kernel parameter '" + p + "': a pointer needs an address space and a"
                        + " scalar must not have one");
            }
            args.add(new Arg(args.size(), space, pm.group(2).strip(), pointer, pm.group(4)));
        }
        return args;
    }

    /** Bytes of one element of an OpenCL C scalar type Aparapi emits for a Java primitive. */
    static int elementBytes(String cType) {
        return switch (cType) {
            case "char", "unsigned char", "uchar" -> 1;
            case "short", "unsigned short", "ushort" -> 2;
            case "int", "unsigned int", "uint", "float" -> 4;
            case "long", "unsigned long", "ulong", "double" -> 8;
            default -> throw new OpenClException("unsupported kernel argument type '" + cType + "'");
        };
    }
}
