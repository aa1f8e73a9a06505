package io.stepstream.gpu;

/**
 * OpenCL is missing, the asked-for device does not exist, or Aparapi did not run a kernel on the chosen
 * OpenCL device (a compile failure, a launch failure, or a silent fallback to Java threads).
 */
public class OpenClException extends RuntimeException {
    public OpenClException(String message) {
        super(message);
    }

    public OpenClException(String message, Throwable cause) {
        super(message, cause);
    }
}
