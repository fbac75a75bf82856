package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

/** Symbolic dimensions (e.g. a dynamic batch) in a shape. */
object Dims {
    const val DYNAMIC = -1L

    fun parse(json: JsonObject, key: String): List<Long> = json.array(key).map { dim ->
        val value = JsonObject.asLong(dim)
        when {
            value != null -> value
            dim is String || dim == null -> DYNAMIC
            else -> throw JsonException("${json.where(key)} must hold integers or names, got ${JsonObject.describe(dim)}")
        }
    }
}

/**
 * The model's input as model.json describes it (docs/app-protocol.md):
 *
 * - [kind] `tensor`: float32, already normalised by the input contract, in the contract's colour order;
 * - [kind] `pixels`: uint8 RGB pixels, resized and cropped but not normalised (the model does it);
 * - [layout] `NCHW` or `NHWC`; missing means NCHW for `tensor` (schema 1 files) and NHWC for `pixels`.
 */
data class InputSpec(val name: String, val shape: List<Long>, val dtype: String, val kind: String, val layout: String) {
    val isPixels: Boolean get() = kind == PIXELS
    val isNhwc: Boolean get() = layout == NHWC

    /** The shape for one image, e.g. [1, 3, 224, 224] (a dynamic batch becomes 1). */
    fun shapeForOneImage(): LongArray {
        val out = shape.toLongArray()
        if (out.isNotEmpty() && out[0] == Dims.DYNAMIC) out[0] = 1
        return out
    }

    companion object {
        const val TENSOR = "tensor"
        const val PIXELS = "pixels"
        const val NCHW = "NCHW"
        const val NHWC = "NHWC"

        fun fromJson(json: JsonObject, imgSize: Int): InputSpec {
            val kind = json.stringOr("kind", TENSOR)
            if (kind == "image") throw JsonException("${json.where("kind")} is 'image' (a Core ML image input, iOS only); bundle the Android app with sdeploy bundle --app android")
            if (kind != TENSOR && kind != PIXELS) throw JsonException("${json.where("kind")} is '$kind', this app reads 'tensor' or 'pixels'")
            val layout = json.stringOr("layout", if (kind == PIXELS) NHWC else NCHW)
            if (layout != NCHW && layout != NHWC) throw JsonException("${json.where("layout")} is '$layout', this app reads NCHW or NHWC")
            val dtype = json.stringOr("dtype", if (kind == PIXELS) "uint8" else "float32")
            val wanted = if (kind == PIXELS) "uint8" else "float32"
            if (dtype != wanted) throw JsonException("${json.where("dtype")} is '$dtype'; a '$kind' input must be $wanted")
            val shape = Dims.parse(json, "shape")
            val size = imgSize.toLong()
            val expected = if (layout == NCHW) listOf(3L, size, size) else listOf(size, size, 3L)
            if (shape.size != 4 || shape.subList(1, 4) != expected || (shape[0] != 1L && shape[0] != Dims.DYNAMIC)) {
                throw JsonException("${json.source}: input shape $shape does not match preprocess.img_size $size and layout $layout " +
                    "(expected [1, ${expected.joinToString(", ")}])")
            }
            return InputSpec(json.string("name"), shape, dtype, kind, layout)
        }
    }
}

/** The model's output: one score per class, `logits` (the app applies softmax) or `probabilities` (it does not). */
data class OutputSpec(val name: String, val shape: List<Long>, val dtype: String, val kind: String) {
    val isProbabilities: Boolean get() = kind == PROBABILITIES

    companion object {
        const val LOGITS = "logits"
        const val PROBABILITIES = "probabilities"

        fun fromJson(json: JsonObject, numClasses: Int): OutputSpec {
            val kind = json.stringOr("kind", LOGITS)
            if (kind != LOGITS && kind != PROBABILITIES) throw JsonException("${json.where("kind")} is '$kind', this app reads 'logits' or 'probabilities'")
            val shape = Dims.parse(json, "shape")
            val last = if (shape.isEmpty()) Dims.DYNAMIC else shape[shape.size - 1]
            if (last != Dims.DYNAMIC && last != numClasses.toLong()) {
                throw JsonException("${json.source}: output shape $shape does not end in num_classes $numClasses")
            }
            return OutputSpec(json.string("name"), shape, json.stringOr("dtype", "float32"), kind)
        }
    }
}

/**
 * model.json as written by `sdeploy bundle --app android` (schema `sdeploy-app-model/2`, see
 * docs/app-protocol.md): which file to load and with which engine ([format]), its labels and
 * self-test files, the input and output tensors, and the input contract to preprocess with.
 * Schema 1 files (a TorchScript-lite model, NCHW float input, logits) are still read.
 */
data class ModelInfo(
    val schema: String,
    val arch: String,
    val artifact: String,
    val format: String,
    val modelFile: String,
    val sha256: String?,
    val precision: String,
    val numClasses: Int,
    val labelsFile: String,
    val selftestFile: String?,
    val input: InputSpec,
    val output: OutputSpec,
    val preprocess: InputContract,
    val sdeployVersion: String?
) {
    /** The engine for [format]; throws [UnsupportedFormatException] for a format this app cannot run. */
    fun engineKind(): EngineKind = EngineKind.forFormat(format)

    companion object {
        const val SCHEMA = "sdeploy-app-model/2"
        const val SCHEMA_1 = "sdeploy-app-model/1"

        fun parse(text: String, source: String = "model.json"): ModelInfo {
            val json = Json.parseObject(text, source)
            val schema = json.string("schema")
            if (schema != SCHEMA && schema != SCHEMA_1) {
                throw JsonException("$source: schema is '$schema', this app reads '$SCHEMA'; re-run sdeploy bundle with a matching version")
            }
            val preprocess = InputContract.fromJson(json.obj("preprocess"))
            val numClasses = json.int("num_classes")
            if (numClasses < 1) throw JsonException("$source: num_classes must be positive, got $numClasses")
            return ModelInfo(
                schema = schema,
                arch = json.string("arch"),
                artifact = json.stringOr("artifact", ""),
                format = json.string("format"),
                modelFile = json.string("model_file"),
                sha256 = json.stringOrNull("sha256"),
                precision = json.stringOr("precision", "fp32"),
                numClasses = numClasses,
                labelsFile = json.string("labels_file"),
                selftestFile = json.stringOrNull("selftest_file"),
                input = InputSpec.fromJson(json.obj("input"), preprocess.imgSize),
                output = OutputSpec.fromJson(json.obj("output"), numClasses),
                preprocess = preprocess,
                sdeployVersion = json.stringOrNull("sdeploy_version")
            )
        }
    }
}
