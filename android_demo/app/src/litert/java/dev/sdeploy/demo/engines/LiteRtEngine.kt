package dev.sdeploy.demo.engines

import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.TensorBuffer
import dev.sdeploy.demo.core.EngineKind
import dev.sdeploy.demo.core.TensorInput
import java.io.File

/**
 * model.tflite on LiteRT's CompiledModel API (com.google.ai.edge.litert:litert), on the CPU
 * (XNNPACK). A uint8 `pixels` input is written with writeInt8, which copies the bytes as they are.
 */
class LiteRtEngine(model: File) : Engine {
    private val compiled: CompiledModel = CompiledModel.create(model.absolutePath, CompiledModel.Options(Accelerator.CPU))
    private val inputs: List<TensorBuffer> = compiled.createInputBuffers()
    private val outputs: List<TensorBuffer> = compiled.createOutputBuffers()

    init {
        check(inputs.size == 1 && outputs.isNotEmpty()) { "model.tflite has ${inputs.size} inputs and ${outputs.size} outputs; expected 1 and 1" }
    }

    override fun run(input: TensorInput): FloatArray {
        val bytes = input.bytes
        if (bytes != null) inputs[0].writeInt8(bytes) else inputs[0].writeFloat(input.floats!!)
        compiled.run(inputs, outputs)
        return outputs[0].readFloat()
    }

    override fun close() {
        (inputs + outputs).forEach { it.close() }
        compiled.close()
    }
}

/** The engine of the `litert` build variant. */
internal object BuiltInEngine {
    val kind = EngineKind.LITERT
    const val runtime = "litert 2.3.0" // keep in step with app/build.gradle.kts
    const val accelerator = "CPU (XNNPACK)"

    fun open(model: File): Engine = LiteRtEngine(model)
}
