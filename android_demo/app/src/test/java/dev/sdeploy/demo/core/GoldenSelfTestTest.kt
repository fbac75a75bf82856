package dev.sdeploy.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import java.io.ByteArrayInputStream
import java.io.File
import java.util.Base64
import java.util.Locale

/** The self-test comparison against Python's `selftest.compare` (golden.json "selftest_compare"), selftest.json and the report. */
class GoldenSelfTestTest {
    private fun rows(list: List<Any?>): List<DoubleArray> = list.map { row -> (row as List<*>).map { (it as Number).toDouble() }.toDoubleArray() }

    @Test
    fun comparisonMatchesPythonOnEveryGoldenCase() {
        val cases = Golden.objects(Golden.load().array("selftest_compare"), "selftest_compare")
        assertTrue("golden.json has only ${cases.size} selftest_compare cases", cases.size >= 5)
        val metrics = listOf("max_abs_error", "max_rel_error", "min_cosine", "top1_agreement", "decisive_top1_agreement")
        val failures = ArrayList<String>()
        val verdicts = LinkedHashMap<String, String>()
        var worst = 0.0
        for (case in cases) {
            val name = case.string("name")
            val tolerance = Tolerance.fromJson(case.obj("tolerance"))
            val result = SelfTest.compare(rows(case.array("outputs")), rows(case.array("expected")), tolerance)
            val expected = case.obj("result")
            val actual = mapOf(
                "max_abs_error" to result.maxAbsError, "max_rel_error" to result.maxRelError, "min_cosine" to result.minCosine,
                "top1_agreement" to result.top1Agreement, "decisive_top1_agreement" to result.decisiveTop1Agreement
            )
            var caseWorst = 0.0
            for (metric in metrics) {
                val diff = Math.abs(actual[metric]!! - expected.double(metric))
                caseWorst = if (diff.isNaN()) Double.POSITIVE_INFINITY else Math.max(caseWorst, diff)
                if (!(diff <= 1e-12)) failures.add(String.format(Locale.US, "%s: %s kotlin %.17g, python %.17g", name, metric, actual[metric], expected.double(metric)))
            }
            if (result.verdict != expected.string("verdict")) failures.add("$name: verdict ${result.verdict}, python ${expected.string("verdict")}")
            verdicts[name] = result.verdict
            worst = Math.max(worst, caseWorst)
            println(String.format(Locale.US, "selftest_compare %-15s %s max |diff| %.3e", name, result.verdict, caseWorst))
        }
        assertTrue("the self-test comparison differs from Python's:\n" + failures.joinToString("\n"), failures.isEmpty())
        assertTrue("golden cases must include passes and failures: $verdicts", verdicts.values.toSet() == setOf("PASS", "FAIL"))
        println(String.format(Locale.US, "selftest_compare: %d cases, max metric |diff| %.3e", cases.size, worst))
    }

    @Test
    fun medianAndArgmaxFollowPython() {
        assertEquals(2.0, SelfTest.median(listOf(3.0, 1.0, 2.0)), 0.0)
        assertEquals(2.5, SelfTest.median(listOf(4.0, 1.0, 3.0, 2.0)), 0.0)
        assertEquals(7.0, SelfTest.median(listOf(7.0)), 0.0)
        assertEquals(1, SelfTest.argmax(doubleArrayOf(1.0, 5.0, 5.0)))
        assertEquals(2, SelfTest.argmax(doubleArrayOf(1.0, 5.0, Double.NaN)))
        assertEquals(0.0, SelfTest.top2Gap(doubleArrayOf(5.0, 1.0, 5.0)), 0.0)
        assertEquals(Double.POSITIVE_INFINITY, SelfTest.top2Gap(doubleArrayOf(3.0)), 0.0)
        // A NaN output can never pass.
        val nan = SelfTest.compare(listOf(doubleArrayOf(1.0, Double.NaN)), listOf(doubleArrayOf(1.0, 2.0)), Tolerance(1e9, -1.0, 0.0))
        assertEquals(Comparison.FAIL, nan.verdict)
    }

    private fun selftestJson(png: ByteArray, sha: String, expected: List<DoubleArray>): String {
        val images = expected.mapIndexed { i, row ->
            linkedMapOf<String, Any?>("name" to "img-$i", "kind" to "synthetic", "width" to 3, "height" to 2,
                "png_base64" to Base64.getEncoder().encodeToString(png), "png_sha256" to sha,
                "expected" to row, "expected_top1" to SelfTest.argmax(row))
        }
        return JsonWriter.write(linkedMapOf<String, Any?>(
            "schema" to "sdeploy-selftest/1", "arch" to "v2_x0_5", "artifact" to "executorch", "format" to "pte",
            "precision" to "fp32", "model_file" to "model.pte", "sha256" to "ab".repeat(32), "output_kind" to "logits",
            "tolerance" to linkedMapOf("atol" to 0.05, "min_cosine" to 0.999, "decisive_margin" to 0.1),
            "runs" to linkedMapOf("warmup" to 3, "timed" to 10), "images" to images))
    }

