package dev.sdeploy.demo.engines

import dev.sdeploy.demo.core.ModelInfo
import dev.sdeploy.demo.core.TensorInput
import dev.sdeploy.demo.core.UnsupportedFormatException
import dev.sdeploy.demo.core.wrongVariantMessage
import java.io.Closeable
import java.io.File

/**
 * One loaded model on one runtime: takes the input tensor model.json describes (float32 or uint8,
 * NCHW or NHWC, already laid out by core/Preprocess.kt) and returns the model's output scores.
 * Not thread-safe: the ViewModel calls it from one coroutine at a time.
 */
interface Engine : Closeable {
    fun run(input: TensorInput): FloatArray
}

/** Opens the engine model.json's format asks for, if this build variant contains it. */
object Engines {
    /** For the device report: e.g. "executorch-android 1.5.1", "XNNPACK (CPU)". */
    val runtime: String get() = BuiltInEngine.runtime
    val accelerator: String get() = BuiltInEngine.accelerator

    fun open(info: ModelInfo, model: File): Engine {
        val wanted = info.engineKind() // a clear UnsupportedFormatException for an unknown format
        if (wanted != BuiltInEngine.kind) throw UnsupportedFormatException(wrongVariantMessage(wanted, BuiltInEngine.kind, info.format))
        return BuiltInEngine.open(model)
    }
}
