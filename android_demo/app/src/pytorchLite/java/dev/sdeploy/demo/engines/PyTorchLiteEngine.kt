package dev.sdeploy.demo.engines

import dev.sdeploy.demo.core.EngineKind
import dev.sdeploy.demo.core.TensorInput
import org.pytorch.IValue
import org.pytorch.LiteModuleLoader
import org.pytorch.Module
import org.pytorch.Tensor
import java.io.File

/** model.ptl on the PyTorch lite interpreter (org.pytorch:pytorch_android_lite, bytecode <= 8). */
class PyTorchLiteEngine(model: File) : Engine {
    private val module: Module = LiteModuleLoader.load(model.absolutePath)

    override fun run(input: TensorInput): FloatArray {
        val bytes = input.bytes
        val tensor = if (bytes != null) Tensor.fromBlobUnsigned(bytes, input.shape) else Tensor.fromBlob(input.floats!!, input.shape)
        return module.forward(IValue.from(tensor)).toTensor().dataAsFloatArray
    }

    override fun close() = module.destroy()
}

/** The engine of the `pytorchLite` build variant: not publishable on Google Play (4 KB-aligned native libraries). */
internal object BuiltInEngine {
    val kind = EngineKind.PYTORCH_LITE
    const val runtime = "pytorch_android_lite 1.13.1" // keep in step with app/build.gradle.kts
    const val accelerator = "CPU"

    fun open(model: File): Engine = PyTorchLiteEngine(model)
}
