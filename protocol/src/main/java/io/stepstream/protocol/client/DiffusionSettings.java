package io.stepstream.protocol.client;

import io.stepstream.protocol.v1.DiffusionOptions;
import io.stepstream.protocol.v1.SparseDOptions;
import java.util.function.Consumer;

/**
 * The diffusion options a client puts on a {@code GenerateRequest}, as the command lines ({@code stepstream
 * generate}, the load harness) take them. A null field is left unset on the wire, so the server applies its
 * default; the server checks every value and names a bad one ({@code diffusion.steps}, {@code
 * diffusion.sparsed.select}, ...). This is the one mapping of these options to {@link DiffusionOptions}.
 *
 * @param genLength   tokens to generate
 * @param blockLength tokens per block
 * @param steps       denoising steps in all
 * @param remasking   LLaDA's remasking: low_confidence or random
 * @param threshold   Fast-dLLM's confidence threshold
 * @param sparsed     SparseD attention; null for dense
 * @param alg         Dream's filling order: origin, maskgit_plus, topk_margin or entropy
 * @param algTemp     Dream's alg_temp
 * @param eps         Dream's last timestep
 * @param cache       Fast-dLLM's KV cache: none, prefix or dual
 * @param progress    a progress event after every denoising step
 */
public record DiffusionSettings(Integer genLength, Integer blockLength, Integer steps, String remasking,
                                Double threshold, SparseD sparsed, String alg, Double algTemp, Double eps,
                                String cache, boolean progress) {

    /** SparseD attention; a null field is left to the server's default. */
    public record SparseD(Double skip, Double select, Integer blockSize) {
        public SparseDOptions toWire() {
            var sparse = SparseDOptions.newBuilder();
            setIfGiven(skip, sparse::setSkip);
            setIfGiven(select, sparse::setSelect);
            setIfGiven(blockSize, sparse::setBlockSize);
            return sparse.build();
        }
    }

    public DiffusionOptions toWire() {
        var diffusion = DiffusionOptions.newBuilder().setProgress(progress);
        setIfGiven(genLength, diffusion::setGenLength);
        setIfGiven(blockLength, diffusion::setBlockLength);
        setIfGiven(steps, diffusion::setSteps);
        setIfGiven(remasking, diffusion::setRemasking);
        setIfGiven(threshold, diffusion::setThreshold);
        setIfGiven(sparsed == null ? null : sparsed.toWire(), diffusion::setSparsed);
        setIfGiven(alg, diffusion::setAlg);
        setIfGiven(algTemp, diffusion::setAlgTemp);
        setIfGiven(eps, diffusion::setEps);
        setIfGiven(cache, diffusion::setCache);
        return diffusion.build();
    }

    /** A null option stays unset on the wire (proto3 presence), so the server applies its default. */
    private static <T> void setIfGiven(T value, Consumer<? super T> setter) {
        if (value != null) {
            setter.accept(value);
        }
    }
}
