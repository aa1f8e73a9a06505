package io.stepstream.actors;

/**
 * SparseD attention for a diffusion request, as the client sent it: present means SparseD, and a null field takes
 * its default (see {@link StepStream#generate}).
 *
 * @param skip      fraction of the steps that run dense before the pattern is built, in [0, 1] (default 0.2)
 * @param select    fraction of key blocks each query block keeps, in (0, 1] (default 0.3; 1 is exactly dense)
 * @param blockSize tokens per query and key block, 1 .. the canvas length (default
 *                  {@link StepStream#defaultSparseDBlockSize})
 */
public record SparseDOptions(Double skip, Double select, Integer blockSize) {
    /** SparseD with every setting at its default. */
    public static final SparseDOptions DEFAULTS = new SparseDOptions(null, null, null);
}
