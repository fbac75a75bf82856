package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

import java.io.ByteArrayInputStream
import java.time.Instant
import java.time.temporal.ChronoUnit
import java.util.Base64
import java.util.Locale

/** What `sdeploy verify` would accept for this artifact (selftest.json `tolerance`). */
data class Tolerance(val atol: Double, val minCosine: Double, val decisiveMargin: Double) {
    companion object {
        fun fromJson(json: JsonObject) = Tolerance(json.double("atol"), json.double("min_cosine"), json.double("decisive_margin"))
    }
}

/** One self-test image: a full-size 8-bit RGB PNG and eager PyTorch's output for it. */
class SelfTestImage(
    val name: String,
    val kind: String,
    val width: Int,
    val height: Int,
    val png: ByteArray,
    val pngSha256: String,
    val expected: DoubleArray,
    val expectedTop1: Int
)

/** selftest.json (schema `sdeploy-selftest/1`, docs/app-protocol.md). */
class SelfTestSpec(
    val arch: String,
    val artifact: String,
    val format: String,
    val precision: String,
    val modelFile: String,
    val sha256: String,
    val outputKind: String,
    val tolerance: Tolerance,
    val warmupRuns: Int,
    val timedRuns: Int,
    val images: List<SelfTestImage>
) {
    /** The self-test must be for the model the app runs: same artifact sha256 as model.json. */
    fun checkMatches(info: ModelInfo) {
        if (info.sha256 != null && info.sha256 != sha256) {
            throw JsonException("selftest.json is for another model (sha256 ${sha256.take(12)}…, model.json has ${info.sha256.take(12)}…): re-run sdeploy bundle")
        }
        for (image in images) {
            if (image.expected.size != info.numClasses) {
                throw JsonException("selftest.json: ${image.name} has ${image.expected.size} expected values, the model has ${info.numClasses} classes")
            }
        }
    }

    companion object {
        const val SCHEMA = "sdeploy-selftest/1"

        fun parse(text: String, source: String = "selftest.json"): SelfTestSpec {
            val json = Json.parseObject(text, source)
            val schema = json.string("schema")
            if (schema != SCHEMA) throw JsonException("$source: schema is '$schema', this app reads '$SCHEMA'; re-run sdeploy bundle")
            val runs = json.obj("runs")
            val images = json.objects("images").map { image ->
                val png = try {
                    Base64.getDecoder().decode(image.string("png_base64"))
                } catch (e: IllegalArgumentException) {
                    throw JsonException("${image.where("png_base64")} is not base64: ${e.message}")
                }
                val sha = image.string("png_sha256")
                if (Sha256.hex(ByteArrayInputStream(png)) != sha) throw JsonException("${image.where("png_base64")} does not match png_sha256 (corrupted selftest.json)")
                SelfTestImage(
                    name = image.string("name"),
                    kind = image.stringOr("kind", ""),
                    width = image.int("width"),
                    height = image.int("height"),
                    png = png,
                    pngSha256 = sha,
                    expected = image.doubles("expected").toDoubleArray(),
                    expectedTop1 = image.int("expected_top1")
                )
            }
            if (images.isEmpty()) throw JsonException("$source has no images")
            val warmup = runs.int("warmup")
            val timed = runs.int("timed")
            if (warmup < 0 || timed < 1) throw JsonException("$source: runs must have warmup >= 0 and timed >= 1, got $warmup and $timed")
            return SelfTestSpec(
                arch = json.string("arch"),
                artifact = json.string("artifact"),
                format = json.string("format"),
                precision = json.stringOr("precision", "fp32"),
                modelFile = json.string("model_file"),
                sha256 = json.string("sha256"),
                outputKind = json.stringOr("output_kind", OutputSpec.LOGITS),
                tolerance = Tolerance.fromJson(json.obj("tolerance")),
                warmupRuns = warmup,
                timedRuns = timed,
                images = images
            )
        }
    }
}

/** The metrics and verdict of docs/app-protocol.md, "The comparison every app implements". */
data class Comparison(
    val verdict: String,
    val maxAbsError: Double,
    val maxRelError: Double,
    val minCosine: Double,
    val top1Agreement: Double,
    val decisiveTop1Agreement: Double
) {
    val passed: Boolean get() = verdict == PASS

    companion object {
        const val PASS = "PASS"
        const val FAIL = "FAIL"
        const val ERROR = "ERROR"
    }
}

/**
 * The self-test comparison, exactly as shufflenet_deploy.apps.selftest.compare (checked against
 * golden.json "selftest_compare" to 1e-12): float64 arithmetic, first index wins ties in argmax.
 */
