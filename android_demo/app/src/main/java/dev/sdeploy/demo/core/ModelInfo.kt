package dev.sdeploy.demo.core

// Pure Kotlin (Kotlin 1.3 stdlib, no android imports): see Json.kt.

/** One input or output of the model; symbolic dimensions (e.g. a dynamic batch) are [DYNAMIC]. */
data class TensorSpec(val name: String, val shape: List<Long>, val dtype: String) {
    companion object {
        const val DYNAMIC = -1L

        fun fromJson(json: JsonObject): TensorSpec {
            val shape = json.array("shape").map { dim ->
                when {
                    JsonObject.asLong(dim) != null -> JsonObject.asLong(dim)!!
                    dim is String || dim == null -> DYNAMIC
                    else -> throw JsonException("${json.where("shape")} must hold integers or names, got ${JsonObject.describe(dim)}")
                }
            }
            return TensorSpec(json.string("name"), shape, json.stringOr("dtype", "float32"))
        }
    }
}

/**
 * model.json as written by `sdeploy bundle` (schema `sdeploy-app-model/1`): which file to load,
 * its labels file, tensor names and shapes, and the input contract to preprocess with.
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
    val input: TensorSpec,
    val output: TensorSpec,
    val preprocess: InputContract,
    val sdeployVersion: String?
) {
    /** The input tensor shape for one image, e.g. [1, 3, 224, 224] (a dynamic batch becomes 1). */
    fun inputShape(): LongArray {
        val shape = input.shape.toLongArray()
        if (shape.isNotEmpty() && shape[0] == TensorSpec.DYNAMIC) shape[0] = 1
        return shape
    }

    companion object {
        const val SCHEMA = "sdeploy-app-model/1"

        fun parse(text: String, source: String = "model.json"): ModelInfo {
            val json = Json.parseObject(text, source)
            val schema = json.string("schema")
            if (schema != SCHEMA) {
                throw JsonException("$source: schema is '$schema', this app reads '$SCHEMA'; re-run sdeploy bundle with a matching version")
            }
            val preprocess = InputContract.fromJson(json.obj("preprocess"))
            val input = TensorSpec.fromJson(json.obj("input"))
            val output = TensorSpec.fromJson(json.obj("output"))
            val size = preprocess.imgSize.toLong()
            val expected = listOf(3L, size, size)
            if (input.shape.size != 4 || input.shape.subList(1, 4) != expected || (input.shape[0] != 1L && input.shape[0] != TensorSpec.DYNAMIC)) {
                throw JsonException("$source: input shape ${input.shape} does not match preprocess.img_size $size (expected [1, 3, $size, $size])")
            }
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
                input = input,
                output = output,
                preprocess = preprocess,
                sdeployVersion = json.stringOrNull("sdeploy_version")
            )
        }
    }
}
