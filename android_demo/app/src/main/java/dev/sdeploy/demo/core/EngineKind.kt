package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

/** A model.json format this app has no engine for; the message says what to do instead. */
class UnsupportedFormatException(message: String) : RuntimeException(message)

/**
 * The on-device engines, one per model.json `format` (docs/app-protocol.md). The Android classes
 * that run them live in dev.sdeploy.demo.engines, one per build [variant] (app/src/<variant>/);
 * this choice is pure Kotlin so it is unit-tested.
 */
enum class EngineKind(val format: String, val runtime: String, val bundleTarget: String, val variant: String) {
    /** `.pte` on ExecuTorch (org.pytorch:executorch-android, XNNPACK inside): the default. */
    EXECUTORCH("pte", "ExecuTorch", "executorch", "executorch"),

    /** `.ptl` on the PyTorch lite interpreter (org.pytorch:pytorch_android_lite): not publishable on Google Play. */
    PYTORCH_LITE("torchscript-lite", "PyTorch lite interpreter", "torchscript", "pytorchLite"),

    /** `.tflite` on LiteRT (com.google.ai.edge.litert:litert, CompiledModel API, CPU). */
    LITERT("tflite", "LiteRT", "litert", "litert");

    companion object {
        fun forFormat(format: String): EngineKind {
            for (kind in values()) if (kind.format == format) return kind
            val known = values().joinToString(", ") { "'${it.format}' (${it.runtime})" }
            val hint = when (format) {
                "onnx" -> " ONNX models are for the web demo."
                "mlpackage", "mlmodel" -> " Core ML models are for the iOS demo."
                else -> ""
            }
            throw UnsupportedFormatException(
                "model.json says format '$format', which this app cannot run: it runs $known.$hint " +
                    "Re-bundle with `sdeploy bundle --app android` (add --target torchscript or --target litert for the other engines)."
            )
        }
    }
}

/** What to do when model.json asks for another engine than the one this build variant contains. */
fun wrongVariantMessage(wanted: EngineKind, built: EngineKind, format: String): String =
    "model.json asks for ${wanted.runtime} (format '$format'), but this is the ${built.runtime} build of the app. " +
        "Run the '${wanted.variant}' build variant (./gradlew install${Character.toUpperCase(wanted.variant[0])}${wanted.variant.substring(1)}Debug), " +
        "or re-bundle for this one: sdeploy bundle --app android --target ${built.bundleTarget}."