    @Test
    fun selftestJsonParsesAndCorruptionIsRefused() {
        val png = byteArrayOf(-119, 80, 78, 71, 1, 2, 3)
        val sha = Sha256.hex(ByteArrayInputStream(png))
        val expected = listOf(doubleArrayOf(0.5, 2.0, -1.0), doubleArrayOf(3.0, 0.0, 0.25))
        val spec = SelfTestSpec.parse(selftestJson(png, sha, expected))
        assertEquals("executorch", spec.artifact)
        assertEquals(Tolerance(0.05, 0.999, 0.1), spec.tolerance)
        assertEquals(3, spec.warmupRuns)
        assertEquals(10, spec.timedRuns)
        assertEquals(2, spec.images.size)
        assertTrue(png.contentEquals(spec.images[0].png))
        assertEquals(expected[1].toList(), spec.images[1].expected.toList())
        assertEquals(0, spec.images[1].expectedTop1)

        try {
            SelfTestSpec.parse(selftestJson(png, "00".repeat(32), expected))
            fail("a PNG that does not match its sha256 was accepted")
        } catch (e: JsonException) {
            assertTrue(e.message, (e.message ?: "").contains("png_sha256"))
        }
        val info = ModelInfo.parse(ModelJsonTest.MINIMAL_V2.replace("\"num_classes\": 10", "\"num_classes\": 3, \"sha256\": \"${"cd".repeat(32)}\"")
            .replace("[\"batch\", 10]", "[\"batch\", 3]"))
        try {
            spec.checkMatches(info)
            fail("a self-test for another model was accepted")
        } catch (e: JsonException) {
            assertTrue(e.message, (e.message ?: "").contains("another model"))
        }
        spec.checkMatches(info.copy(sha256 = "ab".repeat(32)))
    }

    @Test
    fun deviceReportRoundTripsAndErrorsAreReported() {
        val case = Golden.objects(Golden.load().array("selftest_compare"), "selftest_compare").first { it.string("name") == "small_noise" }
        val outputs = rows(case.array("outputs"))
        val expected = rows(case.array("expected"))
        val png = byteArrayOf(1, 2, 3)
        val spec = SelfTestSpec.parse(selftestJson(png, Sha256.hex(ByteArrayInputStream(png)), expected))
        val comparison = SelfTest.compare(outputs, expected, Tolerance.fromJson(case.obj("tolerance")))
        val report = DeviceReport.build(spec, DeviceReport.timestamp(1796126400000L), "ef".repeat(32), "executorch-android 1.5.1",
            "XNNPACK (CPU)", "Android 16 (API 36) / Google Pixel 8", comparison, 4.25, null, outputs)
        val text = JsonWriter.write(report)
        val back = Json.parseObject(text, "report")
        assertEquals(DeviceReport.SCHEMA, back.string("schema"))
        assertEquals("2026-12-01T12:00:00Z", back.string("created"))
        assertEquals("android", back.string("app"))
        assertEquals(spec.sha256, back.string("sha256"))
        assertEquals(comparison.verdict, back.string("verdict"))
        assertEquals(comparison.minCosine, back.double("min_cosine"), 0.0)
        assertEquals(4.25, back.double("median_ms"), 0.0)
        assertTrue(back.map.containsKey("error") && back.map["error"] == null)
        val images = back.objects("images")
        assertEquals(expected.size, images.size)
        for (i in images.indices) {
            assertEquals(outputs[i].toList(), images[i].doubles("output"))
            assertEquals(expected[i].toList(), images[i].doubles("expected"))
            assertEquals(spec.images[i].pngSha256, images[i].string("png_sha256"))
        }
        // The pytest driver re-reads this file with Python's json and recomputes the metrics with selftest.compare.
        val out = System.getenv("SDEPLOY_REPORT_OUT")
        if (out != null && out.isNotEmpty()) File(out).writeText(text, Charsets.UTF_8)

        val error = Json.parseObject(JsonWriter.write(DeviceReport.build(spec, "2026-12-01T12:00:00Z", null, "LiteRT 2.3.0", "CPU",
            "Android 16", null, null, "UnsatisfiedLinkError: dlopen failed: library \"libLiteRt.so\" not found", emptyList())), "report")
        assertEquals(Comparison.ERROR, error.string("verdict"))
        assertEquals(null, error.map["max_abs_error"])
        assertTrue(error.string("error").contains("UnsatisfiedLinkError"))
        assertEquals(0, error.array("images").size)
    }
}
