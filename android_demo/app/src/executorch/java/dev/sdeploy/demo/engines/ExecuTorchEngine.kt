package dev.sdeploy.demo.engines

import dev.sdeploy.demo.core.EngineKind
import dev.sdeploy.demo.core.TensorInput
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import java.io.File

/** model.pte on ExecuTorch (org.pytorch:executorch-android). The XNNPACK backend inside the AAR runs the delegated graph. */
class ExecuTorchEngine(model: File) : Engine {
    // Memory-mapped rather than read into a buffer; loading "forward" here surfaces a missing
    // operator or backend now, not at the first classification.
    private val module: Module = Module.load(model.absolutePath, Module.LOAD_MODE_MMAP).also { it.loadMethod("forward") }

    override fun run(input: TensorInput): FloatArray {
        val bytes = input.bytes
        val tensor = if (bytes != null) Tensor.fromBlobUnsigned(bytes, input.shape) else Tensor.fromBlob(input.floats!!, input.shape)
        val outputs = module.forward(EValue.from(tensor))
        check(outputs.isNotEmpty()) { "the model returned no outputs" }
        return outputs[0].toTensor().dataAsFloatArray
    }

    override fun close() = module.destroy()
}

/** The engine of the `executorch` build variant (the default). */
internal object BuiltInEngine {
    val kind = EngineKind.EXECUTORCH
    const val runtime = "executorch-android 1.5.1" // keep in step with app/build.gradle.kts
    const val accelerator = "XNNPACK (CPU)"

    fun open(model: File): Engine = ExecuTorchEngine(model)
}
