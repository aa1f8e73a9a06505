/**
 * The Aparapi OpenCL backend: device selection ({@link io.stepstream.gpu.OpenClDevices}), fallback-proof
 * launches ({@link io.stepstream.gpu.KernelLauncher}) and a llama2.c model whose whole forward step is one
 * fused kernel launch with weights, activations and the paged KV cache resident on the device
 * ({@link io.stepstream.gpu.OpenClLlama2Model}).
 */
package io.stepstream.gpu;
