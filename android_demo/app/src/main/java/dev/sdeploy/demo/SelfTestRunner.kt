package dev.sdeploy.demo

import android.content.Context
import android.os.Build
import android.os.SystemClock
import dev.sdeploy.demo.core.Comparison
import dev.sdeploy.demo.core.DeviceReport
import dev.sdeploy.demo.core.JsonWriter
import dev.sdeploy.demo.core.SelfTest
import dev.sdeploy.demo.core.SelfTestSpec
import dev.sdeploy.demo.core.Sha256
import dev.sdeploy.demo.engines.Engines
import java.io.File
import java.io.FileInputStream

/**
 * The Self-test action (docs/app-protocol.md): every selftest.json image through this app's own
 * decode, preprocessing and engine, compared with eager PyTorch's outputs, plus the median latency
 * of one engine call; written as a device report for `sdeploy verify --device-report`.
 */
object SelfTestRunner {
    class Outcome(val text: String, val report: File?)

    /** [classifier] is null when the model failed to load ([loadError] says why): that is an ERROR report. */
    fun run(context: Context, model: BundledModel, classifier: Classifier?, loadError: String?): Outcome {
        val text = model.selftestJson
            ?: return Outcome("This bundle has no selftest.json: re-run `sdeploy bundle --app android`, which writes one.", null)
        val spec = SelfTestSpec.parse(text)
        spec.checkMatches(model.info)

        val outputs = ArrayList<DoubleArray>()
        var error = loadError
        var comparison: Comparison? = null
        var medianMs: Double? = null
        if (classifier != null) {
            try {
                val inputs = spec.images.map { image ->
                    val decoded = ImageDecoding.decode(context, ImageSource.Bytes(image.png, image.name), model.info.preprocess.resizeSize)
                    classifier.input(decoded.image)
                }
                for (input in inputs) outputs.add(classifier.run(input).map { it.toDouble() }.toDoubleArray())
                comparison = SelfTest.compare(outputs, spec.images.map { it.expected }, spec.tolerance)
                medianMs = medianLatency(classifier, inputs[0], spec.warmupRuns, spec.timedRuns)
            } catch (e: OutOfMemoryError) {
                error = Failures.describe(e)
            } catch (e: Exception) {
                error = Failures.describe(e)
            } catch (e: LinkageError) { // UnsatisfiedLinkError & co. from a native runtime
                error = Failures.describe(e)
            }
        }
        if (error != null) comparison = null
        val modelSha = try {
            FileInputStream(model.modelFile).use { Sha256.hex(it) }
        } catch (e: Exception) {
            null
        }
        val report = DeviceReport.build(
            spec = spec,
            created = DeviceReport.timestamp(System.currentTimeMillis()),
            modelSha256 = modelSha,
            runtime = Engines.runtime,
            accelerator = Engines.accelerator,
            device = "Android ${Build.VERSION.RELEASE} (API ${Build.VERSION.SDK_INT}) / ${Build.MANUFACTURER} ${Build.MODEL}",
            comparison = comparison,
            medianMs = medianMs,
            error = error,
            outputs = outputs
        )
        val dir = File(context.cacheDir, "reports").apply { mkdirs() }
        val file = File(dir, "device-report-${spec.artifact}.json")
        file.writeText(JsonWriter.write(report) + "\n", Charsets.UTF_8)

        val summary = if (comparison != null) {
            SelfTest.summary(comparison, spec.images.size, medianMs)
        } else {
            "${Comparison.ERROR}\n$error"
        }
        val header = "Self-test: ${spec.images.size} images, ${spec.arch} · ${spec.format} · ${Engines.runtime}\n\n"
        return Outcome(header + summary + "\n\nShare the report, then: sdeploy verify EXPORT_DIR --device-report ${file.name}", file)
    }

    /** Warm-up calls on the first image, then the median wall time of one engine call (not decode/preprocess). */
    private fun medianLatency(classifier: Classifier, input: dev.sdeploy.demo.core.TensorInput, warmup: Int, timed: Int): Double {
        repeat(warmup) { classifier.run(input) }
        val times = ArrayList<Double>()
        repeat(timed) {
            val start = SystemClock.elapsedRealtimeNanos()
            classifier.run(input)
            times.add((SystemClock.elapsedRealtimeNanos() - start) / 1e6)
        }
        return SelfTest.median(times)
    }
}

/** Any Throwable as one readable line, with the cause that explains it (e.g. the UnsatisfiedLinkError inside an ExceptionInInitializerError). */
object Failures {
    fun describe(t: Throwable): String {
        val parts = ArrayList<String>()
        var current: Throwable? = t
        while (current != null && parts.size < 3) {
            val line = "${current.javaClass.simpleName}: ${current.message ?: "(no message)"}"
            if (parts.none { it == line }) parts.add(line)
            current = if (current.cause === current) null else current.cause
        }
        return parts.joinToString(" <- ")
    }
}