object SelfTest {
    fun compare(outputs: List<DoubleArray>, expected: List<DoubleArray>, tolerance: Tolerance): Comparison {
        require(outputs.size == expected.size && expected.isNotEmpty()) { "${outputs.size} outputs for ${expected.size} expected rows" }
        for (i in expected.indices) {
            require(outputs[i].size == expected[i].size && expected[i].isNotEmpty()) {
                "image $i: ${outputs[i].size} outputs for ${expected[i].size} expected values"
            }
        }
        var maxAbs = 0.0
        var lo = Double.POSITIVE_INFINITY
        var hi = Double.NEGATIVE_INFINITY
        var minCosine = Double.POSITIVE_INFINITY
        var agree = 0
        var decisive = 0
        var decisiveAgree = 0
        for (i in expected.indices) {
            val a = outputs[i]
            val e = expected[i]
            var dot = 0.0
            var aa = 0.0
            var ee = 0.0
            for (k in e.indices) {
                maxAbs = nanMax(maxAbs, Math.abs(a[k] - e[k]))
                lo = Math.min(lo, e[k])
                hi = Math.max(hi, e[k])
                dot += a[k] * e[k]
                aa += a[k] * a[k]
                ee += e[k] * e[k]
            }
            val cosine = dot / (Math.sqrt(aa) * Math.sqrt(ee) + 1e-30)
            minCosine = if (cosine.isNaN() || minCosine.isNaN()) Double.NaN else Math.min(minCosine, cosine)
            val same = argmax(a) == argmax(e)
            if (same) agree++
            if (top2Gap(e) > tolerance.decisiveMargin) {
                decisive++
                if (same) decisiveAgree++
            }
        }
        val spread = if (hi - lo == 0.0) 1.0 else hi - lo
        val decisiveAgreement = if (decisive > 0) decisiveAgree.toDouble() / decisive else 1.0
        val passed = maxAbs <= tolerance.atol && minCosine >= tolerance.minCosine && decisiveAgreement == 1.0
        return Comparison(
            verdict = if (passed) Comparison.PASS else Comparison.FAIL,
            maxAbsError = maxAbs,
            maxRelError = maxAbs / spread,
            minCosine = minCosine,
            top1Agreement = agree.toDouble() / expected.size,
            decisiveTop1Agreement = decisiveAgreement
        )
    }

    /** numpy's argmax: the first maximum, or the first NaN if there is one. */
    fun argmax(values: DoubleArray): Int {
        var best = 0
        for (i in values.indices) {
            if (values[i].isNaN()) return i
            if (values[i] > values[best]) best = i
        }
        return best
    }

    /** Largest minus second-largest value (infinite with fewer than two classes). */
    fun top2Gap(values: DoubleArray): Double {
        if (values.size < 2) return Double.POSITIVE_INFINITY
        val sorted = values.sortedArray()
        return sorted[sorted.size - 1] - sorted[sorted.size - 2]
    }

    /** The median (mean of the middle two for an even count), as Python's statistics.median. */
    fun median(values: List<Double>): Double {
        require(values.isNotEmpty()) { "no values" }
        val sorted = values.sorted()
        val mid = sorted.size / 2
        return if (sorted.size % 2 == 1) sorted[mid] else (sorted[mid - 1] + sorted[mid]) / 2.0
    }

    private fun nanMax(a: Double, b: Double): Double = if (a.isNaN() || b.isNaN()) Double.NaN else Math.max(a, b)

    /** One line per metric for the screen. */
    fun summary(c: Comparison, images: Int, medianMs: Double?): String {
        val lines = ArrayList<String>()
        lines.add(c.verdict)
        lines.add(String.format(Locale.US, "max abs error   %.3g", c.maxAbsError))
        lines.add(String.format(Locale.US, "max rel error   %.3g", c.maxRelError))
        lines.add(String.format(Locale.US, "min cosine      %.7f", c.minCosine))
        lines.add(String.format(Locale.US, "top-1 agreement %d/%d (decisive: %.0f%%)",
            Math.round(c.top1Agreement * images), images, c.decisiveTop1Agreement * 100))
        if (medianMs != null) lines.add(String.format(Locale.US, "median latency  %.2f ms", medianMs))
        return lines.joinToString("\n")
    }
}

/** The report the Self-test action shares (schema `sdeploy-device-report/1`), for `sdeploy verify --device-report`. */
object DeviceReport {
    const val SCHEMA = "sdeploy-device-report/1"

    /** `2026-12-01T12:00:00Z` for a wall-clock time in milliseconds. */
    fun timestamp(epochMillis: Long): String = Instant.ofEpochMilli(epochMillis).truncatedTo(ChronoUnit.SECONDS).toString()

    /**
     * The report as an ordered map for [JsonWriter]. [comparison] is null (and [error] set) for an
     * ERROR verdict; [outputs] holds the app's output for each image it got to.
     */
    fun build(
        spec: SelfTestSpec,
        created: String,
        modelSha256: String?,
        runtime: String,
        accelerator: String,
        device: String,
        comparison: Comparison?,
        medianMs: Double?,
        error: String?,
        outputs: List<DoubleArray>
    ): Map<String, Any?> {
        val report = LinkedHashMap<String, Any?>()
        report["schema"] = SCHEMA
        report["created"] = created
        report["app"] = "android"
        report["artifact"] = spec.artifact
        report["sha256"] = spec.sha256
        report["model_sha256"] = modelSha256
        report["runtime"] = runtime
        report["accelerator"] = accelerator
        report["device"] = device
        report["verdict"] = comparison?.verdict ?: Comparison.ERROR
        report["max_abs_error"] = comparison?.maxAbsError
        report["max_rel_error"] = comparison?.maxRelError
        report["min_cosine"] = comparison?.minCosine
        report["top1_agreement"] = comparison?.top1Agreement
        report["decisive_top1_agreement"] = comparison?.decisiveTop1Agreement
        report["median_ms"] = medianMs
        report["error"] = error
        report["images"] = outputs.indices.map { i ->
            val image = spec.images[i]
            linkedMapOf<String, Any?>("name" to image.name, "png_sha256" to image.pngSha256, "expected" to image.expected, "output" to outputs[i])
        }
        return report
    }
}
