package dev.sdeploy.demo

import android.os.SystemClock
import dev.sdeploy.demo.core.OrientedImage
import dev.sdeploy.demo.core.Prediction
import dev.sdeploy.demo.core.TensorInput
import dev.sdeploy.demo.core.TopK
import dev.sdeploy.demo.engines.Engine
import dev.sdeploy.demo.engines.Engines
import java.io.Closeable

/** The bundled model on this build's engine: preprocess exactly as Python, run, top-k. Not thread-safe. */
class Classifier private constructor(val model: BundledModel, private val engine: Engine) : Closeable {
    class Result(val predictions: List<Prediction>, val preprocessMs: Double, val inferenceMs: Double)

    val info get() = model.info

    /** Decoded pixels -> the input tensor model.json describes (kind, layout, dtype). */
    fun input(image: OrientedImage): TensorInput = TensorInput.fromImage(image, info.input, info.preprocess)

    /** One engine call; the output must have one score per class. */
    fun run(input: TensorInput): FloatArray {
        val scores = engine.run(input)
        check(scores.size == info.numClasses) { "the model returned ${scores.size} values for ${info.numClasses} classes" }
        return scores
    }

    fun classify(image: OrientedImage, k: Int = 5): Result {
        val start = SystemClock.elapsedRealtimeNanos()
        val input = input(image)
        val preprocessed = SystemClock.elapsedRealtimeNanos()
        val scores = run(input)
        val done = SystemClock.elapsedRealtimeNanos()
        val predictions = TopK.predictions(scores, model.labels, k, probabilities = info.output.isProbabilities)
        return Result(predictions, (preprocessed - start) / 1e6, (done - preprocessed) / 1e6)
    }

    override fun close() = engine.close()

    companion object {
        /** The bundled model on this build's engine (a clear error if its format needs another build variant). */
        fun open(model: BundledModel): Classifier = Classifier(model, Engines.open(model.info, model.modelFile))
    }
}
