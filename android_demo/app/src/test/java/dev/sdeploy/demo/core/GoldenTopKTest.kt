package dev.sdeploy.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import java.util.Locale

/** Softmax and top-k against Python's `predict.softmax` / `predict.top_k`. */
class GoldenTopKTest {
    @Test
    fun topKMatchesPython() {
        val cases = Golden.objects(Golden.load().array("topk"), "topk")
        assertTrue("golden.json has no top-k cases", cases.isNotEmpty())
        var worst = 0.0
        for ((n, case) in cases.withIndex()) {
            val logits = Golden.doubles64(case.string("logits_f64le_b64"))
            val k = case.int("k")
            val labels = List(logits.size) { "class_$it" }
            val predictions = TopK.predictions(logits, labels, k)
            val expectedIndices = case.array("indices").map { JsonObject.asLong(it)!!.toInt() }
            val expectedProbabilities = case.doubles("probabilities")
            assertEquals("case $n (${logits.size} logits): top-$k indices", expectedIndices, predictions.map { it.index })
            for (i in predictions.indices) {
                val diff = Math.abs(predictions[i].probability - expectedProbabilities[i])
                worst = Math.max(worst, diff)
                assertTrue("case $n rank $i: probability ${predictions[i].probability} vs Python ${expectedProbabilities[i]}",
                    diff <= Golden.PROBABILITY_TOLERANCE)
                assertEquals("class_${expectedIndices[i]}", predictions[i].label)
            }
            if (case.has("softmax_f64le_b64")) {
                val expected = Golden.doubles64(case.string("softmax_f64le_b64"))
                val actual = TopK.softmax(logits)
                assertEquals(expected.size, actual.size)
                for (i in expected.indices) {
                    val diff = Math.abs(actual[i] - expected[i])
                    worst = Math.max(worst, diff)
                    assertTrue("case $n softmax[$i]: ${actual[i]} vs Python ${expected[i]}", diff <= Golden.PROBABILITY_TOLERANCE)
                }
            }
        }
        println(String.format(Locale.US, "topk: %d cases, max probability |diff| %.3e", cases.size, worst))
    }

    @Test
    fun tiesKeepTheLowerIndexFirst() {
        val values = doubleArrayOf(1.0, 3.0, 2.0, 3.0, -0.0, 0.0, Double.NaN, 3.0)
        assertArrayEquals(intArrayOf(1, 3, 7, 2, 0, 4, 5, 6), TopK.topIndices(values, 10))
        assertArrayEquals(intArrayOf(1, 3), TopK.topIndices(values, 2))
        assertArrayEquals(intArrayOf(), TopK.topIndices(values, 0))
    }

    @Test
    fun float32SoftmaxSumsToOne() {
        val probabilities = TopK.softmax(floatArrayOf(1000f, 999f, -5f))
        assertEquals(1.0, probabilities.sum(), 1e-12)
        assertTrue(probabilities[0] > probabilities[1])
    }

    @Test
    fun formatShowsPercentages() {
        val text = TopK.format(listOf(Prediction(3, "tabby", 0.8731), Prediction(9, "tiger cat", 0.05)))
        assertEquals("1. tabby      87.31%\n2. tiger cat   5.00%", text)
    }

    @Test
    fun probabilitiesAreShownWithoutAnotherSoftmax() {
        val probabilities = floatArrayOf(0.1f, 0.6f, 0.3f)
        val shown = TopK.predictions(probabilities, listOf("a", "b", "c"), 2, probabilities = true)
        assertEquals(listOf(1, 2), shown.map { it.index })
        assertEquals(0.6f.toDouble(), shown[0].probability, 0.0)
        assertEquals(0.3f.toDouble(), shown[1].probability, 0.0)
        val asLogits = TopK.predictions(probabilities, listOf("a", "b", "c"), 2)
        assertEquals(TopK.softmax(probabilities)[1], asLogits[0].probability, 0.0)
    }
}
