package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

import java.util.Locale

/** One of the best classes: its index, label and softmax probability. */
data class Prediction(val index: Int, val label: String, val probability: Double)

/** Softmax and top-k exactly as shufflenet_deploy/predict.py (`softmax`, `top_k`). */
object TopK {
    /** Softmax in float64 after subtracting the maximum. */
    fun softmax(logits: DoubleArray): DoubleArray {
        if (logits.isEmpty()) return DoubleArray(0)
        var max = logits[0]
        for (v in logits) if (v > max) max = v
        val out = DoubleArray(logits.size)
        var sum = 0.0
        for (i in logits.indices) {
            out[i] = Math.exp(logits[i] - max)
            sum += out[i]
        }
        for (i in out.indices) out[i] = out[i] / sum
        return out
    }

    /** Softmax of float32 logits; like numpy, the maximum is subtracted in float32 first. */
    fun softmax(logits: FloatArray): DoubleArray {
        if (logits.isEmpty()) return DoubleArray(0)
        var max = logits[0]
        for (v in logits) if (v > max) max = v
        return softmax(DoubleArray(logits.size) { (logits[it] - max).toDouble() })
    }

    /** Indices of the [k] largest values, descending; equal values keep the lower index first; NaN last. */
    fun topIndices(values: DoubleArray, k: Int): IntArray {
        val order = (0 until values.size).sortedWith(Comparator { a, b ->
            val x = values[a]
            val y = values[b]
            when {
                x.isNaN() && y.isNaN() -> a.compareTo(b)
                x.isNaN() -> 1
                y.isNaN() -> -1
                x > y -> -1
                x < y -> 1
                else -> a.compareTo(b) // equal (including -0.0 == 0.0, as numpy compares)
            }
        })
        return order.take(Math.max(0, Math.min(k, values.size))).toIntArray()
    }

    /** The best [k] predictions of one logit vector, with labels. */
    fun predictions(logits: DoubleArray, labels: List<String>, k: Int = 5): List<Prediction> {
        require(labels.size == logits.size) { "the model gives ${logits.size} scores but there are ${labels.size} labels" }
        val probabilities = softmax(logits)
        return topIndices(logits, k).map { Prediction(it, labels[it], probabilities[it]) }
    }

    /**
     * [predictions] for the model's float32 output: logits get a softmax; an output that already is
     * [probabilities] (model.json output.kind `probabilities`, exported with `--softmax`) is shown as it is.
     */
    fun predictions(scores: FloatArray, labels: List<String>, k: Int = 5, probabilities: Boolean = false): List<Prediction> {
        require(labels.size == scores.size) { "the model gives ${scores.size} scores but there are ${labels.size} labels" }
        val values = DoubleArray(scores.size) { scores[it].toDouble() }
        val shown = if (probabilities) values else softmax(scores)
        return topIndices(values, k).map { Prediction(it, labels[it], shown[it]) }
    }

    /** "1. tabby cat  87.31%" lines, for the result text. */
    fun format(predictions: List<Prediction>): String {
        val width = predictions.fold(1) { acc, p -> Math.max(acc, p.label.length) }
        return predictions.mapIndexed { i, p ->
            String.format(Locale.US, "%d. %-" + width + "s %6.2f%%", i + 1, p.label, p.probability * 100)
        }.joinToString("\n")
    }
}
